/**
 * `celforge review-checkpoints [--version N]`: runs the queued checkpoint
 * reviews now, whatever the training windows say (or reviews version N
 * again, reusing its stored renders), printing each render as it starts and
 * one summary line per version with its regressions. A generator that is
 * down leaves the review queued (exit 1).
 */
import path from 'node:path';
import { createImageWorkers } from '../adapters/image-workers.ts';
import { stateDir } from '../daemon/library-paths.ts';
import { CelforgeError } from '../errors.ts';
import { ModelCache } from '../models/model-cache.ts';
import { CheckpointReviewer, type RunResult } from '../stages/checkpoint-review/review-runner.ts';
import { ReviewQueue } from '../stages/checkpoint-review/review-queue.ts';
import { versionName } from '../stages/checkpoint-review/review-summary.ts';
import type { RegressionReason } from '../stages/checkpoint-review/scores.ts';
import { readTrainingState, trainingStatePath } from '../training/training-state.ts';
import { commandContext, type GlobalOptions } from './context.ts';

export async function reviewCheckpointsCommand(options: GlobalOptions & { version?: string }): Promise<number> {
  const { config, log } = await commandContext(options, 'warn');
  const where = config.source ?? 'the configuration';
  if (!config.review.generator) throw new CelforgeError('CONFIG_INVALID', `${where}: review.generator is not set; set it to the A1111/Forge or ComfyUI server that renders the checkpoint review (see the README)`);
  if (!config.train) throw new CelforgeError('CONFIG_INVALID', `${where}: no train section; the checkpoint review reviews the checkpoints training makes`);
  const version = options.version === undefined ? undefined : parseVersion(options.version);
  const abort = new AbortController();
  const images = createImageWorkers(config.inference.workers);
  const reviewer = new CheckpointReviewer({ config: () => config, ports: { images, models: new ModelCache(), log }, log, signal: abort.signal });
  const onInterrupt = () => abort.abort();
  process.on('SIGINT', onInterrupt);
  process.on('SIGTERM', onInterrupt);
  try {
    const queue = await ReviewQueue.open(config.train.dir!);
    const training = await readTrainingState(trainingStatePath(stateDir(config.library)));
    // As the daemon's tick does: named steps' checkpoints first, then the final one.
    await reviewer.queueSteps(queue, training);
    await reviewer.queueFinished(queue, training);
    if (version === undefined && queue.pending().length === 0) {
      if (queue.entries.length === 0) throw new CelforgeError('FILE_NOT_FOUND', `no checkpoint to review in ${config.train.dir}: no training has finished yet (celforge train)`);
      process.stdout.write(`nothing queued: ${queue.entries.map((entry) => entry.version).join(', ')} reviewed; review one again with --version N\n`);
      return 0;
    }
    const results = await reviewer.run(queue, { version, force: true, progress: (message) => process.stdout.write(`${message}\n`) });
    for (const result of results) process.stdout.write(`${describeResult(result, config.train.dir!)}\n`);
    return results.every((result) => 'outcome' in result && result.outcome.status === 'reviewed') ? 0 : 1;
  } finally {
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onInterrupt);
    await images.close();
  }
}

function parseVersion(text: string): string {
  const number = Number(text.replace(/^v/i, ''));
  if (!Number.isInteger(number) || number < 1) throw new CelforgeError('CONFIG_INVALID', `--version ${text}: expected a version number such as 2 (or v2)`);
  return versionName(number);
}

function describeResult(result: RunResult, dir: string): string {
  if (!('outcome' in result)) return result.gone ? `${result.version} not reviewed: ${result.unavailable}` : `${result.version} stays queued: ${result.unavailable}`;
  const { outcome } = result;
  if (outcome.status === 'stopped') return `${result.version} stopped: ${outcome.reason}; ${outcome.remaining} renders left`;
  const { summary } = outcome;
  const against = summary.previous ? ` against ${summary.previous}` : '';
  const flagged = summary.regressions.map((regression) => `${regression.template}: ${regression.reasons.map(describeReason).join(', ')}`);
  const regressions = flagged.length === 0 ? 'no regressions' : `${flagged.length} regression${flagged.length === 1 ? '' : 's'} (${flagged.join('; ')})`;
  return `${summary.version} reviewed${against}: ${summary.templates.length} templates, ${outcome.rendered} rendered, ${outcome.reused} reused; ${regressions}; sheet ${path.join(dir, 'reviews', summary.version, summary.sheet)}`;
}

function describeReason(reason: RegressionReason): string {
  switch (reason.kind) {
    case 'found':
      return `prompt tags found ${reason.previous.toFixed(2)} -> ${reason.current.toFixed(2)}`;
    case 'vanished':
      return `subject lost (${reason.tags.join(', ')})`;
    case 'drift':
      return `composition drift to ${reason.tags.join(', ')}`;
    case 'character':
      return `character drawn ${reason.previous.toFixed(2)} -> ${reason.current.toFixed(2)}`;
  }
}
