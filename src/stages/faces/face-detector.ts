/**
 * The configured face detector, loaded once, and faces found on a list of
 * pictures: the cascade runs whole in the image workers; YOLO has its
 * pictures brought to its input size there and runs batched on ONNX Runtime.
 */
import type { YoloInput, YoloResize } from '../../adapters/image-tensors.ts';
import type { ImageWorkers } from '../../adapters/image-workers.ts';
import type { Config } from '../../config/schema.ts';
import type { Logger } from '../../log.ts';
import { modelFile, type AvailableModel } from '../../models/model-availability.ts';
import type { ModelCache } from '../../models/model-cache.ts';
import type { FaceBox } from './boxes.ts';
import { detectYolo, loadYoloDetector, type YoloDetector } from './yolo.ts';

/** Long side the cascade looks at: measured on grid-36.jpg, the same recall as full size in a quarter of the time. */
const CASCADE_MAX_SIDE = 1536;

export const DEFAULT_DETECTOR_MODELS = { cascade: 'lbpcascade-animeface', yolo: 'anime-face-yolov8s' } as const;
export const DETECTOR_KINDS = { cascade: 'face-cascade', yolo: 'face-yolo' } as const;

export type FaceDetector =
  | { kind: 'cascade'; id: string; xml: string }
  | { kind: 'yolo'; id: string; yolo: YoloDetector; resize: YoloResize };

export interface DetectorPorts {
  images: ImageWorkers;
  models: ModelCache;
  log: Logger;
}

export function detectorModelId(config: Config): string | null {
  const { detector, model } = config.faces;
  return detector === 'none' ? null : model ?? DEFAULT_DETECTOR_MODELS[detector];
}

export async function loadFaceDetector(config: Config, model: AvailableModel, ports: DetectorPorts): Promise<FaceDetector> {
  const file = modelFile(model, config.faces.detector === 'yolo' ? '.onnx' : '.xml');
  if (config.faces.detector !== 'yolo') return { kind: 'cascade', id: model.entry.id, xml: file };
  const providers = config.inference.providers;
  const yolo = await ports.models.get(`yolo:${file}:${providers.join(',')}`, () => loadYoloDetector(file, providers, ports.log));
  return { kind: 'yolo', id: model.entry.id, yolo, resize: config.faces.resize };
}

/** What can run in the image workers: the whole cascade, or YOLO's input. */
export type PreparedFaces = { kind: 'found'; faces: FaceBox[][] } | { kind: 'yolo'; pictures: YoloInput[] };

export async function prepareFaces(detector: FaceDetector, images: readonly string[], workers: ImageWorkers): Promise<PreparedFaces> {
  if (detector.kind === 'cascade') {
    const found = await Promise.all(images.map((image) => workers.run({ kind: 'cascade', image, cascade: detector.xml, maxSide: CASCADE_MAX_SIDE })));
    // The cascade gives no score; every box it keeps counts as a face.
    return { kind: 'found', faces: found.map((rects) => rects.map((rect) => ({ ...rect, score: 1 }))) };
  }
  const { width, height } = detector.yolo;
  return { kind: 'yolo', pictures: await Promise.all(images.map((image) => workers.run({ kind: 'yolo', image, width, height, resize: detector.resize }))) };
}

export async function finishFaces(detector: FaceDetector, prepared: PreparedFaces, config: Config): Promise<FaceBox[][]> {
  if (prepared.kind === 'found') return prepared.faces;
  if (detector.kind !== 'yolo') throw new Error('pictures prepared for YOLO need a YOLO detector');
  return detectYolo(detector.yolo, prepared.pictures, { score: config.faces.score, iou: config.faces.iou }, config.inference.batchSize);
}
