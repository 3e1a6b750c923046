/**
 * Downloads one model's missing files into the models folder through the
 * downloader (resume from a `.part`, size and SHA-256 checks), holding
 * `<models.dir>/<id>.fetch.lock` so that two celforge processes never write
 * the same files at once. Shipped models are never downloaded.
 */
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { download } from '../adapters/downloader.ts';
import { acquireLock } from '../adapters/lock-file.ts';
import { CelforgeError } from '../errors.ts';
import type { DownloadProgress } from './download-progress.ts';
import { modelFilePath, shippedModelMissing, type ModelEntry, type ModelFile } from './manifest.ts';

export interface ModelDownload {
  modelsDir: string;
  model: ModelEntry;
  progress: DownloadProgress;
  /** Who downloads, named to another process that finds the download under way ("start", "models fetch"). */
  command: string;
  signal?: AbortSignal;
}

/** Whether the model can be downloaded at all: not shipped, and every file has an address. */
export function isDownloadable(model: ModelEntry): boolean {
  return !model.shipped && model.files.every((file) => file.url !== null);
}

export async function downloadModel({ modelsDir, model, progress, command, signal }: ModelDownload): Promise<void> {
  if (model.shipped) throw shippedModelMissing(model);
  const nowhere = model.files.find((file) => file.url === null);
  if (nowhere) throw new CelforgeError('CONFIG_INVALID', `model ${model.id}: ${nowhere.name} has no url to download it from`);
  const lock = await acquireLock(path.join(modelsDir, `${model.id}.fetch.lock`), command, `the download of model ${model.id}`);
  try {
    for (const file of model.files) {
      const dest = modelFilePath(modelsDir, model, file);
      if (await isInPlace(dest, file)) continue;
      const name = `${model.id}/${file.name}`;
      progress.start(name, file.url!, file.size);
      try {
        const result = await download({
          url: file.url!, dest, sha256: file.sha256, size: file.size, signal,
          onProgress: (received, total) => progress.update(name, received, total),
        });
        progress.done(name, result);
      } catch (error) {
        progress.failed(name, error);
        throw error;
      }
    }
  } finally {
    await lock.release();
  }
}

async function isInPlace(dest: string, file: ModelFile): Promise<boolean> {
  return existsSync(dest) && (file.size === null || (await stat(dest)).size === file.size);
}
