/**
 * The configured face detector, loaded once, and faces found on a list of
 * pictures: the cascade runs whole in the image workers; YOLO has its
 * pictures brought to its input size there and runs batched on ONNX Runtime;
 * FaceBoxes has the cascade's proposals and its mosaic inputs made there
 * (adapters/faceboxes-input.ts) and runs batched too.
 */
import type { FaceMosaic } from '../../adapters/face-mosaic.ts';
import type { YoloInput, YoloResize } from '../../adapters/image-tensors.ts';
import type { ImageWorkers } from '../../adapters/image-workers.ts';
import type { Config } from '../../config/schema.ts';
import { CelforgeError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { modelFile, modelsAvailable, type AvailableModel } from '../../models/model-availability.ts';
import type { ModelCache } from '../../models/model-cache.ts';
import type { FaceBox } from './boxes.ts';
import { detectFaceBoxes, FACEBOXES_DEFAULTS } from './faceboxes.ts';
import { detectYolo, loadYoloDetector, type YoloDetector } from './yolo.ts';

/** Long side the cascade looks at: measured on grid-36.jpg, the same recall as full size in a quarter of the time. */
const CASCADE_MAX_SIDE = 1536;

/** FaceBoxes at S=1024 by default: on bench/faces-detector.bench.ts as good as 1536 within a face in 76 (both over 0.95 recall and precision), at under half the network's work. */
export const DEFAULT_DETECTOR_MODELS = { faceboxes: 'anime-faceboxes-1024', cascade: 'lbpcascade-animeface', yolo: 'anime-face-yolov8s' } as const;
export const DETECTOR_KINDS = { faceboxes: 'face-detector', cascade: 'face-cascade', yolo: 'face-yolo' } as const;
/** YOLO's score and NMS overlap when the configuration sets none (the values faces.score and faces.iou had before FaceBoxes). */
const YOLO_DEFAULTS = { score: 0.25, iou: 0.7 };

export type FaceDetector =
  | { kind: 'cascade'; id: string; xml: string }
  | { kind: 'yolo'; id: string; yolo: YoloDetector; resize: YoloResize }
  | { kind: 'faceboxes'; id: string; yolo: YoloDetector; cascade: string };

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
  const { detector } = config.faces;
  const file = modelFile(model, detector === 'cascade' ? '.xml' : '.onnx');
  if (detector === 'cascade') return { kind: 'cascade', id: model.entry.id, xml: file };
  const providers = config.inference.providers;
  const yolo = await ports.models.get(`yolo:${file}:${providers.join(',')}`, () => loadYoloDetector(file, providers, ports.log));
  if (detector === 'yolo') return { kind: 'yolo', id: model.entry.id, yolo, resize: config.faces.resize };
  if (yolo.width !== yolo.height) throw new CelforgeError('CONFIG_INVALID', `${file}: FaceBoxes takes a square input; this model's is ${yolo.width}x${yolo.height}`, { file });
  return { kind: 'faceboxes', id: model.entry.id, yolo, cascade: await proposalCascade(config) };
}

/** The shipped LBP cascade, which proposes where FaceBoxes should look closer. */
async function proposalCascade(config: Config): Promise<string> {
  const available = await modelsAvailable(config, [DEFAULT_DETECTOR_MODELS.cascade], [DETECTOR_KINDS.cascade]);
  if (!available.ready) throw new CelforgeError('FILE_NOT_FOUND', `faces.detector "faceboxes" needs the LBP cascade for small faces: ${available.reason}`);
  return modelFile(available.models[0]!, '.xml');
}

/** What can run in the image workers: the whole cascade, or YOLO's input. */
export type PreparedFaces = { kind: 'found'; faces: FaceBox[][] } | { kind: 'yolo'; pictures: YoloInput[] } | { kind: 'faceboxes'; mosaics: FaceMosaic[] };

export async function prepareFaces(detector: FaceDetector, images: readonly string[], workers: ImageWorkers): Promise<PreparedFaces> {
  if (detector.kind === 'cascade') {
    const found = await Promise.all(images.map((image) => workers.run({ kind: 'cascade', image, cascade: detector.xml, maxSide: CASCADE_MAX_SIDE })));
    // The cascade gives no score; every box it keeps counts as a face.
    return { kind: 'found', faces: found.map((rects) => rects.map((rect) => ({ ...rect, score: 1 }))) };
  }
  if (detector.kind === 'faceboxes') {
    const { cascade, yolo } = detector;
    return { kind: 'faceboxes', mosaics: await Promise.all(images.map((image) => workers.run({ kind: 'faceboxes', image, size: yolo.width, cascade }))) };
  }
  const { width, height } = detector.yolo;
  return { kind: 'yolo', pictures: await Promise.all(images.map((image) => workers.run({ kind: 'yolo', image, width, height, resize: detector.resize }))) };
}

export async function finishFaces(detector: FaceDetector, prepared: PreparedFaces, config: Config): Promise<FaceBox[][]> {
  if (prepared.kind === 'found') return prepared.faces;
  const { score, iou } = config.faces;
  if (prepared.kind === 'faceboxes' && detector.kind === 'faceboxes') {
    return detectFaceBoxes(detector.yolo, prepared.mosaics, { score: score ?? FACEBOXES_DEFAULTS.score, iou: iou ?? FACEBOXES_DEFAULTS.iou }, config.inference.batchSize);
  }
  if (prepared.kind !== 'yolo' || detector.kind !== 'yolo') throw new Error(`pictures prepared for ${prepared.kind} cannot go to the ${detector.kind} detector`);
  return detectYolo(detector.yolo, prepared.pictures, { score: score ?? YOLO_DEFAULTS.score, iou: iou ?? YOLO_DEFAULTS.iou }, config.inference.batchSize);
}
