/**
 * The coordinator's side of a stage whose work the workers do in batches
 * (queue.redis: faces, tags, CCIP features): every batch not recorded yet is
 * enqueued under its stable id (the same job after a restart), the results
 * are recorded in the stage's order by the stage's own record step, and a
 * batch leaves the queue only once recorded. Recording is idempotent: each
 * batch says how many of its items were recorded before this run (`skip`),
 * a result is recorded once per run, and a job left under a batch's id by an
 * earlier run for other work (the pictures or settings changed) is replaced,
 * never recorded. A failure or a model wait left from an earlier run is
 * tried afresh; a batch that used up its attempts fails the video with the
 * worker's error; a worker without a model makes the video wait for it, as
 * the local stage does. The workers' progress within a batch goes to the
 * ledger; while Redis does not answer, the stage waits for it.
 *
 * API: runRemoteBatches(options) -> RemoteOutcome; RemoteBatch.
 */
import type { JobQueue, QueueJobView } from '../adapters/job-queue.ts';
import { CelforgeError, errorMessage } from '../errors.ts';
import { markRunning, waitForModels } from '../stages/model-wait.ts';
import type { StagePorts, StageResult } from '../stages/stage.ts';
import type { Job } from './job.ts';
import type { WorkerModelWait } from './mapped-job.ts';

/** How often the coordinator looks at a job in flight (here and in remote-extract.ts): two Redis reads, against the up to this much a finished job waits to be seen (bench/queue.bench.ts). */
export const POLL_MS = 250;

export interface RemoteBatch<Data> {
  /** The queue job's id: stable across runs (BullMQ ids may not contain ":" or be all digits). */
  id: string;
  /** What the batch covers, for messages: "frames 24..48". */
  label: string;
  data: Data;
  /** Items in the batch. */
  size: number;
  /** Items recorded before this run (the first ones); a batch with all recorded is not queued. */
  skip: number;
  /** Where the batch's first item counts in the ledger's progress. */
  offset: number;
}

export interface RemoteBatchesOptions<Data, Done extends { kind: 'done' }, Batch extends RemoteBatch<Data>> {
  queue: JobQueue<Data, Done | WorkerModelWait>;
  job: Job;
  ports: StagePorts;
  pollMs: number;
  /** What the workers do, for messages: "face detection". */
  work: string;
  /** Every batch of the stage, in the order they are recorded. */
  batches: readonly Batch[];
  /** The ledger's progress total. */
  total: number;
  /** Records a batch's result from its item `batch.skip` on; called once per batch, in order. */
  record: (batch: Batch, result: Done) => Promise<void>;
}

export type RemoteOutcome = { kind: 'recorded' } | Exclude<StageResult, { kind: 'done' }>;

const ABORTED = Symbol('aborted');
const INTERRUPTED: RemoteOutcome = { kind: 'interrupted' };

export async function runRemoteBatches<Data, Done extends { kind: 'done' }, Batch extends RemoteBatch<Data>>(options: RemoteBatchesOptions<Data, Done, Batch>): Promise<RemoteOutcome> {
  const { queue, job, ports, pollMs, batches } = options;
  const ask = redisWaiter(job, ports, pollMs);
  const pending = batches.filter((batch) => batch.skip < batch.size);
  // Recorded batches leave the queue: a coordinator that died between recording one and removing it left it there.
  for (const batch of batches.filter((each) => !pending.includes(each))) {
    if (await ask(() => queue.remove(batch.id)) === ABORTED) return INTERRUPTED;
  }
  for (const batch of pending) {
    const added = await ask(async () => {
      const left = await queue.find(batch.id);
      // An active job cannot be removed (its worker holds the lock); it is looked at once it completes.
      if (left && left.state !== 'active' && isLeftOver(left, batch)) await queue.remove(batch.id);
      return queue.enqueue(batch.id, batch.data);
    });
    if (added === ABORTED) return INTERRUPTED;
  }
  if (pending.length) ports.log.info({ job: job.id, batches: pending.length }, `${job.source}: ${options.work} queued for the workers (${pending.length} batches)`);

  let running = job.state === 'running';
  for (const batch of pending) {
    let lastShown = -1;
    for (;;) {
      const view = await ask(() => queue.find(batch.id));
      if (view === ABORTED) return INTERRUPTED;
      if (!view) {
        // Removed by hand, or lost with a Redis that kept no AOF: not recorded, so it goes in again.
        if (await ask(() => queue.enqueue(batch.id, batch.data)) === ABORTED) return INTERRUPTED;
        continue;
      }
      if (view.state === 'failed') {
        throw new CelforgeError('INTERNAL', `${job.source}: ${options.work} of ${batch.label} failed on the workers after ${view.attemptsMade} tries (${view.error ?? 'no reason given'})`, { file: job.source });
      }
      if (view.state === 'completed') {
        const result = view.result!;
        if (result.kind === 'wait') {
          if (await ask(() => queue.remove(batch.id)) === ABORTED) return INTERRUPTED;
          return waitForModels({ ready: false, missing: result.missing, reason: result.reason, command: result.command }) as RemoteOutcome;
        }
        if (!sameData(view.data, batch.data)) {
          // An earlier run's job for other work under this id: its result is not this batch's.
          if (await ask(async () => {
            await queue.remove(batch.id);
            return queue.enqueue(batch.id, batch.data);
          }) === ABORTED) return INTERRUPTED;
          continue;
        }
        if (!running) {
          await markRunning(ports);
          running = true;
        }
        await options.record(batch, result as Done);
        // Removed only once recorded: a coordinator that dies in between finds the result again and records nothing twice.
        await queue.remove(batch.id).catch((error: unknown) => ports.log.warn({ job: job.id, queueJob: batch.id }, `could not remove the recorded queue job: ${errorMessage(error)}`));
        break;
      }
      const done = (view.progress as { done?: number } | undefined)?.done;
      if (typeof done === 'number' && done !== lastShown) {
        lastShown = done;
        await ports.save((target) => void (target.progress = { done: Math.min(options.total, batch.offset + done), total: options.total }));
      }
      if (await pause(pollMs, ports.signal) === ABORTED) return INTERRUPTED;
    }
  }
  return { kind: 'recorded' };
}

/** A failure or a model wait from an earlier run (this run is a new try), or a job for other work under this id. */
function isLeftOver<Data>(left: QueueJobView<Data, { kind: string }>, batch: RemoteBatch<Data>): boolean {
  return left.state === 'failed' || (left.state === 'completed' && left.result?.kind === 'wait') || !sameData(left.data, batch.data);
}

/** The queue keeps the data as JSON: what went in comes back with its keys in the same order. */
function sameData(stored: unknown, data: unknown): boolean {
  return JSON.stringify(stored) === JSON.stringify(data);
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

/** Waits `ms`, or less when `signal` aborts (then ABORTED). */
export function pause(ms: number, signal: AbortSignal): Promise<void | typeof ABORTED> {
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

/** `items` in batches of `size`, each with the batch's first index. */
export function chunksOf<T>(items: readonly T[], size: number): { start: number; items: T[] }[] {
  const chunks: { start: number; items: T[] }[] = [];
  for (let start = 0; start < items.length; start += size) chunks.push({ start, items: items.slice(start, start + size) });
  return chunks;
}
