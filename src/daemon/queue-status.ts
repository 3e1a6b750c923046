/**
 * What is known of the job queues (queue.redis), for `celforge status` and
 * the review page: how many jobs wait, run and failed, in all and in each
 * queue (extraction, face detection, CCIP features, tagging), the workers (host,
 * GPU, current job with its progress, last seen, whether it has stopped
 * answering) and the failed jobs with their errors; or why Redis could not
 * be read. The address is shown with its password hidden, and no text
 * returned carries the password.
 *
 * API: readQueueStatus(url, now?) -> QueueStatus; MISSED_HEARTBEATS.
 */
import { openJobQueue, QUEUE_NAMES, WORKER_HEARTBEAT_MS, type JobQueue, type QueueDepths, type WorkerInfo } from '../adapters/job-queue.ts';
import { redactRedisUrl, redisAddress, redisUrlProblem } from '../config/redis-url.ts';
import { errorMessage } from '../errors.ts';
import type { Job } from './job.ts';

type QueueKind = keyof typeof QUEUE_NAMES;
/** What every kind of queue job carries: the ledger's job it works for. */
type AnyJobQueue = JobQueue<{ job: Pick<Job, 'source'> }, unknown>;

export interface QueueWorkerStatus extends WorkerInfo {
  /** Not seen for MISSED_HEARTBEATS heartbeats: killed, or its machine is off (a killed worker never takes itself off). */
  stopped: boolean;
  /** The video of its current job, as the coordinator names it. */
  video: string | null;
  /** What its current job last reported (extraction: frames done of total). */
  progress: { done: number; total: number } | null;
}

export interface QueueStatus {
  redis: string;
  /** Why the queue could not be read; then nothing else is known. */
  error?: string;
  /** All queues together. */
  depths?: QueueDepths;
  queues?: Record<QueueKind, QueueDepths>;
  workers?: QueueWorkerStatus[];
  failed?: { queue: QueueKind; id: string; video: string; attempts: number; error: string | null }[];
}

/** A worker not seen for this many heartbeats has probably stopped. */
export const MISSED_HEARTBEATS = 3;

export async function readQueueStatus(url: string, now = Date.now()): Promise<QueueStatus> {
  const redis = redactRedisUrl(url);
  const password = redisUrlProblem(url) ? undefined : redisAddress(url).password;
  // The adapter hides it in what it says; a message from deeper down (ioredis, BullMQ) might not.
  const hidden = (text: string) => (password ? text.split(password).join('(hidden)') : text);
  const kinds = Object.keys(QUEUE_NAMES) as QueueKind[];
  const queues: AnyJobQueue[] = [];
  try {
    for (const kind of kinds) queues.push(await openJobQueue(url, QUEUE_NAMES[kind], { attempts: 1, backoffMs: 1000 }));
    const depths = await Promise.all(queues.map((queue) => queue.depths()));
    const failed = await Promise.all(queues.map((queue) => queue.failed()));
    // One list for all queues: a worker announces itself once.
    const workers = await queues[0]!.workers();
    const current = await Promise.all(workers.map((worker) => (worker.job ? findIn(queues, worker.job) : null)));
    return {
      redis,
      depths: sumOf(depths),
      queues: Object.fromEntries(kinds.map((kind, index) => [kind, depths[index]!])) as Record<QueueKind, QueueDepths>,
      workers: workers.map((worker, index) => ({
        ...worker,
        stopped: now - Date.parse(worker.lastSeen) > MISSED_HEARTBEATS * WORKER_HEARTBEAT_MS,
        video: current[index]?.data.job.source ?? null,
        progress: progressOf(current[index]?.progress),
      })),
      failed: kinds.flatMap((kind, index) => failed[index]!.map((job) => ({
        queue: kind, id: job.id, video: job.data.job.source, attempts: job.attemptsMade, error: job.error === null ? null : hidden(job.error),
      }))),
    };
  } catch (error) {
    return { redis, error: hidden(errorMessage(error)) };
  } finally {
    await Promise.all(queues.map((queue) => queue.close().catch(() => undefined)));
  }
}

async function findIn(queues: AnyJobQueue[], id: string) {
  for (const queue of queues) {
    const job = await queue.find(id);
    if (job) return job;
  }
  return null;
}

function sumOf(all: QueueDepths[]): QueueDepths {
  const total: QueueDepths = { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 };
  for (const depths of all) for (const key of Object.keys(total) as (keyof QueueDepths)[]) total[key] += depths[key];
  return total;
}

function progressOf(value: unknown): { done: number; total: number } | null {
  const { done, total } = (value ?? {}) as { done?: unknown; total?: unknown };
  return typeof done === 'number' && typeof total === 'number' ? { done, total } : null;
}
