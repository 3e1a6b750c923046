/**
 * One checkpoint version reviewed end to end: the trained model file linked
 * (or copied) into the generator's model folder as
 * `<train.outputName>-<version>.<ext>`, hashed, the generator refreshed, every
 * template rendered on it and on the previous version (stored renders reused),
 * all renders tagged and scored (tags, and the CCIP character score where a
 * template names a character), regressions against the previous version
 * flagged, the comparison sheet written, and review.json written last.
 *
 * API: `reviewCheckpoint(options)` -> ReviewOutcome: 'reviewed' with the
 * summary, or 'stopped' before a render that could not finish before the
 * deadline (or when the signal aborts); the renders made so far are stored and
 * reused by the next attempt. GeneratorUnavailable is thrown on: the caller
 * keeps the review queued. `modelKind(train)` says what a training makes.
 */
import { existsSync } from 'node:fs';
import { copyFile, link, mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { sha256Of } from '../../adapters/file-hash.ts';
import type { ImageGenerator, ModelKind } from '../../adapters/image-generator.ts';
import type { Config } from '../../config/schema.ts';
import { CelforgeError } from '../../errors.ts';
import type { TaggingPorts } from '../../inference/taggers.ts';
import { characterScores } from './character-score.ts';
import { writeComparisonSheet } from './comparison-sheet.ts';
import { renderVersion, storedRender, type ReviewCheckpoint } from './review-store.ts';
import { versionNumber, writeReviewSummary, type ReviewSummary, type TemplateReview } from './review-summary.ts';
import { aggregateScores, promptTags, regressions, scoreRender, tagRenders, type RenderScoreEntry, type TemplateScore } from './scores.ts';
import { loadTemplates, renderJobs, type RenderJob } from './templates.ts';

export interface ReviewVersion {
  /** "v<n>" */
  version: string;
  /** The trained model file. */
  checkpoint: string;
  /** Its sha256 when known from an earlier attempt (saves hashing a large file again). */
  sha256?: string | null;
}

export interface ReviewOptions {
  config: Config;
  generator: ImageGenerator;
  ports: TaggingPorts;
  current: ReviewVersion;
  /** The version compared against; null for the first. */
  previous: ReviewVersion | null;
  clock?: () => Date;
  /** No render starts that could not finish before this (the training window's end). */
  deadline?: Date | null;
  signal?: AbortSignal;
  progress?: (message: string) => void;
}

export type ReviewOutcome =
  | { status: 'reviewed'; summary: ReviewSummary; rendered: number; reused: number; sha256: string }
  | { status: 'stopped'; by: 'deadline' | 'signal'; reason: string; rendered: number; reused: number; remaining: number; sha256: string };

/**
 * sd-scripts' network trainers (train_network.py and its sdxl_/sd3_/flux_... variants) save a network to apply on a
 * base model, made by the module --network_module names (kohya-ss/sd-scripts@48d368f train_network.py:643-678, the
 * flag at :1782); its other trainers (train_db.py, sdxl_train.py, ...) save a full checkpoint.
 */
export function modelKind(train: NonNullable<Config['train']>): ModelKind {
  const script = path.basename(train.script).replace(/\.[^.]+$/, '');
  const args = Array.isArray(train.args) ? train.args : Object.keys(train.args).map((key) => `--${key}`);
  return script.endsWith('train_network') || args.some((arg) => /^--network[_-]module(=|$)/.test(arg)) ? 'lora' : 'checkpoint';
}

export async function reviewCheckpoint(options: ReviewOptions): Promise<ReviewOutcome> {
  const { config, generator, current, previous } = options;
  const clock = options.clock ?? (() => new Date());
  const train = config.train;
  if (!train) throw new CelforgeError('CONFIG_INVALID', `${config.source ?? 'the configuration'}: no train section; the checkpoint review needs train.dir and train.outputName`);
  const folder = config.review.generator?.modelFolder;
  if (!config.review.generator || !folder) {
    throw new CelforgeError('CONFIG_INVALID', `${config.source ?? 'the configuration'}: review.generator${config.review.generator ? '.modelFolder' : ''} is not set; the checkpoint review needs the generator and the folder it loads models from`);
  }
  const dir = train.dir!;
  const kind = modelKind(train);
  const templates = await loadTemplates(config.review);
  const jobs = renderJobs(templates);
  if (jobs.length === 0) throw new CelforgeError('CONFIG_INVALID', `${config.source ?? 'the configuration'}: review.templates is empty and review.wildPrompts is not set: nothing to render`);

  // A template naming a character without reference pictures is refused before any render.
  await characterScores([], templates, { ...options.ports, config });
  const placed = await placeModel(current, folder, train.outputName, kind);
  const before = previous ? await previousModel(previous, jobs, dir, () => placeModel(previous, folder, train.outputName, kind)) : null;
  await generator.refresh();
  const listed = await generator.listCheckpoints(kind);
  for (const model of [placed, before?.placed ? before.model : null]) {
    if (model && !listed.some((name) => sameFile(name, model.name))) {
      throw new CelforgeError('GENERATOR_REFUSED', `${generator.url} does not list ${model.name} after a refresh; is review.generator.modelFolder (${folder}) the folder it loads ${kind === 'lora' ? 'LoRAs' : 'checkpoints'} from?`);
    }
  }

  const versions = [{ version: current.version, model: placed }, ...(before ? [{ version: previous!.version, model: before.model }] : [])];
  let rendered = 0;
  let reused = 0;
  let slowestMs: number | null = null;
  const total = jobs.length * versions.length;
  for (const { version, model } of versions) {
    for (const [index, job] of jobs.entries()) {
      const stored = await storedRender(dir, version, job);
      if (stored && sameModel(stored.record.checkpoint, model)) {
        reused += 1;
        continue;
      }
      const estimateMs = slowestMs ?? config.review.generator.timeoutSeconds * 1000;
      const now = clock();
      const stopped = { status: 'stopped', rendered, reused, remaining: total - rendered - reused, sha256: placed.sha256 } as const;
      if (options.signal?.aborted) return { ...stopped, by: 'signal', reason: 'celforge is stopping' };
      if (options.deadline && now.getTime() + estimateMs > options.deadline.getTime()) {
        return { ...stopped, by: 'deadline', reason: `the window ends at ${options.deadline.toISOString()}, before another render could finish (${Math.round(estimateMs / 1000)} s each)` };
      }
      options.progress?.(`${version}: rendering ${job.template} seed ${job.parameters.seed} (${index + 1} of ${jobs.length})`);
      await renderVersion(generator, version, model, [job], dir);
      slowestMs = Math.max(slowestMs ?? 0, clock().getTime() - now.getTime());
      rendered += 1;
    }
  }

  options.progress?.(`${current.version}: tagging ${total} renders`);
  const renders = versions.flatMap(({ version }) => jobs.map((job) => ({ version, job, file: path.join(dir, 'reviews', version, job.folder, `${job.parameters.seed}.png`) })));
  const tagged = await tagRenders(renders.map((render) => render.file), { ...options.ports, config });
  const entries: RenderScoreEntry[] = renders.map((render, index) => ({
    template: render.job.template,
    version: versionNumber(render.version),
    seed: render.job.parameters.seed,
    score: scoreRender(promptTags(render.job.parameters.prompt), tagged.renders[index]!.tags, config.tags, tagged.vocabulary),
  }));
  const scores = aggregateScores(entries);
  // Per version: character scores group the renders by template.
  for (const { version } of versions) {
    const own = renders.filter((render) => render.version === version).map((render) => ({ template: render.job.template, file: render.file }));
    const characters = await characterScores(own, templates, { ...options.ports, config });
    for (const score of scores) if (score.version === versionNumber(version)) score.character = characters.get(score.template) ?? null;
  }
  const currentScores = scores.filter((score) => score.version === versionNumber(current.version));
  const previousScores = previous ? scores.filter((score) => score.version === versionNumber(previous.version)) : [];
  const sheet = await writeComparisonSheet(dir, previous ? [previous.version, current.version] : [current.version], jobs);
  const summary: ReviewSummary = {
    version: current.version,
    previous: previous?.version ?? null,
    checkpoint: { ...placed, file: current.checkpoint },
    reviewedAt: clock().toISOString(),
    templates: templateReviews(jobs, currentScores, previousScores),
    regressions: regressions(previousScores, currentScores, config.review.scoreMargin, config.review.characterMargin),
    sheet: path.basename(sheet),
  };
  await writeReviewSummary(dir, summary);
  return { status: 'reviewed', summary, rendered, reused, sha256: placed.sha256 };
}

function templateReviews(jobs: RenderJob[], current: TemplateScore[], previous: TemplateScore[]): TemplateReview[] {
  const names = [...new Set(jobs.map((job) => job.template))];
  return names.map((template) => {
    const own = jobs.filter((job) => job.template === template);
    return {
      template,
      folder: own[0]!.folder,
      prompt: own[0]!.parameters.prompt,
      seeds: own.map((job) => job.parameters.seed),
      current: current.find((score) => score.template === template)!,
      previous: previous.find((score) => score.template === template) ?? null,
    };
  });
}

/** The previous version's model, placed; or, when its file is gone but every render of it is stored, as its renders record it. */
async function previousModel(previous: ReviewVersion, jobs: RenderJob[], dir: string, place: () => Promise<ReviewCheckpoint>): Promise<{ model: ReviewCheckpoint; placed: boolean }> {
  try {
    return { model: await place(), placed: true };
  } catch (error) {
    if (!(error instanceof CelforgeError && error.code === 'FILE_NOT_FOUND')) throw error;
    const stored = await Promise.all(jobs.map((job) => storedRender(dir, previous.version, job)));
    const first = stored[0]?.record.checkpoint;
    if (!first || !stored.every((render) => render && sameModel(render.record.checkpoint, first))) throw error;
    return { model: first, placed: false };
  }
}

/**
 * The version's model file in the generator's folder: hard-linked when on the same file system, else copied
 * under a temporary name and renamed, so the generator never lists half a file. A file of another model already
 * there under that name is refused rather than replaced.
 */
async function placeModel(entry: ReviewVersion, folder: string, outputName: string, kind: ModelKind): Promise<ReviewCheckpoint> {
  const name = `${outputName}-${entry.version}${path.extname(entry.checkpoint) || '.safetensors'}`;
  const target = path.join(folder, name);
  const model = (sha256: string): ReviewCheckpoint => ({ kind, name, sha256 });
  const source = existsSync(entry.checkpoint);
  if (existsSync(target)) {
    if (entry.sha256) return model(entry.sha256);
    const [there, wanted] = await Promise.all([sha256Of(target), source ? sha256Of(entry.checkpoint) : null]);
    if (wanted !== null && there !== wanted) {
      throw new CelforgeError('EXPORT_CONFLICT', `${target}: another model already has the name the review gives ${entry.version} (${entry.checkpoint}); move it away`, { file: target });
    }
    return model(there);
  }
  if (!source) throw new CelforgeError('FILE_NOT_FOUND', `${entry.checkpoint}: the checkpoint of ${entry.version} is gone, and ${target} is not there either`, { file: entry.checkpoint });
  await mkdir(folder, { recursive: true });
  const temporary = `${target}.${process.pid}.tmp`;
  await rm(temporary, { force: true });
  try {
    await link(entry.checkpoint, temporary);
  } catch (error) {
    // Another file system (EXDEV) or one without hard links: a copy.
    if (!['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
    await copyFile(entry.checkpoint, temporary);
  }
  try {
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return model(entry.sha256 ?? (await sha256Of(target)));
}

/** A name the generator lists for the file: A1111 lists LoRAs without their extension, subfolders with a slash. */
function sameFile(listed: string, file: string): boolean {
  const stem = file.replace(/\.[^.]+$/, '');
  const base = listed.replace(/\\/g, '/').split('/').at(-1)!;
  return base === file || base === stem;
}

function sameModel(a: ReviewCheckpoint, b: ReviewCheckpoint): boolean {
  return a.kind === b.kind && a.name === b.name && a.sha256 === b.sha256 && (a.weight ?? 1) === (b.weight ?? 1);
}
