/**
 * The coordinator's extract stage (queue.redis): instead of decoding, it
 * enqueues the video's extraction (one queue job per video, under a stable
 * id, so enqueuing again after a restart is the same job), follows its
 * progress into the ledger, and records the result a worker returns. The
 * result is recorded before the queue job is removed, and recording sets the
 * extract state from the result alone: a coordinator that dies in between
 * finds the job completed again and records the same thing. A job that used
 * up its attempts fails the video with the worker's error; it stays in the
 * queue's failed set (for `status`) until the video is run again. While
 * Redis does not answer (a restart), the stage waits for it.
 *
 * API: remoteExtractStage(queue, pollMs?) -> Stage.
 */
import type { JobQueue, QueueJobView } from '../adapters/job-queue.ts';
import { CelforgeError, errorMessage } from '../errors.ts';
import type { Stage, StagePorts } from '../stages/stage.ts';
import { extractQueueId, extractSettingsOf, recordExtractResult, type ExtractJobData, type ExtractJobResult } from './extract-job.ts';
import type { Job } from './job.ts';
import { pause, POLL_MS } from './remote-batches.ts';

export type ExtractQueue = JobQueue<ExtractJobData, ExtractJobResult>;

export function remoteExtractStage(queue: ExtractQueue, pollMs = POLL_MS): Stage {
  return async (job, ports) => {
    const id = extractQueueId(job);
    let enqueued = false;
    let lastDone = -1;
    let unreachable = false;
    while (!ports.signal.aborted) {
      let view: QueueJobView<ExtractJobData, ExtractJobResult> | null;
      try {
        if (!enqueued) {
          // A failure left from an earlier run: this run is a new try.
          if ((await queue.find(id))?.state === 'failed') await queue.remove(id);
          await enqueue(queue, job, ports, id);
          enqueued = true;
        }
        view = await queue.find(id);
      } catch (error) {
        // Redis restarting, or the network: the queue keeps the job (AOF), so the coordinator waits for it to answer again.
        if (!unreachable) ports.log.warn({ job: job.id, queueJob: id }, `${job.source}: the job queue does not answer (${errorMessage(error)}); trying again`);
        unreachable = true;
        await pause(pollMs, ports.signal);
        continue;
      }
      if (unreachable) ports.log.info({ job: job.id, queueJob: id }, `${job.source}: the job queue answers again`);
      unreachable = false;
      if (!view) {
        // Removed by hand (or lost with a Redis that kept no AOF): the ledger says it is unfinished, so it goes in again.
        enqueued = false;
        continue;
      }
      if (view.state === 'completed') {
        const result = view.result!;
        const change = changeFor(result, ports);
        // Removed only once recorded: a coordinator that dies in between finds the result again and records the same.
        await ports.save(change);
        await queue.remove(id).catch((error: unknown) => ports.log.warn({ job: job.id, queueJob: id }, `could not remove the finished queue job: ${errorMessage(error)}`));
        if (result.kind === 'done') return { kind: 'done', change };
        return { kind: 'wait', state: result.state, retryAfterMs: result.retryAfterMs, reason: result.reason, change };
      }
      if (view.state === 'failed') {
        throw new CelforgeError('EXTRACT_FAILED', `${job.source}: extraction failed on the workers after ${view.attemptsMade} tries (${view.error ?? 'no reason given'})`, { file: job.source });
      }
      const progress = view.progress as { done?: number } | undefined;
      if (typeof progress?.done === 'number' && progress.done !== lastDone) {
        lastDone = progress.done;
        await ports.save((target) => void (target.progress = { done: progress.done!, total: target.probe!.frameCount }));
      }
      await pause(pollMs, ports.signal);
    }
    // The queue job goes on without the coordinator; a restart finds it (or its result) under the same id.
    return { kind: 'interrupted' };
  };
}

/** Recording sets the extract state from the result alone: applied twice, it changes nothing more. */
function changeFor(result: ExtractJobResult, ports: StagePorts): (target: Job) => void {
  const library = ports.config().library;
  return (target) => {
    if (result.extract) recordExtractResult(target, result.extract, library);
  };
}

async function enqueue(queue: ExtractQueue, job: Job, ports: StagePorts, id: string): Promise<void> {
  const config = ports.config();
  const added = await queue.enqueue(id, { library: config.library, job, settings: extractSettingsOf(config) });
  if (added) ports.log.info({ job: job.id, queueJob: id }, `${job.source}: extraction queued for the workers`);
}
