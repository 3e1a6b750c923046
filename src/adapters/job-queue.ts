/**
 * The job queue: BullMQ on Redis, the only code that touches BullMQ or
 * ioredis. A coordinator enqueues work under a stable job id and reads back
 * its state, progress and result; workers (other machines) take jobs, report
 * progress and return results; every worker announces itself (host, GPU,
 * current job, last seen) for `status`. A running job carries a signal that
 * aborts when this worker may have lost the job's lock (job-claim.ts): the
 * queue may hand it to another worker, so the handler must stop; whatever it
 * throws or returns then is dropped. Messages name the Redis address with
 * its password hidden.
 *
 * API: openJobQueue(url, name, settings) -> JobQueue (enqueue, find, remove,
 * depths, failed, workers, settingsAtRisk, close); startQueueWorker(url, name, handler,
 * settings) -> QueueWorker (close); QUEUE_NAMES; WORKER_HEARTBEAT_MS.
 */
import { Queue, WaitingError, Worker, type Job as BullJob } from 'bullmq';
import { Redis } from 'ioredis';
import { redactRedisUrl, redisAddress, redisUrlProblem } from '../config/redis-url.ts';
import { CelforgeError, errorMessage } from '../errors.ts';
import { hostName } from './host-name.ts';
import { JobClaim } from './job-claim.ts';

/** One queue per kind of work; BullMQ prefixes its keys with "bull:" and the name. */
export const QUEUE_NAMES = { extract: 'celforge-extract', faces: 'celforge-faces', tags: 'celforge-tags', ccip: 'celforge-ccip' } as const;

/** Where workers announce themselves: a hash of worker id -> WorkerInfo as JSON. */
const WORKERS_KEY = 'celforge:workers';

/** How often a `celforge worker` says it is alive; `status` counts one unseen for a few of these as stopped. */
export const WORKER_HEARTBEAT_MS = 10_000;

/** A worker not seen for this long is taken off the list `status` shows. */
const FORGET_WORKER_MS = 24 * 3600_000;

/** How long a closing worker waits for Redis to answer. */
const CLOSE_WAIT_MS = 5_000;

export interface QueueSettings {
  /** Tries before the failed set; the next one after backoffMs, doubling each time. */
  attempts: number;
  backoffMs: number;
}

export interface WorkerSettings {
  concurrency: number;
  /** BullMQ's lockDuration: a job whose lock is not renewed within this is stalled. */
  lockMs: number;
  /** BullMQ's stalledInterval: how often workers look for stalled jobs. */
  stalledMs: number;
  /** BullMQ's maxStalledCount: times a stalled job goes back to wait before it fails. */
  maxStalled: number;
  /** What `status` shows of this worker besides its host. */
  gpu: number | null;
  /** How often the worker says it is alive. */
  heartbeatMs: number;
}

export type QueueJobState = 'waiting' | 'active' | 'delayed' | 'completed' | 'failed' | 'prioritized' | 'waiting-children' | 'unknown';

export interface QueueJobView<Data, Result> {
  id: string;
  state: QueueJobState;
  data: Data;
  progress: unknown;
  /** Set once completed. */
  result: Result | null;
  /** The last error, while retrying or once failed. */
  error: string | null;
  attemptsMade: number;
}

export type QueueDepths = Record<'waiting' | 'active' | 'delayed' | 'completed' | 'failed', number>;

export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  gpu: number | null;
  /** The queue job it runs now, or null between jobs. */
  job: string | null;
  lastSeen: string;
}

export interface QueueJobContext<Data> {
  id: string;
  data: Data;
  /** Attempts made before this one (0 on the first). */
  attemptsMade: number;
  /**
   * Aborted when this worker may no longer hold the job (its lock could not be renewed in time, or Redis says it is
   * another worker's), with a CelforgeError CLAIM_LOST as its reason: stop, writing nothing more for the job.
   */
  signal: AbortSignal;
  /** Sends progress; once the claim is lost it sends nothing and no longer waits for a send under way. */
  progress(value: object | number): Promise<void>;
  /** Gives the job back to the queue, not counted as an attempt (a worker shutting down); throws out of the handler. */
  putBack(): Promise<never>;
}

export interface JobQueue<Data, Result> {
  /** Adds the job unless one with this id is in the queue (any state); returns whether it was added. */
  enqueue(id: string, data: Data): Promise<boolean>;
  find(id: string): Promise<QueueJobView<Data, Result> | null>;
  remove(id: string): Promise<void>;
  depths(): Promise<QueueDepths>;
  failed(limit?: number): Promise<QueueJobView<Data, Result>[]>;
  workers(): Promise<WorkerInfo[]>;
  /** What in Redis's own settings puts queued jobs at risk, in words; empty when nothing does (or Redis will not say). */
  settingsAtRisk(): Promise<string[]>;
  close(): Promise<void>;
}

export interface QueueWorker {
  readonly id: string;
  /**
   * Stops taking jobs, lets the running ones finish (or, with force, leaves them to be taken back as stalled).
   * False when Redis did not answer within CLOSE_WAIT_MS: the connections were dropped instead.
   */
  close(force?: boolean): Promise<boolean>;
}

/** The ioredis options used here, a shape both ioredis and BullMQ take. */
interface Connection {
  host: string;
  port: number;
  db: number;
  username: string | undefined;
  password: string | undefined;
  tls?: { servername: string };
  maxRetriesPerRequest: number | null;
}

/**
 * ioredis options for an address. A producer's commands fail after a few retries, so that the coordinator
 * hears of a Redis that is gone; a worker's wait forever (maxRetriesPerRequest null), which BullMQ requires
 * of the connections its workers block on (taskforcesh/bullmq@352d3c7 docs/gitbook/guide/connections.md:197-201,
 * enforced in src/classes/redis-connection.ts:238-239 and :299-306).
 */
function connectionOptions(url: string, role: 'producer' | 'worker'): Connection {
  const problem = redisUrlProblem(url);
  if (problem) throw new CelforgeError('CONFIG_INVALID', `${redactRedisUrl(url)}: ${problem}`);
  const { host, port, db, username, password, tls } = redisAddress(url);
  return {
    host, port, db, username, password,
    // ioredis hands these to tls.connect with host and port (redis/ioredis@dfd5428 lib/connectors/StandaloneConnector.ts:42-43);
    // servername makes the certificate check use the host's name.
    ...(tls ? { tls: { servername: host } } : {}),
    maxRetriesPerRequest: role === 'worker' ? null : 3,
  };
}

/** Connects once and pings, so that a wrong address or password is one clear error instead of endless reconnects. */
async function checkReachable(url: string, options: Connection): Promise<void> {
  const client = new Redis({ ...options, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // A refused password arrives as an 'error' event; connect() then only says the connection closed.
  let said: Error | null = null;
  client.on('error', (error: Error) => void (said ??= error));
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    const reason = hideSecret(errorMessage(said ?? error), options.password);
    throw new CelforgeError('QUEUE_UNREACHABLE', `${redactRedisUrl(url)}: cannot use the job queue's Redis (${reason}); check queue.redis (or --redis) and that redis-server runs there`, { cause: said ?? error });
  } finally {
    client.disconnect();
  }
}

function hideSecret(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join('(hidden)') : text;
}

export async function openJobQueue<Data, Result>(url: string, name: string, settings: QueueSettings): Promise<JobQueue<Data, Result>> {
  const options = connectionOptions(url, 'producer');
  await checkReachable(url, options);
  const queue = new Queue<Data, Result>(name, {
    connection: options,
    defaultJobOptions: {
      attempts: settings.attempts,
      // 2^(attempts-1) * delay (taskforcesh/bullmq@352d3c7 docs/gitbook/guide/retrying-failing-jobs.md:73-75, src/classes/backoffs.ts:23).
      backoff: { type: 'exponential', delay: settings.backoffMs },
      // Kept until the coordinator has recorded the result and removes the job: a kept id is what makes enqueue idempotent.
      removeOnComplete: false,
      removeOnFail: false,
    },
  });
  queue.on('error', () => undefined);
  const registry = new Redis({ ...options });
  registry.on('error', () => undefined);
  // The state is read before the job: a job that completes in between then shows its result a moment early, never a completed job without it.
  const view = async (job: BullJob<Data, Result> | undefined, state: QueueJobState): Promise<QueueJobView<Data, Result> | null> => {
    if (!job) return null;
    return {
      id: job.id!,
      state,
      data: job.data,
      progress: job.progress,
      result: job.returnvalue ?? null,
      error: job.failedReason || null,
      attemptsMade: job.attemptsMade,
    };
  };
  return {
    async enqueue(id, data) {
      // A job whose id is in the queue, in any state, is not added again (taskforcesh/bullmq@352d3c7
      // src/commands/addStandardJob-9.lua:92-93; docs/gitbook/guide/jobs/job-ids.md:11-14). The look first only tells the caller which.
      const known = await queue.getJob(id);
      await queue.add(name as never, data as never, { jobId: id });
      return !known;
    },
    async find(id) {
      const state = (await queue.getJobState(id)) as QueueJobState;
      return view((await queue.getJob(id)) as BullJob<Data, Result> | undefined, state);
    },
    async remove(id) {
      await queue.remove(id);
    },
    async depths() {
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
      return { waiting: counts.waiting ?? 0, active: counts.active ?? 0, delayed: counts.delayed ?? 0, completed: counts.completed ?? 0, failed: counts.failed ?? 0 };
    },
    async failed(limit = 50) {
      const jobs = await queue.getFailed(0, limit - 1);
      return (await Promise.all(jobs.map((job) => view(job as BullJob<Data, Result>, 'failed')))).filter((job): job is QueueJobView<Data, Result> => job !== null);
    },
    async workers() {
      const entries = Object.values(await registry.hgetall(WORKERS_KEY)).map((text) => JSON.parse(text) as WorkerInfo);
      // A worker that was killed never takes itself off the list; each start is a new entry (host:pid).
      const gone = entries.filter((worker) => Date.now() - Date.parse(worker.lastSeen) > FORGET_WORKER_MS);
      if (gone.length) await registry.hdel(WORKERS_KEY, ...gone.map((worker) => worker.id));
      return entries.filter((worker) => !gone.includes(worker)).sort((a, b) => a.id.localeCompare(b.id));
    },
    async settingsAtRisk() {
      const read = async (name: string) => {
        // An ACL user may not be allowed CONFIG; then nothing can be said.
        const reply = (await registry.call('CONFIG', 'GET', name).catch(() => [])) as string[];
        return reply[1];
      };
      const risks: string[] = [];
      if ((await read('appendonly')) === 'no') {
        risks.push('Redis runs without appendonly (AOF): a Redis restart loses the queued jobs and their results (the coordinator queues unfinished videos again); set appendonly yes');
      }
      const policy = await read('maxmemory-policy');
      // BullMQ's keys must never be evicted (taskforcesh/bullmq@352d3c7 docs/gitbook/guide/connections.md:289-295).
      if (policy !== undefined && policy !== 'noeviction') risks.push(`Redis's maxmemory-policy is ${policy}: under memory pressure it may evict the queue's keys; set maxmemory-policy noeviction`);
      return risks;
    },
    async close() {
      await queue.close();
      registry.disconnect();
    },
  };
}

/**
 * BullMQ's worker, telling each running job's claim when Redis accepted a renewal of its lock, by the time it was
 * asked for. BullMQ's lock manager renews every lock older than a quarter of lockDuration on a timer of that period
 * (lockRenewTime defaults to lockDuration / 2, node_modules/bullmq 6.7.0 dist/cjs/classes/worker.js:78-79; the
 * timer and the age, lock-manager.js:60-83) through this method (lock-manager.js:40). A renewal that Redis refuses
 * is reported by 'lockRenewalFailed' (lock-manager.js:41-46); one that never gets an answer (Redis stopped or out
 * of reach: a worker's commands wait for ever) is reported by nothing, and stops all renewals while it waits.
 */
class ClaimWatchingWorker<Data, Result> extends Worker<Data, Result> {
  readonly claims = new Map<string, JobClaim>();

  override async extendJobLocks(jobIds: string[], tokens: string[], duration: number): Promise<string[]> {
    const askedAt = Date.now();
    const refused = await super.extendJobLocks(jobIds, tokens, duration);
    for (const id of jobIds) if (!refused.includes(id)) this.claims.get(id)?.renewed(askedAt);
    return refused;
  }
}

/** BullMQ's word for each refused renewal (lock-manager.js:44); the job's claim has said it already. */
const RENEWAL_REFUSED = /^could not renew lock for job (.+)$/;

/**
 * A process that takes jobs from several queues (`celforge worker`: extraction and faces) is one worker: one
 * announcement, naming whichever job any of its queue workers runs, removed when the last of them closes.
 */
const announced = new Map<string, { running: Set<string>; open: number }>();

/**
 * Runs `handler` on the queue's jobs, `concurrency` at a time. What it returns is the job's result; what it
 * throws fails the attempt (retried with backoff, then the failed set). A worker that stops renewing its locks
 * has its jobs taken back by the stalled check of any worker (taskforcesh/bullmq@352d3c7
 * docs/gitbook/guide/workers/stalled-jobs.md:5-13; defaults in src/interfaces/worker-options.ts:64-77 and :127-134);
 * the job's signal says when that may have happened to this worker.
 */
export async function startQueueWorker<Data, Result>(
  url: string, name: string, handler: (job: QueueJobContext<Data>) => Promise<Result>, settings: WorkerSettings,
  onError: (error: Error) => void,
): Promise<QueueWorker> {
  const options = connectionOptions(url, 'worker');
  await checkReachable(url, options);
  const host = hostName();
  const id = `${host}:${process.pid}`;
  // Not the worker's wait-forever setting: an announcement to a Redis that is down is dropped, and must not hold up a shutdown.
  const registry = new Redis({ ...options, maxRetriesPerRequest: 1 });
  registry.on('error', () => undefined);
  const key = `${url} ${id}`;
  const shared = announced.get(key) ?? { running: new Set<string>(), open: 0 };
  announced.set(key, shared);
  shared.open += 1;
  const { running } = shared;
  const announce = async () => {
    const info: WorkerInfo = { id, host, pid: process.pid, gpu: settings.gpu, job: [...running][0] ?? null, lastSeen: new Date().toISOString() };
    await registry.hset(WORKERS_KEY, id, JSON.stringify(info));
  };
  const announceQuietly = () => void announce().catch(() => undefined);
  /** Jobs whose claim this worker lost, so that BullMQ's own words on their refused renewals are not said again. */
  const lost = new Set<string>();
  const worker: ClaimWatchingWorker<Data, Result> = new ClaimWatchingWorker<Data, Result>(name, async (job, token) => {
    const jobId = job.id!;
    lost.delete(jobId);
    const claim = new JobClaim(jobId, settings.lockMs, job.processedOn ?? Date.now(), (error) => {
      lost.add(jobId);
      onError(error);
    });
    worker.claims.set(jobId, claim);
    running.add(jobId);
    announceQuietly();
    // The lock's token lets moveToWait release it; WaitingError tells the worker the job is neither done nor failed
    // (taskforcesh/bullmq@352d3c7 docs/gitbook/patterns/manual-retrying.md:5-17).
    const putBack = async (): Promise<never> => {
      if (!claim.signal.aborted) await job.moveToWait(token);
      throw new WaitingError();
    };
    const progress = async (value: object | number) => void (await claim.whileHeld(() => job.updateProgress(value)));
    try {
      const result = await handler({ id: jobId, data: job.data, attemptsMade: job.attemptsMade, signal: claim.signal, progress, putBack });
      if (claim.signal.aborted) throw new WaitingError();
      return result;
    } catch (error) {
      // Not this worker's to finish or fail any more: BullMQ leaves a job untouched on WaitingError (node_modules/bullmq
      // 6.7.0 dist/cjs/classes/worker.js:655-664); the stalled check puts it back in the queue once its lock is gone.
      if (claim.signal.aborted) throw new WaitingError();
      throw error;
    } finally {
      claim.end();
      worker.claims.delete(jobId);
      running.delete(jobId);
      announceQuietly();
    }
  }, {
    connection: options,
    concurrency: settings.concurrency,
    lockDuration: settings.lockMs,
    stalledInterval: settings.stalledMs,
    maxStalledCount: settings.maxStalled,
    autorun: false,
  });
  worker.on('lockRenewalFailed', (jobIds) => {
    for (const jobId of jobIds) worker.claims.get(jobId)?.lose('Redis refused to renew its lock (it ran out, or another worker holds the job now)');
  });
  worker.on('error', (error) => {
    const refused = RENEWAL_REFUSED.exec(error.message);
    if (refused && lost.has(refused[1]!)) return;
    onError(new Error(hideSecret(error.message, options.password)));
  });
  await announce();
  const heartbeat = setInterval(announceQuietly, settings.heartbeatMs);
  void worker.run().catch((error: unknown) => onError(error instanceof Error ? error : new Error(String(error))));
  return {
    id,
    async close(force = false) {
      clearInterval(heartbeat);
      // BullMQ's close waits for Redis to answer, for ever while it is down (bullmq 6.7); then the connections are dropped
      // instead, and the jobs left running are taken back by the stalled check once Redis is up.
      let timer: NodeJS.Timeout | undefined;
      const closed = await Promise.race([
        worker.close(force).then(() => true),
        new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_WAIT_MS))),
      ]);
      clearTimeout(timer);
      shared.open -= 1;
      const last = shared.open === 0;
      if (last) announced.delete(key);
      if (!closed) {
        void worker.disconnect().catch(() => undefined);
        registry.disconnect();
        return false;
      }
      if (last) await registry.hdel(WORKERS_KEY, id).catch(() => undefined);
      registry.disconnect();
      return true;
    },
  };
}
