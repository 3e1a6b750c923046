/**
 * The stored renders of the checkpoint review: for each version, template
 * and seed a picture `<dir>/reviews/<version>/<template folder>/<seed>.png`
 * and its record `<seed>.json` (version, checkpoint and its sha256,
 * template, seed, the full parameters, the generator's URL, when).
 *
 * API: `renderVersion(generator, version, checkpoint, jobs, dir)` renders
 * what is missing or was rendered with other parameters and reuses the rest;
 * `storedRender(dir, version, job)` -> the record and picture path of a
 * stored render made with the job's parameters, or undefined;
 * `reviewFolder(dir, version)`.
 *
 * Each file is written to a temporary name and renamed, the picture before
 * its record: a picture without a record counts as missing, so a generator
 * that fails half way (GeneratorUnavailable, thrown on) leaves nothing that
 * a later run would take for a finished render.
 */
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { replaceFileDurably } from '../../adapters/durable-file.ts';
import type { ImageGenerator, ModelKind } from '../../adapters/image-generator.ts';
import { CelforgeError } from '../../errors.ts';
import type { RenderJob, RenderParameters } from './templates.ts';

export interface ReviewCheckpoint {
  kind: ModelKind;
  /** The model file's name as the generator lists it. */
  name: string;
  /** A LoRA's weight (default 1). */
  weight?: number;
  /** The model file's sha256, computed by the caller. */
  sha256: string;
}

export interface RenderRecord {
  version: string;
  checkpoint: ReviewCheckpoint;
  template: string;
  seed: number;
  parameters: RenderParameters;
  /** The generator's URL, without credentials. */
  generator: string;
  renderedAt: string;
}

export interface VersionRenders {
  rendered: number;
  reused: number;
  records: RenderRecord[];
}

export function reviewFolder(dir: string, version: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(version)) {
    throw new CelforgeError('INTERNAL', `checkpoint review: version "${version}" is not usable as a folder name (letters, digits, ".", "_", "-")`);
  }
  return path.join(dir, 'reviews', version);
}

function renderFiles(dir: string, version: string, job: RenderJob) {
  const base = path.join(reviewFolder(dir, version), job.folder, String(job.parameters.seed));
  return { png: `${base}.png`, json: `${base}.json` };
}

/** A stored render of this version made with exactly the job's parameters (and a picture beside it). */
export async function storedRender(dir: string, version: string, job: RenderJob): Promise<{ record: RenderRecord; png: string } | undefined> {
  const files = renderFiles(dir, version, job);
  let record: RenderRecord;
  try {
    record = JSON.parse(await readFile(files.json, 'utf8')) as RenderRecord;
    await stat(files.png);
  } catch {
    // Missing, or a record cut short by a crash before this code wrote records atomically: render it again.
    return undefined;
  }
  if (record.template !== job.template || !isDeepStrictEqual(record.parameters, job.parameters)) return undefined;
  return { record, png: files.png };
}

/** Renders every job on `checkpoint` that is not stored for `version` with the same parameters and checkpoint. */
export async function renderVersion(generator: ImageGenerator, version: string, checkpoint: ReviewCheckpoint, jobs: RenderJob[], dir: string): Promise<VersionRenders> {
  const result: VersionRenders = { rendered: 0, reused: 0, records: [] };
  for (const job of jobs) {
    const stored = await storedRender(dir, version, job);
    if (stored && sameModel(stored.record.checkpoint, checkpoint)) {
      result.reused += 1;
      result.records.push(stored.record);
      continue;
    }
    const png = await generator.render({
      checkpoint: { kind: checkpoint.kind, name: checkpoint.name, ...(checkpoint.weight === undefined ? {} : { weight: checkpoint.weight }) },
      ...job.parameters,
    });
    const record: RenderRecord = {
      version,
      checkpoint,
      template: job.template,
      seed: job.parameters.seed,
      parameters: job.parameters,
      generator: generator.url,
      renderedAt: new Date().toISOString(),
    };
    const files = renderFiles(dir, version, job);
    // An old record left beside the new picture would vouch for it with the old parameters.
    await rm(files.json, { force: true });
    await replaceFileDurably(files.png, png);
    await replaceFileDurably(files.json, `${JSON.stringify(record, null, 2)}\n`);
    result.rendered += 1;
    result.records.push(record);
  }
  return result;
}

function sameModel(a: ReviewCheckpoint, b: ReviewCheckpoint): boolean {
  return a.kind === b.kind && a.name === b.name && a.sha256 === b.sha256 && (a.weight ?? 1) === (b.weight ?? 1);
}
