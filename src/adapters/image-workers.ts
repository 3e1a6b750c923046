/**
 * A pool of worker threads for picture work (decoding PNGs, resizing, the
 * per-pixel loops that build model inputs, the cascade), so that the main
 * thread stays free for the daemon, and preprocessing of the next batch runs
 * while ONNX Runtime works on this one. With 0 workers the tasks run inline.
 * Workers start on the first task, hold the process open only while busy,
 * and one that dies is replaced; its task fails with the reason.
 */
import { Worker } from 'node:worker_threads';
import { CelforgeError, type ErrorCode } from '../errors.ts';
import { terminateWorkers } from './terminate-workers.ts';
import { performImageTask, type ImageTask, type ImageTaskResult } from './image-tasks.ts';

const BOOT = new URL('./worker-boot.mjs', import.meta.url);
const WORKER_MODULE = new URL('./image-worker.ts', import.meta.url).href;

export interface ImageWorkers {
  readonly threads: number;
  run<T extends ImageTask>(task: T): Promise<ImageTaskResult<T>>;
  close(): Promise<void>;
}

interface Pending {
  id: number;
  task: ImageTask;
  resolve: (value: never) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: Pending | null;
}

export function createImageWorkers(threads: number): ImageWorkers {
  return threads > 0 ? new ImageWorkerPool(threads) : { threads: 0, run: performImageTask, close: async () => {} };
}

class ImageWorkerPool implements ImageWorkers {
  readonly threads: number;
  readonly #slots: Slot[] = [];
  readonly #queue: Pending[] = [];
  #nextId = 0;
  #closed = false;

  constructor(threads: number) {
    this.threads = threads;
  }

  run<T extends ImageTask>(task: T): Promise<ImageTaskResult<T>> {
    if (this.#closed) return Promise.reject(new Error('the image worker pool is closed'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: (this.#nextId += 1), task, resolve: resolve as (value: never) => void, reject });
      this.#dispatch();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const pending of this.#queue.splice(0)) pending.reject(new Error('the image worker pool was closed'));
    await terminateWorkers(this.#slots.splice(0).map(({ worker }) => worker));
  }

  #dispatch(): void {
    while (this.#queue.length) {
      let slot = this.#slots.find((candidate) => !candidate.busy);
      if (!slot && this.#slots.length < this.threads) slot = this.#spawn();
      if (!slot) return;
      const pending = this.#queue.shift()!;
      slot.busy = pending;
      slot.worker.ref();
      slot.worker.postMessage({ id: pending.id, task: pending.task });
    }
  }

  #spawn(): Slot {
    const worker = new Worker(BOOT, { workerData: { module: WORKER_MODULE } });
    const slot: Slot = { worker, busy: null };
    worker.unref();
    worker.on('message', (message: { id: number; result?: unknown; error?: { code: ErrorCode; message: string } }) => {
      const pending = slot.busy;
      if (!pending || pending.id !== message.id) return;
      slot.busy = null;
      worker.unref();
      if (message.error) pending.reject(new CelforgeError(message.error.code, message.error.message, { file: pending.task.image }));
      else pending.resolve(message.result as never);
      this.#dispatch();
    });
    const lost = (reason: string) => {
      const index = this.#slots.indexOf(slot);
      if (index < 0) return;
      this.#slots.splice(index, 1);
      slot.busy?.reject(new CelforgeError('INTERNAL', `${slot.busy.task.image}: the image worker stopped (${reason})`, { file: slot.busy.task.image }));
      slot.busy = null;
      if (!this.#closed) this.#dispatch();
    };
    worker.on('error', (error) => lost(error.message));
    worker.on('exit', (code) => lost(`exit code ${code}`));
    this.#slots.push(slot);
    return slot;
  }
}
