/**
 * The record of one finished checkpoint review, `<dir>/reviews/<version>/review.json`:
 * which checkpoint was reviewed against which, each template's seeds and
 * scores for both versions, the regressions flagged, and the comparison
 * sheet. The review page's Compare view and the notification read it; the
 * review writes it last, so a review cut short has no summary and runs again.
 *
 * API: `versionName(n)` -> "v<n>", `versionNumber(name)`, `writeReviewSummary(dir, summary)`,
 * `readReviewSummary(dir, version)` -> the summary or undefined, `readReviewSummaries(dir)` -> all, oldest first.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { replaceFileDurably } from '../../adapters/durable-file.ts';
import { CelforgeError, errorMessage } from '../../errors.ts';
import { reviewFolder, type ReviewCheckpoint } from './review-store.ts';
import type { Regression, TemplateScore } from './scores.ts';

export const SUMMARY_FILE = 'review.json';

export interface TemplateReview {
  template: string;
  /** templateFolder(template): renders are `<dir>/reviews/<version>/<folder>/<seed>.png`. */
  folder: string;
  prompt: string;
  seeds: number[];
  /** This version's scores; the previous version's, null for the first version or a template new in this one. */
  current: TemplateScore;
  previous: TemplateScore | null;
}

export interface ReviewSummary {
  /** "v<n>", n counting the checkpoints reviewed from 1. */
  version: string;
  /** The version compared against; null for the first. */
  previous: string | null;
  checkpoint: ReviewCheckpoint & { file: string };
  reviewedAt: string;
  templates: TemplateReview[];
  regressions: Regression[];
  /** The comparison sheet's file name inside the version's folder. */
  sheet: string;
}

export function versionName(number: number): string {
  return `v${number}`;
}

/** The n of "v<n>"; NaN for anything else. */
export function versionNumber(name: string): number {
  return /^v[1-9]\d*$/.test(name) ? Number(name.slice(1)) : Number.NaN;
}

export async function writeReviewSummary(dir: string, summary: ReviewSummary): Promise<string> {
  const file = path.join(reviewFolder(dir, summary.version), SUMMARY_FILE);
  await replaceFileDurably(file, `${JSON.stringify(summary, null, 2)}\n`);
  return file;
}

export async function readReviewSummary(dir: string, version: string): Promise<ReviewSummary | undefined> {
  const file = path.join(reviewFolder(dir, version), SUMMARY_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CelforgeError('FILE_NOT_FOUND', `${file}: cannot read the checkpoint review (${errorMessage(error)})`, { file, cause: error });
  }
  try {
    return JSON.parse(text) as ReviewSummary;
  } catch (error) {
    throw new CelforgeError('CONFIG_INVALID', `${file}: not a checkpoint review record (${errorMessage(error)}); delete it to review ${version} again`, { file, cause: error });
  }
}

/** Every finished review under `<dir>/reviews/`, by version number. */
export async function readReviewSummaries(dir: string): Promise<ReviewSummary[]> {
  let names: string[];
  try {
    names = await readdir(path.join(dir, 'reviews'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const versions = names.filter((name) => !Number.isNaN(versionNumber(name))).sort((a, b) => versionNumber(a) - versionNumber(b));
  const summaries = await Promise.all(versions.map((version) => readReviewSummary(dir, version)));
  return summaries.filter((summary): summary is ReviewSummary => summary !== undefined);
}
