/**
 * DeepGHS CCIP (Hugging Face deepghs/ccip_onnx, read by imgutils'
 * imgutils/metrics/ccip.py at deepghs/imgutils@525c042e): a model folder
 * holds `model_feat.onnx` (crop -> feature), `model_metrics.onnx` (features
 * -> difference matrix) and `metrics.json` (the "same character" threshold).
 *
 * - features: crops prepared as ccip.py's `_preprocess_image` (see
 *   adapters/ccip-input.ts), run in batches through the input named `input`,
 *   `[N,3,384,384]` float32, output `output` `[N,768]` (ccip.py:159-161,
 *   `run(['output'], {'input': data})`);
 * - differences: the features stacked `[N,768]` into `model_metrics.onnx`,
 *   output `[N,N]` (ccip.py:321-322); a difference <= threshold is the same
 *   character (ccip.py:289, `ccip_same`). The threshold is metrics.json's
 *   `threshold` (ccip.py:88-89 and 197), 0.178 for ccip-caformer-24-randaug-pruned.
 *
 * The metrics model sees all its rows at once, so a large set is done in
 * blocks: two blocks of features stacked, and the cross block of the output
 * kept (each pair's difference depends on the pair only, as imgutils relies
 * on when it compares features one list at a time). The full matrix is
 * 4 N^2 bytes (1.6 GB at 20k crops, a 2.0 GB peak in bench/ccip.bench.ts);
 * `crossDifferences` gives one block so callers can keep less
 * (src/stages/characters/clustering.ts assigns new crops that way: 0.45 GB
 * for 2k crops added to 18k).
 */
import { constants } from 'node:buffer';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createImageWorkers, type ImageWorkers } from '../adapters/image-workers.ts';
import { openOnnxModel, runOnnx, type OnnxModel } from '../adapters/onnx-session.ts';
import { CelforgeError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';

export const CCIP_FEATURE_FILE = 'model_feat.onnx';
export const CCIP_METRICS_FILE = 'model_metrics.onnx';
export const CCIP_THRESHOLD_FILE = 'metrics.json';
/** ccip.py:61 and 134, `size: int = 384`, used when the model's input size is symbolic. */
export const CCIP_DEFAULT_SIZE = 384;

export interface CcipOptions {
  /** ONNX Runtime execution providers (config `inference.providers`). */
  providers: readonly string[];
  /** Crops per run of the feature model. */
  batchSize: number;
  log: Logger;
  /** Where crops are decoded and resized; inline on this thread when absent. */
  images?: ImageWorkers;
  /** Features per block of the difference matrix; the metrics model sees at most twice this many rows at once. */
  blockSize?: number;
}

export interface CcipModel {
  /** The model folder's name, e.g. ccip-caformer-24-randaug-pruned. */
  id: string;
  /** metrics.json's threshold: a difference at or below it is the same character. */
  threshold: number;
  /** Values per feature (768 for the published models). */
  featureSize: number;
  features(files: readonly string[]): Promise<Float32Array[]>;
  /** Row-major N x N differences between every pair. */
  differences(features: readonly Float32Array[]): Promise<Float32Array>;
  /** Row-major rows.length x columns.length differences between each row and each column. */
  crossDifferences(rows: readonly Float32Array[], columns: readonly Float32Array[]): Promise<Float32Array>;
  close(): Promise<void>;
}

const DEFAULT_BLOCK = 1024;
const { MAX_LENGTH } = constants;

export async function loadCcipModel(dir: string, options: CcipOptions): Promise<CcipModel> {
  const id = path.basename(path.resolve(dir));
  for (const name of [CCIP_FEATURE_FILE, CCIP_METRICS_FILE, CCIP_THRESHOLD_FILE]) {
    const file = path.join(dir, name);
    if (!existsSync(file)) {
      throw new CelforgeError('FILE_NOT_FOUND', `${file}: missing from the CCIP model folder ${dir}; run "celforge models fetch ${id}"`, { file });
    }
  }
  const threshold = await readThreshold(path.join(dir, CCIP_THRESHOLD_FILE));
  const feature = await openOnnxModel(path.join(dir, CCIP_FEATURE_FILE), options.providers, options.log);
  let metrics: OnnxModel;
  try {
    metrics = await openOnnxModel(path.join(dir, CCIP_METRICS_FILE), options.providers, options.log);
  } catch (error) {
    await feature.session.release();
    throw error;
  }
  try {
    return new OnnxCcip(id, threshold, feature, metrics, options, path.join(dir, CCIP_FEATURE_FILE), path.join(dir, CCIP_METRICS_FILE));
  } catch (error) {
    await Promise.all([feature.session.release(), metrics.session.release()]);
    throw error;
  }
}

async function readThreshold(file: string): Promise<number> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new CelforgeError('CONFIG_INVALID', `${file}: not readable JSON (${errorMessage(error)}); fetch it again with "celforge models fetch"`, { file, cause: error });
  }
  const threshold = (parsed as { threshold?: unknown } | null)?.threshold;
  if (typeof threshold !== 'number' || !Number.isFinite(threshold) || threshold <= 0) {
    throw new CelforgeError('CONFIG_INVALID', `${file}: "threshold" must be a positive number (got ${JSON.stringify(threshold)})`, { file });
  }
  return threshold;
}

class OnnxCcip implements CcipModel {
  readonly featureSize: number;
  readonly #size: number;
  readonly #images: ImageWorkers;
  readonly #ownsImages: boolean;
  readonly #block: number;

  constructor(
    readonly id: string,
    readonly threshold: number,
    private readonly feature: OnnxModel,
    private readonly metrics: OnnxModel,
    private readonly options: CcipOptions,
    private readonly featureFile: string,
    private readonly metricsFile: string,
  ) {
    const [, channels, height, width] = feature.input.dims;
    if (feature.input.dims.length !== 4 || (typeof channels === 'number' && channels !== 3) || (typeof height === 'number' && typeof width === 'number' && height !== width)) {
      throw new CelforgeError('CONFIG_INVALID', `${featureFile}: not a CCIP feature model (input ${JSON.stringify(feature.input.dims)}, expected [N, 3, size, size])`, { file: featureFile });
    }
    this.#size = typeof height === 'number' ? height : CCIP_DEFAULT_SIZE;
    // The feature width as the metrics model declares it, else as the feature model declares its output.
    const [, declared] = metrics.input.dims;
    const produced = (feature.session as unknown as { outputMetadata?: { shape?: (number | string)[] }[] }).outputMetadata?.[0]?.shape?.[1];
    const size = typeof declared === 'number' ? declared : produced;
    if (metrics.input.dims.length !== 2 || typeof size !== 'number') {
      throw new CelforgeError('CONFIG_INVALID', `${metricsFile}: not a CCIP metrics model (input ${JSON.stringify(metrics.input.dims)}, expected [N, features], and ${path.basename(featureFile)} does not declare its feature width)`, { file: metricsFile });
    }
    this.featureSize = size;
    this.#ownsImages = options.images === undefined;
    this.#images = options.images ?? createImageWorkers(0);
    this.#block = Math.max(1, options.blockSize ?? DEFAULT_BLOCK);
  }

  async features(files: readonly string[]): Promise<Float32Array[]> {
    const per = 3 * this.#size * this.#size;
    const results: Float32Array[] = [];
    const batchSize = Math.max(1, this.options.batchSize);
    for (let start = 0; start < files.length; start += batchSize) {
      const batch = files.slice(start, start + batchSize);
      const inputs = await Promise.all(batch.map((image) => this.#images.run({ kind: 'ccip', image, size: this.#size })));
      const data = new Float32Array(batch.length * per);
      inputs.forEach((input, index) => data.set(input, index * per));
      const output = await runOnnx(this.feature, data, [batch.length, 3, this.#size, this.#size]);
      if (output.dims.length !== 2 || output.dims[0] !== batch.length || output.dims[1] !== this.featureSize) {
        throw new CelforgeError('CONFIG_INVALID', `${this.featureFile}: gives features of shape ${JSON.stringify(output.dims)} for ${batch.length} crops, but ${path.basename(this.metricsFile)} reads ${this.featureSize} values each`, { file: this.featureFile });
      }
      for (let index = 0; index < batch.length; index += 1) results.push(output.data.slice(index * this.featureSize, (index + 1) * this.featureSize));
    }
    return results;
  }

  async differences(features: readonly Float32Array[]): Promise<Float32Array> {
    this.#check(features);
    const n = features.length;
    if (n * n * Float32Array.BYTES_PER_ELEMENT > MAX_LENGTH) {
      throw new CelforgeError('INTERNAL', `CCIP model ${this.id}: ${n} crops need a ${n} x ${n} difference matrix of ${((n * n * 4) / 2 ** 30).toFixed(1)} GiB, more than one array can hold here; add them in smaller groups (src/stages/characters/clustering.ts clusterIncrementally)`);
    }
    const matrix = new Float32Array(n * n);
    for (let rowStart = 0; rowStart < n; rowStart += this.#block) {
      const rows = features.slice(rowStart, rowStart + this.#block);
      for (let columnStart = rowStart; columnStart < n; columnStart += this.#block) {
        if (columnStart === rowStart) {
          const out = await this.#run(rows);
          for (let i = 0; i < rows.length; i += 1) matrix.set(out.subarray(i * rows.length, (i + 1) * rows.length), (rowStart + i) * n + rowStart);
          continue;
        }
        const columns = features.slice(columnStart, columnStart + this.#block);
        const both = rows.length + columns.length;
        const out = await this.#run([...rows, ...columns]);
        // Upper-right block: rows against columns; lower-left: columns against rows.
        for (let i = 0; i < rows.length; i += 1) matrix.set(out.subarray(i * both + rows.length, (i + 1) * both), (rowStart + i) * n + columnStart);
        for (let j = 0; j < columns.length; j += 1) matrix.set(out.subarray((rows.length + j) * both, (rows.length + j) * both + rows.length), (columnStart + j) * n + rowStart);
      }
    }
    return matrix;
  }

  async crossDifferences(rows: readonly Float32Array[], columns: readonly Float32Array[]): Promise<Float32Array> {
    this.#check(rows);
    this.#check(columns);
    const width = columns.length;
    const matrix = new Float32Array(rows.length * width);
    for (let rowStart = 0; rowStart < rows.length; rowStart += this.#block) {
      const rowBlock = rows.slice(rowStart, rowStart + this.#block);
      for (let columnStart = 0; columnStart < width; columnStart += this.#block) {
        const columnBlock = columns.slice(columnStart, columnStart + this.#block);
        const both = rowBlock.length + columnBlock.length;
        const out = await this.#run([...rowBlock, ...columnBlock]);
        for (let i = 0; i < rowBlock.length; i += 1) {
          matrix.set(out.subarray(i * both + rowBlock.length, (i + 1) * both), (rowStart + i) * width + columnStart);
        }
      }
    }
    return matrix;
  }

  async close(): Promise<void> {
    await Promise.all([this.feature.session.release(), this.metrics.session.release(), this.#ownsImages ? this.#images.close() : undefined]);
  }

  #check(features: readonly Float32Array[]): void {
    const wrong = features.findIndex((feature) => feature.length !== this.featureSize);
    if (wrong >= 0) {
      throw new CelforgeError('INTERNAL', `CCIP model ${this.id}: feature ${wrong} has ${features[wrong]!.length} values, but ${path.basename(this.metricsFile)} reads ${this.featureSize}`, { file: this.metricsFile });
    }
  }

  async #run(features: readonly Float32Array[]): Promise<Float32Array> {
    const n = features.length;
    const data = new Float32Array(n * this.featureSize);
    features.forEach((feature, index) => data.set(feature, index * this.featureSize));
    const output = await runOnnx(this.metrics, data, [n, this.featureSize]);
    if (output.dims.length !== 2 || output.dims[0] !== n || output.dims[1] !== n) {
      throw new CelforgeError('CONFIG_INVALID', `${this.metricsFile}: gives ${JSON.stringify(output.dims)} for ${n} features, expected [${n}, ${n}]`, { file: this.metricsFile });
    }
    return output.data;
  }
}
