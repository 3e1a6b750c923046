/**
 * Downloads the models a stage needs on first need (models.autoFetch), for
 * the daemon and `celforge process`: one download per model at a time, which
 * every stage and job needing that model meanwhile waits on. A download that
 * came whole but did not match its checksum is not made again for the same
 * manifest entry while the process lives (each re-check would fetch the
 * whole file again); a changed entry (SIGHUP) or `celforge models fetch`
 * tries again.
 */
import { DownloadMismatch } from '../adapters/downloader.ts';
import { CelforgeError } from '../errors.ts';
import type { DownloadProgress } from './download-progress.ts';
import { downloadModel } from './model-download.ts';
import type { ModelEntry } from './manifest.ts';

export class ModelFetcher {
  readonly #progress: DownloadProgress;
  readonly #command: string;
  readonly #running = new Map<string, Promise<void>>();
  readonly #mismatched = new Map<string, DownloadMismatch>();

  constructor(progress: DownloadProgress, command: string) {
    this.#progress = progress;
    this.#command = command;
  }

  /** Downloads each model's missing files, one model after the other; rejects with the first failure. */
  async fetch(modelsDir: string, models: readonly ModelEntry[], signal?: AbortSignal): Promise<void> {
    for (const model of models) await this.#once(modelsDir, model, signal);
  }

  #once(modelsDir: string, model: ModelEntry, signal?: AbortSignal): Promise<void> {
    const key = `${modelsDir}\0${model.id}`;
    const entry = JSON.stringify(model.files);
    const mismatch = this.#mismatched.get(`${key}\0${entry}`);
    if (mismatch) {
      return Promise.reject(new CelforgeError('FILE_NOT_FOUND', `${mismatch.message}; not downloaded again until its manifest entry changes, or run "celforge models fetch ${model.id}"`));
    }
    let running = this.#running.get(key);
    if (!running) {
      running = downloadModel({ modelsDir, model, progress: this.#progress, command: this.#command, signal })
        .catch((error: unknown) => {
          if (error instanceof DownloadMismatch) this.#mismatched.set(`${key}\0${entry}`, error);
          throw error;
        })
        .finally(() => this.#running.delete(key));
      this.#running.set(key, running);
    }
    return running;
  }
}
