/**
 * The review page's JSON API. Reads: the dashboard (jobs, models, training
 * with its loss, the job queue and its workers with queue.redis), a video's scenes (kept frames beside their duplicates), a
 * catalog search with tag counts, an image's tags. Changes (the server
 * checks the token first): restore a duplicate, mark a kept frame as a
 * duplicate, reject an image, a person's tag edit on a selection or one
 * image, an export, a training request; the Characters view's routes are
 * in characters-api.ts, the Compare view's (checkpoint reviews) in reviews-api.ts. Pictures are found by hash in the
 * catalog, or by job id and frame number in the frame map. Every POST route
 * declares the body it takes (a zod schema); anything else is a 400 naming
 * the field and what was expected.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Catalog } from '../adapters/catalog-store.ts';
import { readFaces } from '../adapters/faces-file.ts';
import { readFrameMap } from '../adapters/frame-map-file.ts';
import { editTagsOfImages } from '../catalog/person-edit.ts';
import { rejectImages } from '../catalog/reject-images.ts';
import type { Config } from '../config/schema.ts';
import type { Ledger } from '../daemon/ledger.ts';
import { episodeFolderOf, videoLayoutOf } from '../daemon/library-paths.ts';
import type { Job } from '../daemon/job.ts';
import { readQueueStatus } from '../daemon/queue-status.ts';
import { markDuplicate } from '../frames/mark-duplicate.ts';
import { restoreFrames } from '../frames/restore-frames.ts';
import { BUNDLED_MANIFEST, loadManifest, modelState } from '../models/manifest.ts';
import { exportQuery } from '../stages/export/export-query.ts';
import type { TrainingSupervisor } from '../training/training-supervisor.ts';
import { readLibraryPicture } from './library-picture.ts';
import { ApiError, parseBody } from './api-request.ts';
import { CHARACTER_ROUTES } from './characters-api.ts';
import { REVIEW_ROUTES } from './reviews-api.ts';

export interface ReviewContext {
  config: () => Config;
  ledger: Ledger;
  catalog: Catalog;
  training: TrainingSupervisor | null;
  /** Makes the training loop look at a new request now. */
  wakeTraining: () => void;
}

export type ApiResult = { kind: 'json'; value: unknown } | { kind: 'picture'; bytes: Buffer; type: string };

const HASH = '([0-9a-f]{64})';
const JOB = '([0-9a-f]{6,64})';
const IMAGE_TYPES: Record<string, string> = { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp' };
const LOSS_POINTS = 500;

export type Handler = (context: ReviewContext, match: string[], url: URL, body: unknown) => Promise<ApiResult>;

const tag = z.string().max(200, 'a tag is at most 200 characters').refine((value) => value.trim().length > 0, 'a tag cannot be empty');
const tagEdit = { add: z.array(tag).default([]), remove: z.array(tag).default([]) };
const someTags = (edit: { add: string[]; remove: string[] }) => edit.add.length + edit.remove.length > 0;
const BODIES = {
  none: z.strictObject({}),
  duplicate: z.strictObject({ of: z.number().int().min(0) }),
  tags: z.strictObject(tagEdit).refine(someTags, 'expected "add" and/or "remove": lists of tags'),
  bulkTags: z.strictObject({ hashes: z.array(z.string().regex(/^[0-9a-f]{64}$/, 'expected an image hash (64 hex digits)')).min(1), ...tagEdit })
    .refine(someTags, 'expected "add" and/or "remove": lists of tags'),
  export: z.strictObject({
    query: z.string(),
    name: z.string().regex(/^[\w.-]{1,64}$/, 'expected a folder name: letters, digits, . _ -').refine((name) => !name.startsWith('.'), 'a folder name cannot start with "."'),
  }),
  train: z.strictObject({ now: z.boolean().default(false) }),
};
const USAGE: Record<keyof typeof BODIES, string> = {
  none: '{}',
  duplicate: '{"of": <the kept frame it repeats>}',
  tags: '{"add": [...], "remove": [...]}',
  bulkTags: '{"hashes": [...], "add": [...], "remove": [...]}',
  export: '{"query": "<catalog query>", "name": "<folder name>"}',
  train: '{"now": true|false}',
};

/** A POST route: its handler sees only a body that passed the route's schema. */
function withBody<K extends keyof typeof BODIES>(kind: K, handler: (context: ReviewContext, match: string[], body: z.output<(typeof BODIES)[K]>) => Promise<ApiResult>): Handler {
  return (context, match, _url, body) => handler(context, match, parseBody(BODIES[kind], body, USAGE[kind]) as z.output<(typeof BODIES)[K]>);
}

const ROUTES: [string, RegExp, Handler][] = [
  ['GET', /^\/api\/status$/, status],
  ['GET', new RegExp(`^/api/jobs/${JOB}/scenes$`), scenes],
  ['GET', new RegExp(`^/api/jobs/${JOB}/frames/(\\d+)/picture$`), framePicture],
  ['POST', new RegExp(`^/api/jobs/${JOB}/frames/(\\d+)/restore$`), withBody('none', restore)],
  ['POST', new RegExp(`^/api/jobs/${JOB}/frames/(\\d+)/duplicate$`), withBody('duplicate', duplicate)],
  ['GET', /^\/api\/search$/, search],
  ['GET', new RegExp(`^/api/images/${HASH}$`), imageFile],
  ['GET', new RegExp(`^/api/images/${HASH}/tags$`), imageTags],
  ['POST', new RegExp(`^/api/images/${HASH}/tags$`), withBody('tags', editImageTags)],
  ['POST', new RegExp(`^/api/images/${HASH}/reject$`), withBody('none', reject)],
  ['POST', /^\/api\/tags$/, withBody('bulkTags', bulkTags)],
  ['POST', /^\/api\/export$/, withBody('export', exportDataset)],
  ['POST', /^\/api\/train$/, withBody('train', train)],
  ...CHARACTER_ROUTES,
  ...REVIEW_ROUTES,
];

export async function routeApi(context: ReviewContext, method: string, url: URL, body: unknown): Promise<ApiResult> {
  let pathMatched = false;
  for (const [routeMethod, pattern, handler] of ROUTES) {
    const match = pattern.exec(url.pathname);
    if (!match) continue;
    pathMatched = true;
    if (routeMethod === method || (routeMethod === 'GET' && method === 'HEAD')) return handler(context, match.slice(1), url, body);
  }
  throw pathMatched ? new ApiError(405, `${method} is not allowed here`) : new ApiError(404, 'not found');
}

const json = (value: unknown): ApiResult => ({ kind: 'json', value });

async function status(context: ReviewContext): Promise<ApiResult> {
  const config = context.config();
  // Read while the rest is gathered; null hides the Workers panel.
  const queue = config.queue.redis ? readQueueStatus(config.queue.redis) : null;
  const manifest = await loadManifest(config.models.manifest ?? BUNDLED_MANIFEST).catch(() => []);
  const models = await Promise.all(manifest.map(async (model) => ({ id: model.id, kind: model.kind, state: await modelState(config.models.dir, model) })));
  const training = context.training?.state ?? null;
  let loss: { step: number; loss: number }[] = [];
  if (config.train && existsSync(path.join(config.train.dir!, 'loss.jsonl'))) {
    const points = (await readFile(path.join(config.train.dir!, 'loss.jsonl'), 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line) as { step: number; loss: number });
    const every = Math.max(1, Math.ceil(points.length / LOSS_POINTS));
    loss = points.filter((_, index) => index % every === 0 || index === points.length - 1).map(({ step, loss: value }) => ({ step, loss: value }));
  }
  const jobs = context.ledger.jobs().map((job) => ({
    id: job.id, source: job.source, series: job.series, episode: job.episode, folder: episodeFolderOf(job), stage: job.stage, state: job.state, progress: job.progress,
    disk: job.disk ?? null, waitingFor: job.waitingFor ?? null, error: job.error ?? null, notes: job.notes ?? [],
    frames: job.extract?.framesDone ?? 0, kept: job.extract?.kept ?? 0, duplicates: job.extract?.duplicates ?? 0, scenes: job.extract?.scenes ?? 0,
    withFaces: job.faces?.framesWithFaces ?? null, tagged: job.tags?.framesDone ?? null,
  }));
  return json({ jobs, models, training, trainingConfigured: Boolean(config.train), loss, queue: await queue });
}

function jobOf(context: ReviewContext, id: string): Job {
  const job = context.ledger.jobs().find((candidate) => candidate.id === id || candidate.id.startsWith(id));
  if (!job) throw new ApiError(404, `no job ${id}`);
  if (!job.extract) throw new ApiError(409, `${job.source}: no frames extracted yet`);
  return job;
}

async function scenes(context: ReviewContext, [id]: string[]): Promise<ApiResult> {
  const job = jobOf(context, id!);
  const layout = videoLayoutOf(job, context.config().library);
  const records = await readFrameMap(layout.frameMap);
  const faces = new Map((await readFaces(layout.faces)).map((record) => [record.frame, record.faces.length]));
  const byScene = new Map<number, unknown[]>();
  for (const record of records) {
    const list = byScene.get(record.scene) ?? [];
    list.push({
      frame: record.frame, status: record.status, duplicateOf: record.duplicateOf, hash: record.status === 'kept' ? record.sha256 ?? null : null,
      picture: `/api/jobs/${job.id}/frames/${record.frame}/picture`, faces: faces.get(record.frame) ?? null, restored: record.restored ?? false,
    });
    byScene.set(record.scene, list);
  }
  return json({ job: { id: job.id, source: job.source, series: job.series, episode: job.episode }, scenes: [...byScene].map(([scene, frames]) => ({ scene, frames })) });
}

async function framePicture(context: ReviewContext, [id, frame]: string[]): Promise<ApiResult> {
  const job = jobOf(context, id!);
  const library = context.config().library;
  const record = (await readFrameMap(videoLayoutOf(job, library).frameMap))[Number(frame)];
  const relative = record?.file ?? record?.preview;
  if (!relative) throw new ApiError(404, `frame ${frame}: no picture`);
  return pictureFile(library, relative);
}

async function restore(context: ReviewContext, [id, frame]: string[]): Promise<ApiResult> {
  const job = jobOf(context, id!);
  const [outcome] = await restoreFrames(job, [frame!], context.config(), context.catalog);
  return json(outcome);
}

async function duplicate(context: ReviewContext, [id, frame]: string[], { of }: { of: number }): Promise<ApiResult> {
  await markDuplicate(jobOf(context, id!), Number(frame), of, context.config(), context.catalog);
  return json({ frame: Number(frame), duplicateOf: of });
}

async function search(context: ReviewContext, _match: string[], url: URL): Promise<ApiResult> {
  const query = url.searchParams.get('q') ?? '';
  const limit = Math.min(500, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100));
  const offset = Math.max(0, Number(url.searchParams.get('offset') ?? 0) || 0);
  try {
    const images = context.catalog.search(query, { limit, offset }).map((image) => ({
      hash: image.hash, picture: `/api/images/${image.hash}`, series: image.series, episode: image.episode, frame: image.frame, tags: context.catalog.tagsOf(image.hash),
    }));
    return json({ query, count: context.catalog.count(query), offset, images, tagCounts: context.catalog.tagCounts(query, 60) });
  } catch (error) {
    throw new ApiError(400, error instanceof Error ? error.message : String(error));
  }
}

function imageOf(context: ReviewContext, hash: string) {
  const image = context.catalog.get(hash);
  if (!image) throw new ApiError(404, `no image ${hash}`);
  return image;
}

async function imageFile(context: ReviewContext, [hash]: string[]): Promise<ApiResult> {
  return pictureFile(context.config().library, imageOf(context, hash!).path);
}

async function imageTags(context: ReviewContext, [hash]: string[]): Promise<ApiResult> {
  imageOf(context, hash!);
  return json({ hash, tags: context.catalog.tagsOf(hash!), sources: context.catalog.tagSources(hash!), deleted: context.catalog.deletedTagsOf(hash!) });
}

async function editImageTags(context: ReviewContext, [hash]: string[], { add, remove }: { add: string[]; remove: string[] }): Promise<ApiResult> {
  imageOf(context, hash!);
  await editTagsOfImages(context.catalog, context.config(), [hash!], add, remove, 'review page tag edit');
  return json({ hash, tags: context.catalog.tagsOf(hash!) });
}

async function bulkTags(context: ReviewContext, _match: string[], { hashes, add, remove }: { hashes: string[]; add: string[]; remove: string[] }): Promise<ApiResult> {
  for (const hash of hashes) imageOf(context, hash);
  await editTagsOfImages(context.catalog, context.config(), hashes, add, remove, 'review page tag edit');
  return json({ images: hashes.length, add, remove });
}

async function reject(context: ReviewContext, [hash]: string[]): Promise<ApiResult> {
  const image = imageOf(context, hash!);
  await rejectImages(context.catalog, context.config().library, [image]);
  return json({ hash, rejected: true });
}

async function exportDataset(context: ReviewContext, _match: string[], { query, name }: { query: string; name: string }): Promise<ApiResult> {
  const config = context.config();
  const out = path.join(config.library, 'exports', name);
  const result = await exportQuery(context.catalog, config, query, out);
  return json({ out, images: result.images, datasetConfig: result.datasetConfig, removed: result.removed });
}

async function train(context: ReviewContext, _match: string[], { now }: { now: boolean }): Promise<ApiResult> {
  if (!context.training) throw new ApiError(409, 'training is not configured (no train section in the configuration)');
  await context.training.request(now);
  context.wakeTraining();
  return json({ queued: true, status: context.training.state.status });
}

async function pictureFile(library: string, stored: string): Promise<ApiResult> {
  const type = IMAGE_TYPES[path.extname(stored).toLowerCase()];
  const bytes = type ? await readLibraryPicture(library, stored) : null;
  if (!type || !bytes) throw new ApiError(404, 'the picture is not there');
  return { kind: 'picture', bytes, type };
}
