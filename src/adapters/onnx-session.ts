/**
 * ONNX Runtime sessions (onnxruntime-node). Execution providers come from the
 * configuration ('auto' resolved in onnx-providers.ts); asking for
 * ['cuda', 'cpu'] throws when CUDA cannot load rather than falling back, so
 * a failure is retried on CPU with one log line.
 */
import { existsSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { CelforgeError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { resolveProviders } from './onnx-providers.ts';

export type { InferenceSession } from 'onnxruntime-node';

export interface InputShape {
  name: string;
  /** Dimensions as the model declares them; a string is a free (batch) dimension. */
  dims: (number | string)[];
}

export interface OnnxModel {
  session: ort.InferenceSession;
  input: InputShape;
  outputName: string;
  providers: string[];
}

export async function openOnnxModel(file: string, providers: readonly string[], log: Logger): Promise<OnnxModel> {
  if (!existsSync(file)) {
    throw new CelforgeError('FILE_NOT_FOUND', `${file}: model file missing; run "celforge models fetch" to download it`, { file });
  }
  let used = await resolveProviders(providers, log);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(file, { executionProviders: used });
  } catch (error) {
    if (used.length === 1 && used[0] === 'cpu') throw unreadable(file, error);
    log.warn({ file, providers: used }, `execution providers ${used.join(', ')} could not load (${firstLine(error)}); using CPU`);
    used = ['cpu'];
    try {
      session = await ort.InferenceSession.create(file, { executionProviders: used });
    } catch (cpuError) {
      throw unreadable(file, cpuError);
    }
  }
  const metadata = (session as unknown as { inputMetadata: { name: string; shape?: (number | string)[] }[] }).inputMetadata[0]!;
  return { session, input: { name: metadata.name, dims: metadata.shape ?? [] }, outputName: session.outputNames[0]!, providers: used };
}

/** Runs a float32 batch through the model's first input and returns its first output. */
export async function runOnnx(model: OnnxModel, data: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const output = await model.session.run({ [model.input.name]: new ort.Tensor('float32', data, dims) });
  const tensor = output[model.outputName]!;
  return { data: tensor.data as Float32Array, dims: tensor.dims };
}

function unreadable(file: string, error: unknown): CelforgeError {
  return new CelforgeError('FILE_NOT_FOUND', `${file}: ONNX Runtime cannot load this model (${firstLine(error)}); fetch it again with "celforge models fetch"`, { file, cause: error });
}

function firstLine(error: unknown): string {
  return errorMessage(error).split('\n')[0]!.slice(0, 300);
}
