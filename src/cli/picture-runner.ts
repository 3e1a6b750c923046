/**
 * What `celforge faces` and `celforge tags` share: the configuration, the
 * image workers and loaded models for one run, and per-picture preparation
 * where a picture that cannot be read is reported on its own instead of
 * stopping the others.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createImageWorkers, type ImageWorkers } from '../adapters/image-workers.ts';
import type { Config } from '../config/schema.ts';
import { CelforgeError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { modelsAvailable, type AvailableModel } from '../models/model-availability.ts';
import type { ModelEntry } from '../models/manifest.ts';
import { ModelCache } from '../models/model-cache.ts';
import { commandContext, type GlobalOptions } from './context.ts';

export interface PictureRun {
  config: Config;
  log: Logger;
  images: ImageWorkers;
  models: ModelCache;
  pictures: string[];
}

export async function withPictureRun<T>(pictures: string[], options: GlobalOptions, work: (run: PictureRun) => Promise<T>): Promise<T> {
  const missing = pictures.filter((picture) => !existsSync(picture));
  if (missing.length) throw new CelforgeError('FILE_NOT_FOUND', `${missing.join(', ')}: no such file`, { file: missing[0] });
  const { config, log } = await commandContext(options, 'warn');
  const images = createImageWorkers(config.inference.workers);
  try {
    return await work({ config, log, images, models: new ModelCache(), pictures: pictures.map((picture) => path.resolve(picture)) });
  } finally {
    await images.close();
  }
}

/** The models, or an error that names the fetch command. */
export async function requireModels(config: Config, ids: readonly string[], kinds: readonly ModelEntry['kind'][]): Promise<AvailableModel[]> {
  const available = await modelsAvailable(config, ids, kinds);
  if (!available.ready) throw new CelforgeError('FILE_NOT_FOUND', available.reason);
  return available.models;
}

export type Prepared<P> = { ok: true; value: P } | { ok: false; error: string };

/** Prepares each picture alone, so that one unreadable picture is named and the rest go on. */
export async function prepareEach<P>(pictures: readonly string[], prepare: (picture: string) => Promise<P>): Promise<Prepared<P>[]> {
  const settled = await Promise.allSettled(pictures.map(prepare));
  return settled.map((result) => (result.status === 'fulfilled' ? { ok: true, value: result.value } : { ok: false, error: errorMessage(result.reason) }));
}
