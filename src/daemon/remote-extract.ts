/**
 * The coordinator's extract stage (queue.redis): instead of decoding, it
 * enqueues the video's extraction (one queue job per video, under a stable
 * id, so enqueuing again after a restart is the same job), follows its
 * progress into the ledger, and records the result a worker returns. The
 * result is recorded before the queue job is removed, and recording sets the
 * extract state from the result alone: a coordinator that dies in between
 * finds the job completed again and records the same thing. A job that used
 * up its attempts fails the video with the worker's error; it stays in the
 * queue's failed set (for `status`) until the video is run again.
 *
 * API: remoteExtractStage(queue, pollMs) -> Stage.
 */
import type { JobQueue } from '../adapters/job-queue.ts';
import { CelforgeError } from '../errors.ts';
import type { Stage, StagePorts } from '../stages/stage.ts';
import { extractQueueId, recordExtractResult, type ExtractJobData, type ExtractJobResult } from './extract-job.ts';
import type { Job } from './job.ts';

export type ExtractQueue = JobQueue<ExtractJobData, ExtractJobResult>;

export function remoteExtractStage(queue: ExtractQueue, pollMs = 1000): Stage {
  return async (job, ports) => {
    const id = extractQueueId(job);
    const previous = await queue.find(id);
    // A failure left from an earlier run: this run is a new try.
    if (previous?.state === 'failed') await queue.remove(id);
    await enqueue(queue, job, ports, id);
    let lastDone = -1;
    while (!ports.signal.aborted) {
      const view = await queue.find(id);
      if (!view) {
        // Removed by hand (or lost with a Redis that kept no AOF): the ledger says it is unfinished, so it goes in again.
        await enqueue(queue, job, ports, id);
      } else if (view.state === 'completed') {
        const result = view.result!;
        const library = ports.config().library;
        const change = (target: Job) => {
          if (result.kind === 'done' || result.extract) recordExtractResult(target, result.extract!, library);
        };
        await ports.save(change);
        await queue.remove(id);
        if (result.kind === 'done') return { kind: 'done', change };
        return { kind: 'wait', state: result.state, retryAfterMs: result.retryAfterMs, reason: result.reason, change };
      } else if (view.state === 'failed') {
        throw new CelforgeError('EXTRACT_FAILED', `${job.source}: extraction failed on the workers after ${view.attemptsMade} tries (${view.error ?? 'no reason given'})`, { file: job.source });
      } else {
        const progress = view.progress as { done?: number; total?: number } | undefined;
        if (typeof progress?.done === 'number' && progress.done !== lastDone) {
          lastDone = progress.done;
          await ports.save((target) => void (target.progress = { done: progress.done!, total: target.probe!.frameCount }));
        }
      }
      await sleep(pollMs, ports.signal);
    }
    // The queue job goes on without the coordinator; a restart finds it (or its result) under the same id.
    return { kind: 'interrupted' };
  };
}

async function enqueue(queue: ExtractQueue, job: Job, ports: StagePorts, id: string): Promise<void> {
  const config = ports.config();
  const added = await queue.enqueue(id, { library: config.library, job, settings: { dedup: config.dedup, pngCompression: config.extract.pngCompression } });
  if (added) ports.log.info({ job: job.id, queueJob: id }, `${job.source}: extraction queued for the workers`);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}
