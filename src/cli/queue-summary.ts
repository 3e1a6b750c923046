/**
 * What `status` says about the job queue (queue.redis): how many jobs wait,
 * run and failed, the workers (host, GPU, current job, last seen) and the
 * failed jobs with their errors; or that Redis does not answer. The address
 * is shown with its password hidden.
 *
 * API: readQueueStatus(url) -> QueueStatus; describeQueue(status, now) -> lines.
 */
import { openJobQueue, QUEUE_NAMES, WORKER_HEARTBEAT_MS, type QueueDepths, type WorkerInfo } from '../adapters/job-queue.ts';
import { redactRedisUrl } from '../config/redis-url.ts';
import type { ExtractJobData, ExtractJobResult } from '../daemon/extract-job.ts';
import { errorMessage } from '../errors.ts';

export interface QueueStatus {
  redis: string;
  /** Why the queue could not be read; then nothing else is known. */
  error?: string;
  depths?: QueueDepths;
  workers?: WorkerInfo[];
  failed?: { id: string; video: string; attempts: number; error: string | null }[];
}

/** A worker not seen for this many heartbeats has probably stopped (killed, or its machine is off). */
const MISSED_HEARTBEATS = 3;

export async function readQueueStatus(url: string): Promise<QueueStatus> {
  const redis = redactRedisUrl(url);
  let queue;
  try {
    queue = await openJobQueue<ExtractJobData, ExtractJobResult>(url, QUEUE_NAMES.extract, { attempts: 1, backoffMs: 1000 });
  } catch (error) {
    return { redis, error: errorMessage(error) };
  }
  try {
    const [depths, workers, failed] = await Promise.all([queue.depths(), queue.workers(), queue.failed()]);
    return {
      redis, depths, workers,
      failed: failed.map((job) => ({ id: job.id, video: job.data.job.source, attempts: job.attemptsMade, error: job.error })),
    };
  } finally {
    await queue.close();
  }
}

export function describeQueue(status: QueueStatus, now = Date.now()): string[] {
  if (status.error) return [`job queue ${status.redis}: ${status.error}`];
  const { waiting, active, delayed, failed } = status.depths!;
  const lines = [`job queue ${status.redis}: ${waiting} waiting, ${active} running, ${delayed} waiting to retry, ${failed} failed; ${status.workers!.length} worker${status.workers!.length === 1 ? '' : 's'}`];
  for (const worker of status.workers!) {
    const seconds = Math.max(0, Math.round((now - Date.parse(worker.lastSeen)) / 1000));
    const gone = seconds * 1000 > MISSED_HEARTBEATS * WORKER_HEARTBEAT_MS ? ' (stopped?)' : '';
    lines.push(`  worker ${worker.id}${worker.gpu === null ? '' : ` GPU ${worker.gpu}`}: ${worker.job ?? 'idle'}, seen ${seconds} s ago${gone}`);
  }
  for (const job of status.failed!) lines.push(`  failed ${job.id} after ${job.attempts} tries: ${job.error ?? 'no reason given'}  ${job.video}`);
  return lines;
}
