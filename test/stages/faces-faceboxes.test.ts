/**
 * The FaceBoxes detector (faces.detector 'faceboxes', the default) with the
 * real shipped model, the real cascade and real image workers, on frames
 * built from grid-36's pictures (test/fixtures/face-frames.ts), against
 * grid-36's face boxes; and the mosaic's geometry, input pixels back to
 * frame pixels, for 1080p and 720p.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { boxToPicture, fillMosaic, layoutMosaic } from '../../src/adapters/face-mosaic.ts';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { validateConfig } from '../../src/config/load.ts';
import { modelsAvailable } from '../../src/models/model-availability.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { intersectionOverUnion } from '../../src/stages/faces/boxes.ts';
import { detectorModelId, DETECTOR_KINDS, finishFaces, loadFaceDetector, prepareFaces, type FaceDetector } from '../../src/stages/faces/face-detector.ts';
import { makeFaceFrame, scoreFrames, type FaceFrame } from '../fixtures/face-frames.ts';
import { tempDir } from '../helpers.ts';

const TIMEOUT = { timeout: 240_000 };

async function defaultDetector(dir: string) {
  const config = validateConfig({}, 'test', dir);
  assert.equal(config.faces.detector, 'faceboxes');
  const available = await modelsAvailable(config, [detectorModelId(config)!], [DETECTOR_KINDS.faceboxes]);
  assert.ok(available.ready, available.ready ? '' : available.reason);
  const images = createImageWorkers(1);
  const detector = await loadFaceDetector(config, available.models[0]!, { images, models: new ModelCache(), log: pino({ level: 'silent' }) });
  return { config, images, detector };
}

async function detect(detector: FaceDetector, config: ReturnType<typeof validateConfig>, images: ReturnType<typeof createImageWorkers>, files: string[]) {
  return finishFaces(detector, await prepareFaces(detector, files, images), config);
}

function writeFrames(dir: string, frames: FaceFrame[]): string[] {
  return frames.map((frame, index) => {
    const file = path.join(dir, `frame-${index}.png`);
    writeFileSync(file, frame.png);
    return file;
  });
}

test('the default detector finds the faces of 1080p frames made of grid-36 pictures, and none on scenery', TIMEOUT, async (t) => {
  const dir = tempDir(t);
  const { config, images, detector } = await defaultDetector(dir);
  t.after(() => images.close());
  const frames: FaceFrame[] = [];
  for (let seed = 1; seed <= 5; seed += 1) frames.push(await makeFaceFrame({ width: 1920, height: 1080, seed, pictures: 3 }));
  for (let seed = 1; seed <= 3; seed += 1) frames.push(await makeFaceFrame({ width: 1920, height: 1080, seed, pictures: 0 }));
  const found = await detect(detector, config, images, writeFrames(dir, frames));
  const { faces, found: matched, falsePositives } = scoreFrames(found, frames.map((frame) => frame.faces));
  frames.forEach((frame, index) => {
    if (frame.faces.length === 0) assert.deepEqual(found[index], [], `scenery frame ${index} (${frame.kind}) has no face`);
  });
  assert.ok(faces >= 10, `${faces} faces on the frames`);
  // The bench's figures are 0.95 and above on 76 faces; on a dozen or so one or two misses are chance, a broken detector finds half.
  assert.ok(matched / faces >= 0.8, `recall ${matched}/${faces}`);
  assert.ok(matched / (matched + falsePositives) >= 0.85, `precision ${matched}/${matched + falsePositives}`);
});

test('boxes come back in frame pixels on 720p and 1080p frames, for large faces (whole view) and small ones (zoomed cells)', TIMEOUT, async (t) => {
  const dir = tempDir(t);
  const { config, images, detector } = await defaultDetector(dir);
  t.after(() => images.close());
  const frames: FaceFrame[] = [];
  for (const [width, height] of [[1280, 720], [1920, 1080]] as const) {
    frames.push(await makeFaceFrame({ width, height, seed: 11, pictures: 2, faceHeights: [45, 70] }));
    frames.push(await makeFaceFrame({ width, height, seed: 12, pictures: 1, faceHeights: [200, 250] }));
  }
  const found = await detect(detector, config, images, writeFrames(dir, frames));
  frames.forEach((frame, index) => {
    const where = `${frame.width}x${frame.height} frame ${index}`;
    for (const face of frame.faces) {
      const best = Math.max(0, ...found[index]!.map((box) => intersectionOverUnion(box, face)));
      assert.ok(best >= 0.3, `${where}: the ${Math.round(face.height)} px face at ${Math.round(face.x)},${Math.round(face.y)} is found in frame pixels (best IoU ${best.toFixed(2)})`);
    }
    for (const box of found[index]!) assert.ok(box.x >= 0 && box.y >= 0 && box.x + box.width <= frame.width && box.y + box.height <= frame.height, `${where}: box inside the frame`);
  });
});

function rounded(box: { x: number; y: number; width: number; height: number } | null) {
  return box && { x: +box.x.toFixed(6), y: +box.y.toFixed(6), width: +box.width.toFixed(6), height: +box.height.toFixed(6) };
}

test('the mosaic maps input pixels to frame pixels: whole view at 0.8 (1080p) and 1.2 (720p), and a zoomed cell in the room below', async () => {
  const hd = layoutMosaic(1920, 1080, 1536, 336, [{ x: 300, y: 200, side: 168 }]);
  assert.deepEqual(hd.regions[0], { input: 0, at: { x: 0, y: 0, width: 1536, height: 864 }, source: { x: 0, y: 0, width: 1920, height: 1080 } });
  assert.deepEqual(hd.regions[1], { input: 0, at: { x: 0, y: 864, width: 336, height: 336 }, source: { x: 216, y: 116, width: 168, height: 168 } });
  assert.equal(hd.inputs, 1);
  // Whole view: input 800..880 is frame 1000..1100.
  assert.deepEqual(boxToPicture(hd, 0, { x: 800, y: 400, width: 80, height: 80 }), { x: 1000, y: 500, width: 100, height: 100 });
  // Cell: 2 input pixels per frame pixel; input (100, 964) is frame (216 + 50, 116 + 50).
  assert.deepEqual(boxToPicture(hd, 0, { x: 100, y: 964, width: 100, height: 100 }), { x: 266, y: 166, width: 50, height: 50 });
  // Grey padding holds nothing.
  assert.equal(boxToPicture(hd, 0, { x: 1400, y: 1400, width: 50, height: 50 }), null);

  const sd = layoutMosaic(1280, 720, 1536, 336, [{ x: 1270, y: 10, side: 100 }]);
  assert.deepEqual(sd.regions[0]!.at, { x: 0, y: 0, width: 1536, height: 864 });
  // A cell that would cross the frame's corner is moved inside it.
  assert.deepEqual(sd.regions[1]!.source, { x: 1180, y: 0, width: 100, height: 100 });
  assert.deepEqual(rounded(boxToPicture(sd, 0, { x: 600, y: 300, width: 120, height: 60 })), { x: 500, y: 250, width: 100, height: 50 });

  // More cells than the room below: the rest go to a second input of cells only, 4 x 4.
  const busy = layoutMosaic(1920, 1080, 1536, 336, Array.from({ length: 10 }, (_, i) => ({ x: 100 + i * 150, y: 500, side: 120 })));
  assert.equal(busy.inputs, 2);
  assert.deepEqual(busy.regions.slice(1).map((region) => region.input), [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
  assert.deepEqual(busy.regions[9]!.at, { x: 0, y: 0, width: 336, height: 336 });
  // The tenth request (centre 1450, 500; side 120) is the second cell of input 1, at 336..672: 120/336 frame pixels per input pixel.
  assert.deepEqual(rounded(boxToPicture(busy, 1, { x: 336 + 28, y: 28, width: 28, height: 28 })), rounded({ x: 1390 + 10, y: 440 + 10, width: 10, height: 10 }));

  // The cell shows its part of the frame: a red square at frame 216..384 fills the cell.
  const rgb = Buffer.alloc(1920 * 1080 * 3, 0);
  for (let y = 116; y < 284; y += 1) for (let x = 216; x < 384; x += 1) rgb[(y * 1920 + x) * 3] = 255;
  const mosaic = await fillMosaic(rgb, hd);
  const plane = 1536 * 1536;
  assert.equal(mosaic.data[(864 + 168) * 1536 + 168], 1, 'red at the cell centre');
  assert.equal(mosaic.data[plane + (864 + 168) * 1536 + 168], 0, 'no green there');
  assert.ok(Math.abs(mosaic.data[1500 * 1536 + 1500]! - 114 / 255) < 1e-6, 'grey where nothing is');
});
