/**
 * The coordinator's faces stage (queue.redis): instead of detecting, it
 * enqueues the video's kept frames in batches (faces-job.ts), and records
 * the results the workers return in frame order, with the same record step
 * as the local stage (faces.jsonl and the catalog, written only here).
 * Recording is idempotent: a batch's records already in faces.jsonl (a
 * result delivered again, or a coordinator that died between recording and
 * removing the queue job) are skipped, and a batch leaves the queue only once
 * recorded. A restart continues after the last frame recorded and enqueues
 * only the batches not recorded; the ones still queued are the same jobs. A
 * worker without the model makes the job wait for it, as the local stage
 * does; a batch that used up its attempts fails the video with its error.
 * While Redis does not answer, the stage waits for it.
 *
 * API: remoteFacesStage(queue, pollMs?) -> Stage.
 */
import { FacesWriter } from '../adapters/faces-file.ts';
import type { JobQueue } from '../adapters/job-queue.ts';
import { CelforgeError, errorMessage } from '../errors.ts';
import { detectorModelId } from '../stages/faces/face-detector.ts';
import { facesState, recordedPrefix, recordFaces } from '../stages/faces/faces-stage.ts';
import { keptFrames, type KeptFrame } from '../stages/kept-frames.ts';
import { markRunning, waitForModels } from '../stages/model-wait.ts';
import type { Stage, StagePorts } from '../stages/stage.ts';
import { facesQueueId, type FacesJobData, type FacesJobResult } from './faces-job.ts';
import type { Job } from './job.ts';
import { videoLayoutOf } from './library-paths.ts';

export type FacesQueue = JobQueue<FacesJobData, FacesJobResult>;

/** As remote-extract.ts: two Redis reads per look, against the up to this much a finished batch waits to be seen. */
const POLL_MS = 250;

const ABORTED = Symbol('aborted');

export function remoteFacesStage(queue: FacesQueue, pollMs = POLL_MS): Stage {
  return async (job, ports) => {
    const config = ports.config();
    const detector = detectorModelId(config);
    if (config.faces.detector === 'none' || detector === null) return { kind: 'done', change: (target) => void delete target.faces };
    const layout = videoLayoutOf(job, config.library);
    const frames = await keptFrames(layout);
    const recorded = await recordedPrefix(layout.faces, frames, detector);
    let count = recorded.length;
    let withFaces = recorded.filter((record) => record.passed).length;
    const progress = () => facesState(detector, count, withFaces, frames.length);
    const ask = redisWaiter(job, ports, pollMs);
    const size = config.queue.batchFrames;
    const batches: { start: number; id: string; frames: KeptFrame[] }[] = [];
    for (let start = 0; start < frames.length; start += size) {
      batches.push({ start, id: facesQueueId(job, frames[start]!.frame), frames: frames.slice(start, start + size) });
    }
    const pending = batches.filter((batch) => batch.start + batch.frames.length > count);
    // Recorded batches leave the queue: a coordinator that died between recording one and removing it left it there.
    for (const batch of batches.filter((each) => !pending.includes(each))) {
      if (await ask(() => queue.remove(batch.id)) === ABORTED) return { kind: 'interrupted' };
    }
    const dataOf = (batch: (typeof batches)[number]): FacesJobData => ({
      library: config.library, job: { id: job.id, source: job.source }, faces: config.faces,
      frames: batch.frames.map(({ frame, scene, file, sha256 }) => ({ frame, scene, file, sha256 })),
    });
    for (const batch of pending) {
      const added = await ask(async () => {
        // A failure or a model wait left from an earlier run: this run is a new try.
        const left = await queue.find(batch.id);
        if (left?.state === 'failed' || (left?.state === 'completed' && left.result?.kind === 'wait')) await queue.remove(batch.id);
        return queue.enqueue(batch.id, dataOf(batch));
      });
      if (added === ABORTED) return { kind: 'interrupted' };
    }
    if (pending.length) ports.log.info({ job: job.id, batches: pending.length }, `${job.source}: face detection queued for the workers (${pending.length} batches)`);

    const writer = new FacesWriter(layout.faces);
    try {
      let lastShown = -1;
      for (const batch of pending) {
        for (;;) {
          const view = await ask(() => queue.find(batch.id));
          if (view === ABORTED) return { kind: 'interrupted' };
          if (!view) {
            // Removed by hand, or lost with a Redis that kept no AOF: not recorded, so it goes in again.
            await ask(() => queue.enqueue(batch.id, dataOf(batch)));
            continue;
          }
          if (view.state === 'failed') {
            throw new CelforgeError('INTERNAL', `${job.source}: face detection of frames ${batch.frames[0]!.frame}..${batch.frames.at(-1)!.frame} failed on the workers after ${view.attemptsMade} tries (${view.error ?? 'no reason given'})`, { file: job.source });
          }
          if (view.state === 'completed') {
            const result = view.result!;
            if (result.kind === 'wait') {
              await ask(() => queue.remove(batch.id));
              return waitForModels({ ready: false, missing: result.missing, reason: result.reason, command: result.command });
            }
            if (job.state !== 'running' && count === recorded.length) await markRunning(ports);
            // Only what faces.jsonl does not hold yet: a result delivered again records nothing more.
            const fresh = result.records.slice(Math.max(0, count - batch.start));
            const expected = batch.frames.slice(Math.max(0, count - batch.start)).map((frame) => frame.frame);
            if (fresh.map((record) => record.frame).join() !== expected.join()) {
              throw new CelforgeError('INTERNAL', `${job.source}: a worker's faces for frames ${batch.frames[0]!.frame}.. do not match the kept frames`, { file: job.source });
            }
            await recordFaces(fresh, writer, ports.catalog);
            count += fresh.length;
            withFaces += fresh.filter((record) => record.passed).length;
            await ports.save(progress());
            // Removed only once recorded: a coordinator that dies in between finds the result again and records nothing twice.
            await queue.remove(batch.id).catch((error: unknown) => ports.log.warn({ job: job.id, queueJob: batch.id }, `could not remove the recorded queue job: ${errorMessage(error)}`));
            break;
          }
          const done = (view.progress as { done?: number } | undefined)?.done;
          if (typeof done === 'number' && done !== lastShown) {
            lastShown = done;
            await ports.save((target) => void (target.progress = { done: Math.min(frames.length, batch.start + done), total: frames.length }));
          }
          if (await pause(pollMs, ports.signal) === ABORTED) return { kind: 'interrupted' };
        }
      }
    } finally {
      await writer.close();
    }
    return { kind: 'done', change: progress() };
  };
}

/** A Redis call tried until Redis answers (a restart, the network), said once; ABORTED at shutdown. */
function redisWaiter(job: Job, ports: StagePorts, pollMs: number) {
  return async <T>(call: () => Promise<T>): Promise<T | typeof ABORTED> => {
    let unreachable = false;
    while (!ports.signal.aborted) {
      try {
        const answer = await call();
        if (unreachable) ports.log.info({ job: job.id }, `${job.source}: the job queue answers again`);
        return answer;
      } catch (error) {
        if (!unreachable) ports.log.warn({ job: job.id }, `${job.source}: the job queue does not answer (${errorMessage(error)}); trying again`);
        unreachable = true;
        await pause(pollMs, ports.signal);
      }
    }
    return ABORTED;
  };
}

function pause(ms: number, signal: AbortSignal): Promise<void | typeof ABORTED> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve(signal.aborted ? ABORTED : undefined);
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}
