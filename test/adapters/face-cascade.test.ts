/** The real LBP cascade (shipped in models/) on grid-36.jpg, 36 generated anime pictures, against the 38 faces a detector drew on it. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { detectCascadeFaces } from '../../src/adapters/face-cascade.ts';
import { greyPicture } from '../../src/adapters/image-tensors.ts';
import { intersectionOverUnion } from '../../src/stages/faces/boxes.ts';
import { GRID_FILE, gridFaces } from '../fixtures/grid-36.ts';
import { CASCADE_FILE as cascade } from '../fixtures/model-folder.ts';
import { tempDir } from '../helpers.ts';

test('recall and precision at IoU >= 0.3 on grid-36.jpg', async () => {
  const found = await detectCascadeFaces(cascade, await greyPicture(GRID_FILE, 1536));
  const truth = gridFaces();
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

test('a picture with no face gives no box; a missing cascade says how to restore it', async (t) => {
  const empty = path.join(tempDir(t), 'sky.png');
  await sharp({ create: { width: 640, height: 360, channels: 3, background: '#88aaee' } }).png().toFile(empty);
  const grey = await greyPicture(empty, 1536);
  assert.deepEqual(await detectCascadeFaces(cascade, grey), []);
  await assert.rejects(detectCascadeFaces('/nonexistent/cascade.xml', grey), /cascade file missing; it ships with celforge in models\/lbpcascade-animeface\/: restore it \(git checkout -- models\/lbpcascade-animeface\)/);
});
