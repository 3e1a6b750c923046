/**
 * What is known of the job queue (queue.redis), for `celforge status` and
 * the review page: how many jobs wait, run and failed, the workers (host,
 * GPU, current job with its progress, last seen, whether it has stopped
 * answering) and the failed jobs with their errors; or why Redis could not
 * be read. The address is shown with its password hidden, and no text
 * returned carries the password.
 *
 * API: readQueueStatus(url, now?) -> QueueStatus; MISSED_HEARTBEATS.
 */
import { openJobQueue, QUEUE_NAMES, WORKER_HEARTBEAT_MS, type QueueDepths, type WorkerInfo } from '../adapters/job-queue.ts';
import { redactRedisUrl, redisAddress, redisUrlProblem } from '../config/redis-url.ts';
import { errorMessage } from '../errors.ts';
import type { ExtractJobData, ExtractJobResult } from './extract-job.ts';

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
  depths?: QueueDepths;
  workers?: QueueWorkerStatus[];
  failed?: { id: string; video: string; attempts: number; error: string | null }[];
}

/** A worker not seen for this many heartbeats has probably stopped. */
export const MISSED_HEARTBEATS = 3;

export async function readQueueStatus(url: string, now = Date.now()): Promise<QueueStatus> {
  const redis = redactRedisUrl(url);
  const password = redisUrlProblem(url) ? undefined : redisAddress(url).password;
  // The adapter hides it in what it says; a message from deeper down (ioredis, BullMQ) might not.
  const hidden = (text: string) => (password ? text.split(password).join('(hidden)') : text);
  let queue;
  try {
    queue = await openJobQueue<ExtractJobData, ExtractJobResult>(url, QUEUE_NAMES.extract, { attempts: 1, backoffMs: 1000 });
  } catch (error) {
    return { redis, error: hidden(errorMessage(error)) };
  }
  try {
    const [depths, workers, failed] = await Promise.all([queue.depths(), queue.workers(), queue.failed()]);
    const current = await Promise.all(workers.map((worker) => (worker.job ? queue.find(worker.job) : null)));
    return {
      redis, depths,
      workers: workers.map((worker, index) => ({
        ...worker,
        stopped: now - Date.parse(worker.lastSeen) > MISSED_HEARTBEATS * WORKER_HEARTBEAT_MS,
        video: current[index]?.data.job.source ?? null,
        progress: progressOf(current[index]?.progress),
      })),
      failed: failed.map((job) => ({ id: job.id, video: job.data.job.source, attempts: job.attemptsMade, error: job.error === null ? null : hidden(job.error) })),
    };
  } catch (error) {
    return { redis, error: hidden(errorMessage(error)) };
  } finally {
    await queue.close().catch(() => undefined);
  }
}

function progressOf(value: unknown): { done: number; total: number } | null {
  const { done, total } = (value ?? {}) as { done?: unknown; total?: unknown };
  return typeof done === 'number' && typeof total === 'number' ? { done, total } : null;
}
