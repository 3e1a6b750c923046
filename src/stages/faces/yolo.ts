/**
 * Anime face detection with a YOLOv8 ONNX model (deepghs anime_face_detection):
 * the picture letterboxed into the model's square input (aspect kept, grey
 * 114 padding, RGB, NCHW float32 0..1); the output [1, 4 + classes, boxes]
 * holds centre/size boxes in input pixels and class scores with no
 * objectness. Boxes over the score threshold survive non-maximum suppression
 * and are mapped back to the picture's own pixels.
 */
import type { Letterbox } from '../../adapters/image-tensors.ts';
import { openOnnxModel, runOnnx, type OnnxModel } from '../../adapters/onnx-session.ts';
import { CelforgeError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { nonMaximumSuppression, type FaceBox } from './boxes.ts';

export interface YoloDetector {
  size: number;
  model: OnnxModel;
}

export async function loadYoloDetector(modelFile: string, providers: readonly string[], log: Logger): Promise<YoloDetector> {
  const model = await openOnnxModel(modelFile, providers, log);
  const [, channels, height, width] = model.input.dims;
  if (channels !== 3 || typeof height !== 'number' || height !== width) {
    throw new CelforgeError('CONFIG_INVALID', `${modelFile}: not a YOLO detector (input ${JSON.stringify(model.input.dims)}, expected [1, 3, size, size])`, { file: modelFile });
  }
  return { size: height, model };
}

export interface YoloOptions {
  score: number;
  iou: number;
}

/** Faces in each letterboxed picture, run in batches when the model's batch dimension is free. */
export async function detectYolo(detector: YoloDetector, pictures: Letterbox[], options: YoloOptions, batchSize: number): Promise<FaceBox[][]> {
  const batch = typeof detector.model.input.dims[0] === 'number' ? 1 : batchSize;
  const per = 3 * detector.size * detector.size;
  const results: FaceBox[][] = [];
  for (let start = 0; start < pictures.length; start += batch) {
    const group = pictures.slice(start, start + batch);
    const data = new Float32Array(group.length * per);
    group.forEach((picture, index) => data.set(picture.input, index * per));
    const output = await runOnnx(detector.model, data, [group.length, 3, detector.size, detector.size]);
    const [, channels, count] = output.dims as [number, number, number];
    const each = channels * count;
    group.forEach((picture, index) => {
      results.push(decodeYolo(output.data.subarray(index * each, (index + 1) * each), [1, channels, count], picture, options));
    });
  }
  return results;
}

export function decodeYolo(data: Float32Array, dims: readonly number[], boxed: Omit<Letterbox, 'input'>, options: YoloOptions): FaceBox[] {
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

function clamp(value: number, max: number): number {
  return Math.min(max, Math.max(0, value));
}
