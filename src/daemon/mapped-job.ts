/**
 * What every worker-side batch job (faces, tags, CCIP features) does before
 * its own work: the coordinator's library mapped to this machine
 * (queue.pathMap); a library this machine does not see gives the job back
 * untried (and tells the worker to stop); the job's configuration made of
 * this machine's (models folder, inference providers) with the
 * coordinator's settings over it; the job's models looked up in this
 * machine's models folder, a missing one returned as a wait for the
 * coordinator; the job's pictures checked to be there. Nothing is written:
 * the result goes back in the job's return value. The work itself stops
 * between inference batches once the job's signal says this worker's claim
 * on it is lost (QueueJobContext.signal): its result would be dropped.
 *
 * API: runMappedJob(queueJob, ports, spec) -> Result | WorkerModelWait;
 * inInferenceBatches(queueJob, items, size, step) -> results;
 * BatchWorkerPorts, MappedJobData, WorkerModelWait.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ImageWorkers } from '../adapters/image-workers.ts';
import type { QueueJobContext } from '../adapters/job-queue.ts';
import type { Config } from '../config/schema.ts';
import { CelforgeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { ModelEntry } from '../models/manifest.ts';
import { modelsAvailable, type AvailableModel } from '../models/model-availability.ts';
import type { ModelCache } from '../models/model-cache.ts';
import type { Job } from './job.ts';
import { mapPath } from './path-map.ts';

/** What a batch worker gets from `celforge worker`: one image pool and one model cache for all its queues. */
export interface BatchWorkerPorts {
  /** This machine's configuration: models folder, inference providers, queue.pathMap. */
  config: () => Config;
  images: ImageWorkers;
  /** Models loaded once for the worker's life. */
  models: ModelCache;
  log: Logger;
  /** Told when this machine does not see the library: it should stop taking jobs (the job goes back, untried). */
  onLibraryMissing: (error: CelforgeError) => void;
}

/** What every batch job's data carries. */
export interface MappedJobData {
  /** The library as the coordinator names it; a worker maps it (queue.pathMap). */
  library: string;
  /** The ledger's job, for the worker's log and for `status`. */
  job: Pick<Job, 'id' | 'source'>;
}

/** The worker lacks a model: the coordinator waits for it as for its own. */
export interface WorkerModelWait {
  kind: 'wait';
  missing: string[];
  reason: string;
  command: string | null;
}

export interface MappedJobSpec<Data extends MappedJobData, Result> {
  /** The configuration the work runs with: this machine's, the library mapped, the job's settings over it. */
  config: (local: Config, library: string, data: Data) => Config;
  /** The manifest ids and kinds of the models the work needs. */
  models: (config: Config, data: Data) => { ids: readonly string[]; kinds: readonly ModelEntry['kind'][] };
  /** The job's pictures, relative to the library, with what they are for a message ("a kept frame"). */
  files: (data: Data) => readonly string[];
  what: string;
  run: (work: MappedWork<Data>) => Promise<Result>;
}

export interface MappedWork<Data> {
  data: Data;
  config: Config;
  /** The library on this machine. */
  library: string;
  models: AvailableModel[];
  log: Logger;
}

export async function runMappedJob<Data extends MappedJobData, Result>(
  queueJob: QueueJobContext<Data>, ports: BatchWorkerPorts, spec: MappedJobSpec<Data, Result>,
): Promise<Result | WorkerModelWait> {
  const { data } = queueJob;
  const local = ports.config();
  const library = mapPath(data.library, local.queue.pathMap);
  if (!existsSync(library)) {
    // This machine's fault, not the job's: failing it would spend its attempts on a worker that can never do it.
    ports.onLibraryMissing(new CelforgeError('FILE_NOT_FOUND', `${library}: the library is not there on this machine (the coordinator's ${data.library}); mount it, or map the coordinator's path to this machine's in queue.pathMap`, { file: library }));
    return queueJob.putBack();
  }
  const config = spec.config(local, library, data);
  const { ids, kinds } = spec.models(config, data);
  const available = await modelsAvailable(config, ids, kinds);
  if (!available.ready) return { kind: 'wait', missing: available.missing, reason: available.reason, command: available.command };
  const gone = spec.files(data).map((file) => path.join(library, file)).find((file) => !existsSync(file));
  if (gone) throw new CelforgeError('FILE_NOT_FOUND', `${gone}: ${spec.what} of ${data.job.source} is not there on this machine`, { file: gone });
  const log = ports.log.child({ job: data.job.id, queueJob: queueJob.id });
  return spec.run({ data, config, library, models: available.models, log });
}

/**
 * `step` on each inference batch of `items`, in order, each reported as
 * progress (the coordinator shows the items done in a batch still running).
 * It stops before a batch once another worker may own the job (its lock was
 * lost): what this one finds would be dropped.
 */
export async function inInferenceBatches<T, R>(
  queueJob: Pick<QueueJobContext<unknown>, 'signal' | 'progress'>, items: readonly T[], size: number, step: (batch: T[]) => Promise<R[]>,
): Promise<R[]> {
  const results: R[] = [];
  for (let start = 0; start < items.length; start += size) {
    queueJob.signal.throwIfAborted();
    results.push(...await step(items.slice(start, start + size)));
    await queueJob.progress({ done: results.length, total: items.length });
  }
  return results;
}
