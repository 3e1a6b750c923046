/**
 * The review API of the Compare view, over the finished checkpoint reviews
 * under `<train.dir>/reviews/` (each version's review.json, see
 * src/stages/checkpoint-review/review-summary.ts). Reads only: the versions
 * reviewed, newest first; one version's summary with, per template and seed,
 * where its render and the previous version's render are served; a stored
 * render; a version's comparison sheet. Without a train section or before the
 * first review the list is empty. The server's token, Origin and login rules
 * guard these routes as every other.
 *
 *   GET /api/reviews                                     {versions: [{version, previous, reviewedAt, checkpoint, kind, templates, regressions}]}
 *   GET /api/reviews/<version>                           {version, previous, ..., sheet, templates: [{..., renders: [{seed, current, previous}]}]}
 *   GET /api/reviews/<version>/renders/<folder>/<seed>   the stored render (PNG)
 *   GET /api/reviews/<version>/sheet                     the comparison sheet (PNG)
 *
 * A picture's path is built from the request's pieces only after each matched
 * its pattern (v<n>, a template folder's characters, digits), and only a
 * stored render is served: a picture whose record beside it names that
 * version, seed and template folder (a picture without one counts as missing,
 * as in review-store.ts). Files are read as the library's pictures are
 * (readLibraryPicture): regular files whose real path lies inside the reviews
 * folder.
 */
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { readReviewSummaries, readReviewSummary, versionNumber, type ReviewSummary } from '../stages/checkpoint-review/review-summary.ts';
import { templateFolder } from '../stages/checkpoint-review/templates.ts';
import { ApiError } from './api-request.ts';
import { readLibraryPicture } from './library-picture.ts';
import type { ApiResult, Handler, ReviewContext } from './review-api.ts';

const VERSION = '(v[1-9]\\d{0,8})';
// templateFolder's characters; the first is never ".", so neither "." nor ".." can be one.
const FOLDER = '([A-Za-z0-9-][A-Za-z0-9._-]{0,99})';
const SEED = '(\\d{1,10})';
const ONE_FOLDER = new RegExp(`^${FOLDER}$`);

export const REVIEW_ROUTES: [string, RegExp, Handler][] = [
  ['GET', /^\/api\/reviews$/, versionList],
  ['GET', new RegExp(`^/api/reviews/${VERSION}$`), versionSummary],
  ['GET', new RegExp(`^/api/reviews/${VERSION}/renders/${FOLDER}/${SEED}$`), renderPicture],
  ['GET', new RegExp(`^/api/reviews/${VERSION}/sheet$`), sheetPicture],
];

const json = (value: unknown): ApiResult => ({ kind: 'json', value });
const renderUrl = (version: string, folder: string, seed: number) => `/api/reviews/${version}/renders/${folder}/${seed}`;

/** `<train.dir>`, or null without a train section. */
function trainDir(context: ReviewContext): string | null {
  return context.config().train?.dir ?? null;
}

async function versionList(context: ReviewContext): Promise<ApiResult> {
  const dir = trainDir(context);
  const summaries = dir === null ? [] : await readReviewSummaries(dir);
  return json({
    versions: summaries.reverse().map((summary) => ({
      version: summary.version, previous: summary.previous, reviewedAt: summary.reviewedAt, checkpoint: summary.checkpoint.name, kind: summary.checkpoint.kind,
      templates: summary.templates.length, regressions: summary.regressions.length,
    })),
  });
}

async function summaryOf(context: ReviewContext, version: string): Promise<{ dir: string; summary: ReviewSummary }> {
  const dir = trainDir(context);
  if (dir === null) throw new ApiError(404, 'no checkpoint reviews: training is not configured (no train section in the configuration)');
  const summary = await readReviewSummary(dir, version);
  if (!summary) throw new ApiError(404, `no checkpoint review ${version} (not reviewed yet, or its review did not finish)`);
  return { dir, summary };
}

async function versionSummary(context: ReviewContext, [version]: string[]): Promise<ApiResult> {
  const { dir, summary } = await summaryOf(context, version!);
  const reviews = path.join(dir, 'reviews');
  // Names read from the file go into paths and URLs only in the shapes the routes accept.
  const previous = summary.previous !== null && !Number.isNaN(versionNumber(summary.previous)) ? summary.previous : null;
  const served = async (of: string | null, folder: string, seed: number) =>
    of !== null && ONE_FOLDER.test(folder) && (await isStoredRender(reviews, of, folder, seed)) ? renderUrl(of, folder, seed) : null;
  const { file: _file, ...checkpoint } = summary.checkpoint;
  return json({
    version, previous, reviewedAt: summary.reviewedAt, checkpoint,
    sheet: sheetName(summary) ? `/api/reviews/${version}/sheet` : null,
    regressions: summary.regressions,
    templates: await Promise.all(summary.templates.map(async (template) => ({
      template: template.template, folder: template.folder, prompt: template.prompt, current: template.current, previous: template.previous,
      renders: await Promise.all(template.seeds.map(async (seed) => ({
        seed, current: await served(version!, template.folder, seed), previous: await served(previous, template.folder, seed),
      }))),
    }))),
  });
}

/** A stored render: its record names this version, seed and template folder, and its picture is a regular file. */
async function isStoredRender(reviews: string, version: string, folder: string, seed: number): Promise<boolean> {
  const base = path.join(reviews, version, folder, String(seed));
  const text = await readLibraryPicture(reviews, `${base}.json`);
  let record: { version?: unknown; seed?: unknown; template?: unknown } | null;
  try {
    record = JSON.parse(text?.toString('utf8') ?? 'null') as typeof record;
  } catch {
    return false;
  }
  if (record?.version !== version || record.seed !== seed || typeof record.template !== 'string' || templateFolder(record.template) !== folder) return false;
  return (await lstat(`${base}.png`).catch(() => null))?.isFile() ?? false;
}

async function renderPicture(context: ReviewContext, [version, folder, seed]: string[]): Promise<ApiResult> {
  const dir = trainDir(context);
  const reviews = dir === null ? null : path.join(dir, 'reviews');
  const bytes = reviews !== null && (await isStoredRender(reviews, version!, folder!, Number(seed)))
    ? await readLibraryPicture(reviews, path.join(version!, folder!, `${seed}.png`))
    : null;
  if (!bytes) throw new ApiError(404, `no stored render ${version}/${folder}/${seed}`);
  return { kind: 'picture', bytes, type: 'image/png' };
}

/** The summary's sheet file when it is a plain PNG name inside the version's folder. */
function sheetName(summary: ReviewSummary): string | null {
  return /^[A-Za-z0-9][\w.-]*\.png$/.test(summary.sheet) ? summary.sheet : null;
}

async function sheetPicture(context: ReviewContext, [version]: string[]): Promise<ApiResult> {
  const { dir, summary } = await summaryOf(context, version!);
  const sheet = sheetName(summary);
  const bytes = sheet === null ? null : await readLibraryPicture(path.join(dir, 'reviews'), path.join(version!, sheet));
  if (!bytes) throw new ApiError(404, `checkpoint review ${version}: no comparison sheet`);
  return { kind: 'picture', bytes, type: 'image/png' };
}
