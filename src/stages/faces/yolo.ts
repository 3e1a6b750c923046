/**
 * Anime face detection with a YOLOv8 ONNX model (deepghs anime_face_detection):
 * the picture letterboxed into the model's square input (aspect kept, grey
 * 114 padding, RGB, NCHW float32 0..1); the output [1, 4 + classes, boxes]
 * holds centre/size boxes in input pixels and class scores with no
 * objectness. Boxes over the score threshold survive non-maximum suppression
 * and are mapped back to the picture's own pixels.
 */
import sharp from 'sharp';
import { openOnnxModel, runOnnx, type OnnxModel } from '../../adapters/onnx-session.ts';
import { CelforgeError } from '../../errors.ts';
import type { Logger } from '../../log.ts';

export interface FaceBox {
  x: number;
  y: number;
  width: number;
  height: number;
  score: number;
}

export interface YoloDetector {
  size: number;
  model: OnnxModel;
}

export interface Letterbox {
  input: Float32Array;
  scale: number;
  padX: number;
  padY: number;
  width: number;
  height: number;
}

export async function loadYoloDetector(modelFile: string, providers: readonly string[], log: Logger): Promise<YoloDetector> {
  const model = await openOnnxModel(modelFile, providers, log);
  const [, channels, height, width] = model.input.dims;
  if (channels !== 3 || typeof height !== 'number' || height !== width) {
    throw new CelforgeError('CONFIG_INVALID', `${modelFile}: not a YOLO detector (input ${JSON.stringify(model.input.dims)}, expected [1, 3, size, size])`, { file: modelFile });
  }
  return { size: height, model };
}

export async function letterbox(image: string | Buffer, size: number): Promise<Letterbox> {
  const source = sharp(image).removeAlpha();
  const { width = 0, height = 0 } = await source.metadata();
  const scale = Math.min(size / width, size / height);
  const resizedWidth = Math.round(width * scale);
  const resizedHeight = Math.round(height * scale);
  const padX = Math.floor((size - resizedWidth) / 2);
  const padY = Math.floor((size - resizedHeight) / 2);
  const rgb = await source
    .resize(resizedWidth, resizedHeight, { kernel: 'linear' })
    .extend({ left: padX, right: size - resizedWidth - padX, top: padY, bottom: size - resizedHeight - padY, background: { r: 114, g: 114, b: 114 } })
    .raw()
    .toBuffer();
  const plane = size * size;
  const input = new Float32Array(3 * plane);
  for (let pixel = 0; pixel < plane; pixel += 1) {
    input[pixel] = rgb[pixel * 3]! / 255;
    input[plane + pixel] = rgb[pixel * 3 + 1]! / 255;
    input[2 * plane + pixel] = rgb[pixel * 3 + 2]! / 255;
  }
  return { input, scale, padX, padY, width, height };
}

export async function detectFaces(detector: YoloDetector, image: string | Buffer, options: { score: number; iou: number }): Promise<FaceBox[]> {
  const boxed = await letterbox(image, detector.size);
  const output = await runOnnx(detector.model, boxed.input, [1, 3, detector.size, detector.size]);
  return decodeYolo(output.data, output.dims, boxed, options);
}

export function decodeYolo(data: Float32Array, dims: readonly number[], boxed: Omit<Letterbox, 'input'>, options: { score: number; iou: number }): FaceBox[] {
  const [, channels, count] = dims as [number, number, number];
  const candidates: FaceBox[] = [];
  for (let i = 0; i < count; i += 1) {
    let score = 0;
    for (let channel = 4; channel < channels; channel += 1) score = Math.max(score, data[channel * count + i]!);
    if (score < options.score) continue;
    const [cx, cy, w, h] = [0, 1, 2, 3].map((channel) => data[channel * count + i]!) as [number, number, number, number];
    const x1 = clamp((cx - w / 2 - boxed.padX) / boxed.scale, boxed.width);
    const y1 = clamp((cy - h / 2 - boxed.padY) / boxed.scale, boxed.height);
    const x2 = clamp((cx + w / 2 - boxed.padX) / boxed.scale, boxed.width);
    const y2 = clamp((cy + h / 2 - boxed.padY) / boxed.scale, boxed.height);
    if (x2 > x1 && y2 > y1) candidates.push({ x: x1, y: y1, width: x2 - x1, height: y2 - y1, score });
  }
  return nonMaximumSuppression(candidates, options.iou);
}

/** Keeps the best-scoring box of every group overlapping by more than `iou`. */
export function nonMaximumSuppression(boxes: FaceBox[], iou: number): FaceBox[] {
  const kept: FaceBox[] = [];
  for (const box of [...boxes].sort((a, b) => b.score - a.score)) {
    if (kept.every((other) => intersectionOverUnion(box, other) <= iou)) kept.push(box);
  }
  return kept;
}

export function intersectionOverUnion(a: Omit<FaceBox, 'score'>, b: Omit<FaceBox, 'score'>): number {
  const width = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const height = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (width <= 0 || height <= 0) return 0;
  const overlap = width * height;
  return overlap / (a.width * a.height + b.width * b.height - overlap);
}

function clamp(value: number, max: number): number {
  return Math.min(max, Math.max(0, value));
}
