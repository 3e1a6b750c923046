/**
 * Downloads the models a stage needs on first need (models.autoFetch), for
 * the daemon and `celforge process`: one download per model at a time, which
 * every stage and job needing that model meanwhile waits on.
 */
import type { DownloadProgress } from './download-progress.ts';
import { downloadModel } from './model-download.ts';
import type { ModelEntry } from './manifest.ts';

export class ModelFetcher {
  readonly #progress: DownloadProgress;
  readonly #command: string;
  readonly #running = new Map<string, Promise<void>>();

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
    let running = this.#running.get(key);
    if (!running) {
      running = downloadModel({ modelsDir, model, progress: this.#progress, command: this.#command, signal })
        .finally(() => this.#running.delete(key));
      this.#running.set(key, running);
    }
    return running;
  }
}
