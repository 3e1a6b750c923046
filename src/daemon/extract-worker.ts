/**
 * A worker's side of an extraction job (queue.redis): the coordinator's
 * paths mapped to this machine (queue.pathMap), the extract stage run there
 * with the coordinator's settings (extract-job.ts), progress sent to the queue, and the
 * outcome returned as the job's result. A worker that does not see the
 * library gives the job back untried and says so. The stage resumes from what the
 * library holds (the frame map, the resume point), so a job taken over from
 * a worker that died continues where that one stopped; that worker's lock on
 * the video's frames, left on another host, is taken over (the queue's own
 * lock on the job says this worker alone owns it now). A worker that loses
 * the job's lock (cut off from Redis, or stalled, for longer than it lasts)
 * stops extracting at once and writes nothing more, neither frames nor
 * progress, and removes nothing: the queue hands the job to another worker,
 * which resumes from what was recorded. The worker writes
 * frames into the shared library; the ledger and the catalog stay the
 * coordinator's.
 *
 * API: extractJobRunner(ports) -> (queueJob) => result.
 */
import { existsSync } from 'node:fs';
import type { DiskSpace } from '../adapters/disk.ts';
import type { QueueJobContext } from '../adapters/job-queue.ts';
import { takeOverFromOtherHost } from '../adapters/lock-file.ts';
import type { MediaRepository } from '../adapters/media.ts';
import type { Config } from '../config/schema.ts';
import { CelforgeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { extractStage } from '../stages/extract/extract-stage.ts';
import type { StagePorts } from '../stages/stage.ts';
import { extractResultOf, workerConfigFor, type ExtractJobData, type ExtractJobResult } from './extract-job.ts';
import { videoLayoutOf } from './library-paths.ts';
import { mapPath } from './path-map.ts';

export interface ExtractWorkerPorts {
  /** This machine's configuration: ffmpeg, threads, hardware decoding, queue.pathMap. */
  config: () => Config;
  media: MediaRepository;
  disk: DiskSpace;
  log: Logger;
  /** Aborted when the worker shuts down: the running jobs go back to the queue, untried. */
  signal: AbortSignal;
  /** Told when this machine does not see the library: it should stop taking jobs (the job goes back, untried). */
  onLibraryMissing: (error: CelforgeError) => void;
}

export function extractJobRunner(ports: ExtractWorkerPorts) {
  return async (queueJob: QueueJobContext<ExtractJobData>): Promise<ExtractJobResult> => {
    const { data } = queueJob;
    const local = ports.config();
    const library = mapPath(data.library, local.queue.pathMap);
    const job = { ...structuredClone(data.job), source: mapPath(data.job.source, local.queue.pathMap) };
    const missing = (what: string, here: string, there: string) =>
      new CelforgeError('FILE_NOT_FOUND', `${here}: ${what} is not there on this machine (the coordinator's ${there}); mount it, or map the coordinator's path to this machine's in queue.pathMap`, { file: here });
    if (!existsSync(library)) {
      // This machine's fault, not the job's: failing it would spend its attempts on a worker that can never do it.
      ports.onLibraryMissing(missing('the library', library, data.library));
      return queueJob.putBack();
    }
    if (!existsSync(job.source)) throw missing('the video', job.source, data.job.source);
    queueJob.signal.throwIfAborted();
    const config = workerConfigFor(local, library, data.settings);
    const log = ports.log.child({ job: job.id, queueJob: queueJob.id });
    log.info({ file: job.source, attempt: queueJob.attemptsMade + 1 }, `${job.source}: extracting`);
    // A worker of another host that stalled (killed, its machine off, cut from Redis) left its lock; this host cannot check its pid.
    const previous = await takeOverFromOtherHost(videoLayoutOf(job, library).lock, 'extract');
    if (previous) log.warn({ host: previous.host, pid: previous.pid }, `${job.source}: took over the frames' lock of the worker on ${previous.host} (pid ${previous.pid}); the queue handed its job here`);
    queueJob.signal.throwIfAborted();
    // The stage's saves land on this copy; its progress goes to the queue, where the coordinator reads it.
    const current = structuredClone(job);
    const stagePorts: StagePorts = {
      config: () => config,
      media: ports.media,
      disk: ports.disk,
      catalog: coordinatorOnly('catalog'),
      images: coordinatorOnly('image workers'),
      models: coordinatorOnly('model cache'),
      log,
      // A lost claim is the stage's reason to stop writing at once (its CLAIM_LOST reason); a shutdown, to leave a resumable state.
      signal: AbortSignal.any([queueJob.signal, ports.signal]),
      save: async (change) => {
        change(current);
        if (current.progress) await queueJob.progress(current.progress);
      },
    };
    const result = await extractStage(structuredClone(current), stagePorts);
    if (queueJob.signal.aborted) {
      // The loss itself is said once by the queue worker (job-queue.ts).
      log.warn(`${job.source}: stopped extracting; this worker writes nothing more for it (it lost the job's lock)`);
      throw queueJob.signal.reason;
    }
    if (result.kind === 'interrupted') {
      log.info(`${job.source}: worker stopping; the job goes back to the queue`);
      return queueJob.putBack();
    }
    const outcome = extractResultOf(result, current);
    log.info({ frames: outcome.extract?.framesDone }, `${job.source}: ${outcome.kind === 'done' ? 'extracted' : outcome.reason}`);
    return outcome;
  };
}

/** What the extract stage never uses and a worker does not have: the coordinator is the only writer of the catalog. */
function coordinatorOnly(what: string): never {
  return new Proxy({}, {
    get: (_target, key) => {
      throw new CelforgeError('INTERNAL', `a worker has no ${what} (${String(key)}): only the coordinator runs the stages that need it`);
    },
  }) as never;
}
