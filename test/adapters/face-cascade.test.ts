/** The real LBP cascade on the shared picture of 36 generated anime pictures, against the 38 faces a detector drew on it. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { detectCascadeFaces } from '../../src/adapters/face-cascade.ts';
import { greyPicture } from '../../src/adapters/image-tensors.ts';
import { intersectionOverUnion } from '../../src/stages/faces/boxes.ts';
import { tempDir } from '../helpers.ts';

const shared = path.join(import.meta.dirname, '..', '..', '..', 'shared');
const cascade = path.join(shared, 'models', 'lbpcascade_animeface.xml');

test('recall and precision at IoU >= 0.3 on grid-36.jpg', async () => {
  const found = await detectCascadeFaces(cascade, await greyPicture(path.join(shared, 'fixtures', 'anime-faces', 'grid-36.jpg'), 1536));
  const truth = (JSON.parse(readFileSync(path.join(shared, 'fixtures', 'anime-faces', 'grid-36.faces.json'), 'utf8')).boxes as { x0: number; y0: number; x1: number; y1: number }[])
    .map((b) => ({ x: b.x0, y: b.y0, width: b.x1 - b.x0, height: b.y1 - b.y0 }));
  assert.equal(truth.length, 38);
  const matched = new Set<number>();
  for (const face of truth) {
    let best = -1;
    let bestIou = 0.3;
    found.forEach((box, index) => {
      const iou = intersectionOverUnion(face, box);
      if (!matched.has(index) && iou >= bestIou) {
        bestIou = iou;
        best = index;
      }
    });
    if (best >= 0) matched.add(best);
  }
  const recall = matched.size / truth.length;
  const precision = matched.size / found.length;
  // Measured here: recall 35/38 = 0.92, precision 35/37 = 0.95.
  assert.ok(recall >= 0.85, `recall ${recall}`);
  assert.ok(precision >= 0.85, `precision ${precision}`);
});

test('a picture with no face gives no box; a missing cascade names the fetch command', async (t) => {
  const empty = path.join(tempDir(t), 'sky.png');
  await sharp({ create: { width: 640, height: 360, channels: 3, background: '#88aaee' } }).png().toFile(empty);
  const grey = await greyPicture(empty, 1536);
  assert.deepEqual(await detectCascadeFaces(cascade, grey), []);
  await assert.rejects(detectCascadeFaces('/nonexistent/cascade.xml', grey), /cascade file missing; run "celforge models fetch lbpcascade-animeface"/);
});
