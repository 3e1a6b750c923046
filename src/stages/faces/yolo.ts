/**
 * Anime face detection with a YOLOv8 ONNX model (deepghs anime_face_detection):
 * the picture brought to the model's input size (letterboxed or stretched,
 * see image-tensors.ts; RGB, NCHW float32 0..1); the output
 * [1, 4 + classes, boxes] holds centre/size boxes in input pixels and class
 * scores with no objectness. Boxes over the score threshold survive
 * non-maximum suppression and are mapped back to the picture's own pixels.
 *
 * The input size: fixed dimensions as the model declares them; where height
 * and width are symbolic (an ultralytics export with `dynamic=True` declares
 * [batch, 3, height, width]), the `imgsz` [height, width] that ultralytics'
 * exporter writes into the model's metadata (ultralytics/engine/exporter.py,
 * `self.metadata`, each value `str(v)`), else 640 as imgutils
 * (imgutils/generic/yolo.py, `YOLOModel._open_model`).
 */
import type { YoloInput } from '../../adapters/image-tensors.ts';
import { readOnnxMetadata } from '../../adapters/onnx-metadata.ts';
import { openOnnxModel, runOnnx, type OnnxModel } from '../../adapters/onnx-session.ts';
import { CelforgeError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { nonMaximumSuppression, type FaceBox } from './boxes.ts';

/** imgutils' input size when a model's metadata has no `imgsz`. */
export const DEFAULT_YOLO_SIZE = 640;

export interface YoloDetector {
  /** The input the pictures are brought to, in pixels. */
  width: number;
  height: number;
  model: OnnxModel;
}

export async function loadYoloDetector(modelFile: string, providers: readonly string[], log: Logger): Promise<YoloDetector> {
  const model = await openOnnxModel(modelFile, providers, log);
  const dims = model.input.dims;
  const [, channels, height, width] = dims;
  if (dims.length !== 4 || channels !== 3) {
    throw new CelforgeError('CONFIG_INVALID', `${modelFile}: not a YOLO detector (input ${JSON.stringify(dims)}, expected [batch, 3, height, width])`, { file: modelFile });
  }
  if (fixed(height) && fixed(width)) return { width, height, model };
  const [metaHeight, metaWidth] = imageSizeOf(await readOnnxMetadata(modelFile), modelFile);
  return { height: fixed(height) ? height : metaHeight, width: fixed(width) ? width : metaWidth, model };
}

/** A dimension with a size; a free one is a name (or a number below 1). */
function fixed(dim: number | string | undefined): dim is number {
  return typeof dim === 'number' && dim > 0;
}

/** [height, width] from ultralytics' `imgsz` metadata ("[640, 640]", or one number for both), else 640 x 640. */
function imageSizeOf(metadata: Record<string, string>, file: string): [number, number] {
  const text = metadata.imgsz;
  if (text === undefined) return [DEFAULT_YOLO_SIZE, DEFAULT_YOLO_SIZE];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  const size = typeof parsed === 'number' ? [parsed, parsed] : parsed;
  if (Array.isArray(size) && size.length === 2 && size.every((side) => Number.isInteger(side) && side >= 32 && side <= 8192)) return size as [number, number];
  throw new CelforgeError('CONFIG_INVALID', `${file}: the model's input size is free and its "imgsz" metadata (${JSON.stringify(text)}) is not [height, width]; use a model exported by ultralytics, or one with a fixed input size`, { file });
}

export interface YoloOptions {
  score: number;
  iou: number;
}

/** Faces in each prepared picture, run in batches when the model's batch dimension is free. */
export async function detectYolo(detector: YoloDetector, pictures: YoloInput[], options: YoloOptions, batchSize: number): Promise<FaceBox[][]> {
  const outputs = await runYoloInputs(detector, pictures.map((picture) => picture.input), batchSize);
  return pictures.map((picture, index) => decodeYolo(outputs[index]!.data, outputs[index]!.dims, picture, options));
}

/** The model's output for each input (3 x height x width floats), run in batches when the batch dimension is free. */
export async function runYoloInputs(detector: YoloDetector, inputs: readonly Float32Array[], batchSize: number): Promise<{ data: Float32Array; dims: readonly number[] }[]> {
  const batch = fixed(detector.model.input.dims[0]) ? 1 : batchSize;
  const per = 3 * detector.width * detector.height;
  const results: { data: Float32Array; dims: readonly number[] }[] = [];
  for (let start = 0; start < inputs.length; start += batch) {
    const group = inputs.slice(start, start + batch);
    const data = new Float32Array(group.length * per);
    group.forEach((input, index) => data.set(input, index * per));
    const output = await runOnnx(detector.model, data, [group.length, 3, detector.height, detector.width]);
    const [, channels, count] = output.dims as [number, number, number];
    const each = channels * count;
    group.forEach((_, index) => results.push({ data: output.data.subarray(index * each, (index + 1) * each), dims: [1, channels, count] }));
  }
  return results;
}

export function decodeYolo(data: Float32Array, dims: readonly number[], prepared: Omit<YoloInput, 'input'>, options: YoloOptions): FaceBox[] {
  const { padX, padY, scaleX, scaleY, width, height } = prepared;
  const candidates: FaceBox[] = [];
  for (const box of yoloCandidates(data, dims, options.score)) {
    const x1 = clamp((box.x - padX) / scaleX, width);
    const y1 = clamp((box.y - padY) / scaleY, height);
    const x2 = clamp((box.x + box.width - padX) / scaleX, width);
    const y2 = clamp((box.y + box.height - padY) / scaleY, height);
    if (x2 > x1 && y2 > y1) candidates.push({ x: x1, y: y1, width: x2 - x1, height: y2 - y1, score: box.score });
  }
  return nonMaximumSuppression(candidates, options.iou);
}

/** Boxes scoring at least `score` (best class), corners in input pixels, before NMS: output [1, 4 + classes, boxes] as centre x, centre y, width, height, class scores. */
export function yoloCandidates(data: Float32Array, dims: readonly number[], minimum: number): FaceBox[] {
  const [, channels, count] = dims as [number, number, number];
  const boxes: FaceBox[] = [];
  for (let i = 0; i < count; i += 1) {
    let score = 0;
    for (let channel = 4; channel < channels; channel += 1) score = Math.max(score, data[channel * count + i]!);
    if (score < minimum) continue;
    const [cx, cy, w, h] = [0, 1, 2, 3].map((channel) => data[channel * count + i]!) as [number, number, number, number];
    boxes.push({ x: cx - w / 2, y: cy - h / 2, width: w, height: h, score });
  }
  return boxes;
}

function clamp(value: number, max: number): number {
  return Math.min(max, Math.max(0, value));
}
