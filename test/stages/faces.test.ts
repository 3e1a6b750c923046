/** YOLO face detection on a real ONNX Runtime session with a generated head whose boxes are known. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import { letterboxTensor } from '../../src/adapters/image-tensors.ts';
import { intersectionOverUnion, nonMaximumSuppression } from '../../src/stages/faces/boxes.ts';
import { detectYolo, loadYoloDetector } from '../../src/stages/faces/yolo.ts';
import { writeYoloModel } from '../fixtures/onnx-models.ts';
import { tempDir } from '../helpers.ts';

test('boxes over the threshold survive NMS and map back through the letterbox to the picture', async (t) => {
  const dir = tempDir(t);
  const model = path.join(dir, 'yolo.onnx');
  // Input 64x64. A 128x64 picture is scaled by 0.5 to 64x32 and padded 16 rows top and bottom.
  writeYoloModel(model, 64, [
    [16, 32, 8, 8, 0.9], // picture box x 24..40, y 24..40
    [17, 32, 8, 8, 0.6], // overlaps the first (IoU 0.78): suppressed
    [48, 24, 4, 8, 0.7], // separate: picture box x 92..100, y 8..24
    [40, 40, 8, 8, 0.2], // under the threshold
  ]);
  const detector = await loadYoloDetector(model, ['cpu'], pino({ level: 'silent' }));
  assert.equal(detector.size, 64);
  const picture = path.join(dir, 'wide.png');
  await sharp({ create: { width: 128, height: 64, channels: 3, background: '#808080' } }).png().toFile(picture);
  const [faces] = await detectYolo(detector, [await letterboxTensor(picture, 64)], { score: 0.25, iou: 0.45 }, 8);
  assert.equal(faces!.length, 2);
  // First box: input x 12..20, y 28..36 -> minus padding (0, 16) -> 12..20, 12..20 -> divided by 0.5 -> 24..40, 24..40.
  assert.deepEqual(faces![0], { x: 24, y: 24, width: 16, height: 16, score: faces![0]!.score });
  assert.ok(Math.abs(faces![0]!.score - 0.9) < 1e-6);
  // Second: input x 46..50, y 20..28 -> 46..50, 4..12 -> 92..100, 8..24.
  assert.deepEqual({ ...faces![1], score: 0 }, { x: 92, y: 8, width: 8, height: 16, score: 0 });
});

test('NMS keeps the best of overlapping boxes and leaves separate ones', () => {
  const boxes = [
    { x: 0, y: 0, width: 10, height: 10, score: 0.5 },
    { x: 1, y: 1, width: 10, height: 10, score: 0.8 },
    { x: 50, y: 50, width: 10, height: 10, score: 0.3 },
  ];
  assert.deepEqual(nonMaximumSuppression(boxes, 0.45).map((b) => b.score), [0.8, 0.3]);
  assert.equal(intersectionOverUnion(boxes[0]!, boxes[2]!), 0);
  assert.equal(intersectionOverUnion(boxes[0]!, boxes[0]!), 1);
});
