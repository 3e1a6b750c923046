/**
 * Decoded frames paired with their dedup features, in decode order.
 *
 * The features (a pass over every pixel) are computed in worker threads, so
 * that the main thread only decides and writes while the next frames are
 * being read and measured. A frame in a FrameBuffers slot is read by the
 * worker where it lies (the slots are shared memory, handed over once); any
 * other frame's buffer is moved to the worker and back (transferred, not
 * copied). Its bytes are not changed, so its PNG is the same whatever the
 * number of threads. At most a few frames per worker are in
 * flight, and frames come out in the order they went in. A worker that dies
 * fails the pipeline with the frame it had; with 0 threads the work is inline.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { FrameBuffers } from '../../adapters/frame-buffers.ts';
import { terminateWorkers } from '../../adapters/terminate-workers.ts';
import { CelforgeError, type ErrorCode } from '../../errors.ts';
import { computeFeatures, type FrameFeatures } from './features.ts';

const BOOT = new URL('../../adapters/worker-boot.mjs', import.meta.url);
const FEATURE_WORKER = new URL('./feature-worker.ts', import.meta.url);
/** Frames queued per worker: one computing, one waiting, so a worker never idles between messages. */
const FRAMES_PER_WORKER = 2;

/** The frames the pipeline holds at most: those in flight, plus the one its consumer is working on. */
export function framesHeld(threads: number): number {
  return Math.max(0, threads) * FRAMES_PER_WORKER + 1;
}

export interface FrameWithFeatures {
  rgb: Buffer;
  features: FrameFeatures;
}

/**
 * The threads a machine gives feature work by default (config `extract.threads`):
 * one per core, sharing them with ffmpeg and sharp, up to 8, which measure some
 * 700 1080p frames a second, more than one decoder gives.
 */
export function defaultFeatureThreads(): number {
  return Math.min(8, os.availableParallelism());
}

/** `buffers`: the set the frames are decoded into, which the workers then read in place. */
export function framesWithFeatures(frames: AsyncIterable<Buffer>, width: number, height: number, threads: number, buffers?: FrameBuffers): AsyncIterable<FrameWithFeatures> {
  if (threads <= 0) return inline(frames, width, height);
  return pooled(frames, () => new FeatureWorkers(threads, width, height, { buffers }), threads * FRAMES_PER_WORKER);
}

async function* inline(frames: AsyncIterable<Buffer>, width: number, height: number): AsyncIterable<FrameWithFeatures> {
  for await (const rgb of frames) yield { rgb, features: computeFeatures(rgb, width, height) };
}

/**
 * Reads `frames` ahead (up to `limit` in flight) while the consumer works on
 * the frame it was given, so decoding, measuring and writing overlap.
 * Exported with the pool as a parameter for tests of a worker that dies.
 */
export async function* pooled(frames: AsyncIterable<Buffer>, startPool: () => FeatureWorkers, limit: number): AsyncIterable<FrameWithFeatures> {
  const pool = startPool();
  const iterator = frames[Symbol.asyncIterator]();
  const results: Promise<FrameWithFeatures>[] = [];
  let ended = false;
  let stopped = false;
  let inputFailure: { error: unknown } | null = null;
  let wakeConsumer: (() => void) | null = null;
  let wakePump: (() => void) | null = null;
  const wake = (which: 'consumer' | 'pump') => {
    const resolve = which === 'consumer' ? wakeConsumer : wakePump;
    if (which === 'consumer') wakeConsumer = null;
    else wakePump = null;
    resolve?.();
  };

  const pump = async () => {
    try {
      for (;;) {
        while (results.length >= limit && !stopped) await new Promise<void>((resolve) => (wakePump = resolve));
        if (stopped) break;
        const next = await iterator.next();
        if (next.done || stopped) break;
        const result = pool.compute(next.value);
        result.catch(() => undefined); // awaited in order below; this only silences an early rejection
        results.push(result);
        wake('consumer');
      }
    } catch (error) {
      inputFailure = { error };
    } finally {
      ended = true;
      wake('consumer');
      // After a stop, ends the input here (not in the consumer's finally): a read may still be pending.
      if (stopped) await iterator.return?.().catch(() => undefined);
    }
  };
  const pumping = pump();

  try {
    for (;;) {
      while (!results.length && !ended) await new Promise<void>((resolve) => (wakeConsumer = resolve));
      const head = results.shift();
      if (head) {
        wake('pump');
        yield await head;
        continue;
      }
      if (inputFailure) throw (inputFailure as { error: unknown }).error;
      return;
    }
  } finally {
    stopped = true;
    wake('pump');
    await pool.close();
    if (ended) await pumping;
  }
}

interface Task {
  id: number;
  /** The frame, kept here while a worker reads it in its shared slot. */
  rgb: Buffer | null;
  resolve: (value: FrameWithFeatures) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  tasks: Map<number, Task>;
  gone: boolean;
}

interface WorkerAnswer {
  id: number;
  rgb?: ArrayBuffer;
  features?: FrameFeatures;
  error?: { code: ErrorCode; message: string };
}

/** A fixed set of feature workers; each frame goes to the least loaded one. */
export class FeatureWorkers {
  readonly #slots: Slot[] = [];
  readonly #width: number;
  readonly #height: number;
  #nextId = 0;
  #closed = false;

  readonly #buffers: FrameBuffers | undefined;

  /** `module` is the worker's code (a test passes one that dies); `buffers`, shared frame slots the workers read in place. */
  constructor(threads: number, width: number, height: number, options: { module?: URL; buffers?: FrameBuffers | undefined } = {}) {
    this.#width = width;
    this.#height = height;
    this.#buffers = options.buffers;
    for (let i = 0; i < threads; i += 1) this.#slots.push(this.#spawn(options.module ?? FEATURE_WORKER));
  }

  compute(rgb: Buffer): Promise<FrameWithFeatures> {
    const slot = this.#slots.filter((candidate) => !candidate.gone).sort((a, b) => a.tasks.size - b.tasks.size)[0];
    const id = (this.#nextId += 1);
    if (this.#closed || !slot) return Promise.reject(new CelforgeError('INTERNAL', `frame ${id - 1}: the feature workers are ${this.#closed ? 'closed' : 'gone'}`));
    const shared = this.#buffers?.slotOf(rgb);
    if (shared !== undefined) {
      return new Promise((resolve, reject) => {
        slot.tasks.set(id, { id, rgb, resolve, reject });
        slot.worker.ref();
        slot.worker.postMessage({ id, slot: shared, width: this.#width, height: this.#height });
      });
    }
    // A small Buffer may share its memory with others (Node's pool); moving it would empty them.
    const own = rgb.byteOffset === 0 && rgb.byteLength === rgb.buffer.byteLength ? rgb : new Uint8Array(rgb);
    return new Promise((resolve, reject) => {
      slot.tasks.set(id, { id, rgb: null, resolve, reject });
      slot.worker.ref();
      slot.worker.postMessage({ id, rgb: own.buffer, width: this.#width, height: this.#height }, [own.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await terminateWorkers(this.#slots.map(({ worker }) => worker));
  }

  #spawn(module: URL): Slot {
    const worker = new Worker(BOOT, { workerData: { module: module.href } });
    const slot: Slot = { worker, tasks: new Map(), gone: false };
    worker.unref();
    if (this.#buffers) worker.postMessage({ shared: this.#buffers.shared });
    worker.on('message', (answer: WorkerAnswer) => {
      const task = slot.tasks.get(answer.id);
      if (!task) return;
      slot.tasks.delete(answer.id);
      if (!slot.tasks.size) worker.unref();
      if (answer.error) task.reject(new CelforgeError(answer.error.code, `frame ${answer.id - 1}: ${answer.error.message}`));
      else task.resolve({ rgb: task.rgb ?? Buffer.from(answer.rgb!), features: answer.features! });
    });
    const lost = (reason: string) => {
      if (slot.gone) return;
      slot.gone = true;
      for (const task of slot.tasks.values()) {
        const message = this.#closed
          ? `frame ${task.id - 1}: the feature workers were closed`
          : `frame ${task.id - 1}: the feature worker stopped (${reason}); dedup cannot go on without it`;
        task.reject(new CelforgeError('INTERNAL', message));
      }
      slot.tasks.clear();
    };
    worker.on('error', (error) => lost(error.message));
    worker.on('exit', (code) => lost(`exit code ${code}`));
    return slot;
  }
}
