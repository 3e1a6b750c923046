/**
 * The picture work that runs off the main thread: each task names a picture
 * file and what to make of it. `performImageTask` runs one, in a worker or
 * inline; `transferablesOf` lists the buffers a worker hands back without
 * copying.
 */
import { CelforgeError, errorMessage } from '../errors.ts';
import { ccipTensor } from './ccip-input.ts';
import { detectCascadeFaces, type Rect } from './face-cascade.ts';
import type { FaceMosaic } from './face-mosaic.ts';
import { faceBoxesInput, type FaceBoxesInputTask } from './faceboxes-input.ts';
import { greyPicture, wd14Tensor, yoloTensor, type YoloInput, type YoloResize } from './image-tensors.ts';

export type ImageTask =
  | { kind: 'wd14'; image: string; size: number }
  | { kind: 'ccip'; image: string; size: number }
  | { kind: 'yolo'; image: string; width: number; height: number; resize: YoloResize }
  | { kind: 'cascade'; image: string; cascade: string; maxSide: number }
  | ({ kind: 'faceboxes' } & FaceBoxesInputTask);

export interface ImageTaskResults {
  wd14: Float32Array;
  ccip: Float32Array;
  yolo: YoloInput;
  cascade: Rect[];
  faceboxes: FaceMosaic;
}

export type ImageTaskResult<T extends ImageTask> = ImageTaskResults[T['kind']];

export async function performImageTask<T extends ImageTask>(task: T): Promise<ImageTaskResult<T>> {
  try {
    return await perform(task);
  } catch (error) {
    if (error instanceof CelforgeError) throw error;
    throw new CelforgeError('IMAGE_UNREADABLE', `${task.image}: cannot read this picture (${errorMessage(error)})`, { file: task.image, cause: error });
  }
}

async function perform<T extends ImageTask>(task: T): Promise<ImageTaskResult<T>> {
  switch (task.kind) {
    case 'wd14':
      return (await wd14Tensor(task.image, task.size)) as ImageTaskResult<T>;
    case 'ccip':
      return (await ccipTensor(task.image, task.size)) as ImageTaskResult<T>;
    case 'yolo':
      return (await yoloTensor(task.image, task.width, task.height, task.resize)) as ImageTaskResult<T>;
    case 'cascade':
      return (await detectCascadeFaces(task.cascade, await greyPicture(task.image, task.maxSide))) as ImageTaskResult<T>;
    case 'faceboxes':
      return (await faceBoxesInput(task)) as ImageTaskResult<T>;
  }
}

export function transferablesOf(result: unknown): ArrayBuffer[] {
  if (result instanceof Float32Array) return [result.buffer as ArrayBuffer];
  if (result && typeof result === 'object' && 'input' in result && result.input instanceof Float32Array) return [result.input.buffer as ArrayBuffer];
  if (result && typeof result === 'object' && 'data' in result && result.data instanceof Float32Array) return [result.data.buffer as ArrayBuffer];
  return [];
}
