/**
 * What `status` says about the job queue (queue.redis), in lines: how many
 * jobs wait, run and failed, the workers (host, GPU, current job and its
 * progress, last seen) and the failed jobs with their errors; or that Redis
 * does not answer. What it says is gathered by daemon/queue-status.ts.
 *
 * API: describeQueue(status, now) -> lines.
 */
import type { QueueStatus } from '../daemon/queue-status.ts';

export function describeQueue(status: QueueStatus, now = Date.now()): string[] {
  if (status.error) return [`job queue ${status.redis}: ${status.error}`];
  const { waiting, active, delayed, failed } = status.depths!;
  const lines = [`job queue ${status.redis}: ${waiting} waiting, ${active} running, ${delayed} waiting to retry, ${failed} failed; ${status.workers!.length} worker${status.workers!.length === 1 ? '' : 's'}`];
  for (const worker of status.workers!) {
    const seconds = Math.max(0, Math.round((now - Date.parse(worker.lastSeen)) / 1000));
    const progress = worker.progress ? ` ${worker.progress.done}/${worker.progress.total}` : '';
    lines.push(`  worker ${worker.id}${worker.gpu === null ? '' : ` GPU ${worker.gpu}`}: ${worker.job ? `${worker.job}${progress}` : 'idle'}, seen ${seconds} s ago${worker.stopped ? ' (stopped?)' : ''}`);
  }
  for (const job of status.failed!) lines.push(`  failed ${job.id} after ${job.attempts} tries: ${job.error ?? 'no reason given'}  ${job.video}`);
  return lines;
}
