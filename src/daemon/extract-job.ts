/**
 * Extraction as a queue job (queue.redis): what the coordinator sends, what
 * a worker returns, and how the coordinator records it. The job carries the
 * ledger's job, the coordinator's library path and the settings that decide
 * the output or a decision (dedup, PNG compression, hardware decoding, the
 * disk reserve), so every worker, and a worker taking over another's video,
 * decodes and writes the same way whatever its own configuration says. The result is the extraction's counts
 * without any path of the worker's machine; recording it sets the ledger's
 * extract state from it alone, so a result recorded twice changes nothing.
 *
 * API: extractQueueId(job), ExtractJobData, ExtractJobResult,
 * extractSettingsOf(config), workerConfigFor(local, library, settings),
 * extractResultOf(stageResult, job), recordExtractResult(target, result, library).
 */
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import type { StageResult } from '../stages/stage.ts';
import type { ExtractState, Job } from './job.ts';
import { videoLayoutOf } from './library-paths.ts';

export interface ExtractJobData {
  /** The library as the coordinator names it; a worker maps it (queue.pathMap). */
  library: string;
  /** The ledger's job when enqueued; its source is the coordinator's path too. */
  job: Job;
  settings: ExtractSettings;
}

/** The coordinator's; absent ones (a job queued by an older coordinator) are the worker's own. */
export interface ExtractSettings {
  dedup: Config['dedup'];
  pngCompression: Config['extract']['pngCompression'];
  /** A decoder's output may differ in the last bit from software's: every part of a video is decoded alike. */
  hwaccel?: Config['extract']['hwaccel'];
  /** The library's free-space reserve: the same volume whichever machine writes to it. */
  reserve?: Config['disk']['reserve'];
}

export function extractSettingsOf(config: Config): ExtractSettings {
  return { dedup: config.dedup, pngCompression: config.extract.pngCompression, hwaccel: config.extract.hwaccel, reserve: config.disk.reserve };
}

/** The configuration a worker runs a job with: its own machine's (ffmpeg, threads, pathMap) with the job's settings over it. */
export function workerConfigFor(local: Config, library: string, settings: ExtractSettings): Config {
  return {
    ...local,
    library,
    dedup: settings.dedup,
    extract: { ...local.extract, pngCompression: settings.pngCompression, hwaccel: settings.hwaccel ?? local.extract.hwaccel },
    disk: { ...local.disk, reserve: settings.reserve ?? local.disk.reserve },
  };
}

/** The extract state a worker reached, without the folder (the coordinator's own) or a process id (the worker's). */
export type ExtractCounts = Omit<ExtractState, 'dir' | 'pid'>;

export type ExtractJobResult =
  | { kind: 'done'; extract: ExtractCounts }
  | { kind: 'wait'; state: Extract<StageResult, { kind: 'wait' }>['state']; retryAfterMs: number; reason: string; extract: ExtractCounts | null };

/** One queue job per video: enqueued again, it is the same job (BullMQ ids may not contain ":" or be all digits). */
export function extractQueueId(job: Pick<Job, 'id'>): string {
  return `extract-${job.id}`;
}

/** What a worker returns for the extract stage's result, applied to the job it started from. */
export function extractResultOf(result: Exclude<StageResult, { kind: 'interrupted' }>, job: Job): ExtractJobResult {
  const after = structuredClone(job);
  result.change?.(after);
  const counts = countsOf(after.extract);
  if (result.kind === 'wait') return { kind: 'wait', state: result.state, retryAfterMs: result.retryAfterMs, reason: result.reason, extract: counts };
  if (!counts) throw new Error(`${job.source}: extraction finished without recording what it did`);
  return { kind: 'done', extract: counts };
}

function countsOf(state: ExtractState | undefined): ExtractCounts | null {
  if (!state) return null;
  const { framesDone, kept, duplicates, scenes, bytesWritten, hwaccel } = state;
  return { framesDone, kept, duplicates, scenes, bytesWritten, hwaccel };
}

/** Sets the job's extract state and progress from a worker's counts; the folder is the coordinator's. */
export function recordExtractResult(target: Job, extract: ExtractCounts, library: string): void {
  target.extract = { dir: path.join(library, videoLayoutOf(target, library).dir), ...extract, pid: null };
  target.progress = { done: extract.framesDone, total: target.probe!.frameCount };
}
