/** `celforge status [--json]`: the jobs with their stage and state, the job queue and its workers (queue.redis), training, and the checkpoint reviews. */
import { existsSync } from 'node:fs';
import { loadConfig } from '../config/load.ts';
import { Ledger } from '../daemon/ledger.ts';
import { ledgerPath, stateDir } from '../daemon/library-paths.ts';
import { readQueueStatus } from '../daemon/queue-status.ts';
import { ReviewQueue, type QueuedReview } from '../stages/checkpoint-review/review-queue.ts';
import { readTrainingState, trainingStatePath } from '../training/training-state.ts';
import type { GlobalOptions } from './context.ts';
import { describeJob } from './job-summary.ts';
import { describeQueue } from './queue-summary.ts';
import { describeTraining } from './training-summary.ts';

export async function statusCommand(options: GlobalOptions & { json?: boolean }): Promise<void> {
  const config = await loadConfig({ configPath: options.config, library: options.library });
  const file = ledgerPath(config.library);
  const jobs = existsSync(file) ? await Ledger.read(file) : [];
  const training = await readTrainingState(trainingStatePath(stateDir(config.library)));
  const reviews = config.train ? (await ReviewQueue.open(config.train.dir!)).entries : [];
  const queue = config.queue.redis ? await readQueueStatus(config.queue.redis) : undefined;
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ library: config.library, jobs, training, reviews, queue }, null, 2)}\n`);
    return;
  }
  if (queue) process.stdout.write(`${describeQueue(queue).join('\n')}\n`);
  if (training) process.stdout.write(`${describeTraining(training)}\n`);
  if (reviews.length) process.stdout.write(`checkpoint reviews: ${reviews.map(describeReview).join(', ')}\n`);
  if (jobs.length === 0) {
    process.stdout.write(`no jobs in ${config.library}; drop videos into ${config.inbox.join(', ')}\n`);
    return;
  }
  for (const job of jobs) process.stdout.write(`${describeJob(job)}\n`);
}

function describeReview(review: QueuedReview): string {
  return `${review.version} ${review.status}${(review.status === 'queued' || review.status === 'gone') && review.waiting ? ` (${review.waiting})` : ''}`;
}
