/** YOLO face detection on a real ONNX Runtime session with a generated head whose boxes are known. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import { yoloTensor } from '../../src/adapters/image-tensors.ts';
import { parseOnnxMetadata } from '../../src/adapters/onnx-metadata.ts';
import { CelforgeError } from '../../src/errors.ts';
import { intersectionOverUnion, nonMaximumSuppression, roundBox } from '../../src/stages/faces/boxes.ts';
import { DEFAULT_YOLO_SIZE, detectYolo, loadYoloDetector } from '../../src/stages/faces/yolo.ts';
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
  assert.deepEqual([detector.width, detector.height], [64, 64]);
  const picture = path.join(dir, 'wide.png');
  await sharp({ create: { width: 128, height: 64, channels: 3, background: '#808080' } }).png().toFile(picture);
  const [faces] = await detectYolo(detector, [await yoloTensor(picture, 64, 64, 'letterbox')], { score: 0.25, iou: 0.45 }, 8);
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

const silent = pino({ level: 'silent' });
const ROWS = [[16, 32, 8, 8, 0.9]];

test('a model with symbolic height and width runs at the imgsz of its metadata, else at 640', async (t) => {
  const dir = tempDir(t);
  // As ultralytics exports with dynamic=True: input [batch, 3, height, width], metadata imgsz "[h, w]".
  const sized = path.join(dir, 'dynamic.onnx');
  writeYoloModel(sized, 0, ROWS, { freeSize: true, metadata: { stride: '32', imgsz: '[64, 96]', names: "{0: 'face'}" } });
  const bytes = readFileSync(sized);
  assert.deepEqual(parseOnnxMetadata(bytes), { stride: '32', imgsz: '[64, 96]', names: "{0: 'face'}" });
  assert.throws(() => parseOnnxMetadata(bytes.subarray(0, bytes.length - 3)), /runs past the end of the file/);
  const detector = await loadYoloDetector(sized, ['cpu'], silent);
  assert.deepEqual(detector.model.input.dims, ['batch', 3, 'height', 'width']);
  assert.deepEqual([detector.width, detector.height], [96, 64]);
  // A 192x128 picture letterboxed into 96x64: scale 0.5, no padding.
  const picture = path.join(dir, 'frame.png');
  await sharp({ create: { width: 192, height: 128, channels: 3, background: '#808080' } }).png().toFile(picture);
  const prepared = await yoloTensor(picture, detector.width, detector.height, 'letterbox');
  assert.equal(prepared.input.length, 3 * 96 * 64);
  const [faces] = await detectYolo(detector, [prepared, prepared], { score: 0.25, iou: 0.45 }, 8);
  assert.deepEqual({ ...faces![0], score: 0 }, { x: 24, y: 56, width: 16, height: 16, score: 0 });

  const bare = path.join(dir, 'no-metadata.onnx');
  writeYoloModel(bare, 0, [[320, 320, 30, 30, 0.9]], { freeSize: true });
  const plain = await loadYoloDetector(bare, ['cpu'], silent);
  assert.deepEqual([plain.width, plain.height], [DEFAULT_YOLO_SIZE, DEFAULT_YOLO_SIZE]);
  const [found] = await detectYolo(plain, [await yoloTensor(picture, 640, 640, 'letterbox')], { score: 0.25, iou: 0.45 }, 8);
  // Scale 10/3, 427 rows and 106 of padding above: input y 305..335 is picture y 59.7..68.7.
  assert.deepEqual(roundBox(found![0]!), { x: 92, y: 60, width: 9, height: 9, score: 0.9 });

  const broken = path.join(dir, 'bad-imgsz.onnx');
  writeYoloModel(broken, 0, ROWS, { freeSize: true, metadata: { imgsz: 'big' } });
  await assert.rejects(loadYoloDetector(broken, ['cpu'], silent), (error: unknown) => {
    assert.ok(error instanceof CelforgeError);
    assert.equal(error.code, 'CONFIG_INVALID');
    assert.match(error.message, /bad-imgsz\.onnx: .*"imgsz" metadata \("big"\) is not \[height, width\]/);
    return true;
  });
});

test('stretched pictures map back per axis', async (t) => {
  const dir = tempDir(t);
  const model = path.join(dir, 'yolo.onnx');
  writeYoloModel(model, 64, ROWS);
  const detector = await loadYoloDetector(model, ['cpu'], silent);
  const picture = path.join(dir, 'wide.png');
  await sharp({ create: { width: 128, height: 64, channels: 3, background: '#808080' } }).png().toFile(picture);
  const prepared = await yoloTensor(picture, 64, 64, 'stretch');
  assert.deepEqual([prepared.scaleX, prepared.scaleY, prepared.padX, prepared.padY], [0.5, 1, 0, 0]);
  const [faces] = await detectYolo(detector, [prepared], { score: 0.25, iou: 0.45 }, 8);
  // Input x 12..20, y 28..36 -> x divided by 0.5, y by 1.
  assert.deepEqual({ ...faces![0], score: 0 }, { x: 24, y: 28, width: 16, height: 8, score: 0 });
});

test('a transparent picture goes on white before YOLO, as before WD14', async (t) => {
  const dir = tempDir(t);
  // A black line drawing of a face on a transparent background; transparent pixels are (0, 0, 0, 0).
  const picture = path.join(dir, 'face.png');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">
    <circle cx="32" cy="32" r="20" fill="none" stroke="black" stroke-width="4"/>
    <circle cx="24" cy="28" r="3" fill="black"/><circle cx="40" cy="28" r="3" fill="black"/>
    <path d="M22 40 Q32 48 42 40" fill="none" stroke="black" stroke-width="3"/></svg>`;
  await sharp(Buffer.from(svg)).png().toFile(picture);
  const { channels, hasAlpha } = await sharp(picture).metadata();
  assert.ok(hasAlpha && channels === 4, 'the fixture really has an alpha channel');
  for (const resize of ['letterbox', 'stretch'] as const) {
    const { input } = await yoloTensor(picture, 64, 64, resize);
    const plane = 64 * 64;
    const at = (x: number, y: number) => [0, 1, 2].map((channel) => input[channel * plane + y * 64 + x]!);
    assert.deepEqual(at(2, 2), [1, 1, 1], `${resize}: the transparent corner is white`);
    assert.deepEqual(at(32, 32), [1, 1, 1], `${resize}: inside the face is white`);
    assert.ok(at(32, 12).every((value) => value < 0.2), `${resize}: the outline stays black`);
  }
});
