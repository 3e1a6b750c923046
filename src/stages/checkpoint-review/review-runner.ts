/**
 * When checkpoint reviews run: a finished training's checkpoint is queued
 * (review-queue.ts); the daemon's training loop calls `tick(trainingState)`
 * after each training tick, which runs the queued reviews only inside a
 * training window, only while no trainer runs, and stops them before the
 * window's end. A generator that is down or busy leaves the review queued,
 * tried again after `review.retryMinutes`; each new reason for waiting is
 * logged once, and a finished review is notified ('checkpoint-reviewed').
 * Whenever a review ends (finished, stopped, failed) the generator is asked
 * to unload its models, so that the GPU is free before the window ends; a
 * generator that cannot is logged, and the review's outcome stands.
 * `celforge review-checkpoints` uses `run` directly, without a window.
 *
 * API: `new CheckpointReviewer(options)`, `tick(state)`, `queueFinished(queue, state)`, `run(queue, runOptions)`.
 * Only one process reviews at a time (`<train.dir>/reviews/.lock`).
 */
import path from 'node:path';
import { createImageGenerator, GeneratorUnavailable, type ImageGenerator } from '../../adapters/image-generator.ts';
import { acquireLock, type Lock } from '../../adapters/lock-file.ts';
import type { Config } from '../../config/schema.ts';
import { CelforgeError, errorMessage } from '../../errors.ts';
import type { TaggingPorts } from '../../inference/taggers.ts';
import type { Logger } from '../../log.ts';
import type { EventSink } from '../../notify/events.ts';
import type { TrainingState } from '../../training/training-state.ts';
import { openWindow } from '../../training/windows.ts';
import { reviewCheckpoint, type ReviewOutcome } from './checkpoint-review.ts';
import { ReviewQueue, type QueuedReview } from './review-queue.ts';

export interface ReviewerOptions {
  config: () => Config;
  ports: TaggingPorts;
  log: Logger;
  clock?: () => Date;
  events?: EventSink;
  signal?: AbortSignal;
}

export interface RunOptions {
  /** Only this version, reviewed or not (its stored renders are reused); default every queued one, oldest first. */
  version?: string;
  deadline?: Date | null;
  /** Try again now even when the last attempt asked to wait (`celforge review-checkpoints`). */
  force?: boolean;
  /** Who runs it, as the lock names it: 'start' (the daemon, which skips a tick while a review runs by hand) or 'review-checkpoints'. */
  command?: string;
  progress?: (message: string) => void;
}

export type RunResult = { version: string } & ({ outcome: ReviewOutcome } | { unavailable: string });

export class CheckpointReviewer {
  readonly #options: ReviewerOptions;
  #waitingFor = '';

  constructor(options: ReviewerOptions) {
    this.#options = options;
  }

  /** After a training tick: queues a finished training's checkpoint, and reviews inside a window while no trainer runs. */
  async tick(training: TrainingState | null): Promise<void> {
    const config = this.#options.config();
    if (!config.train || !config.review.generator) return;
    const queue = await ReviewQueue.open(config.train.dir!);
    await this.queueFinished(queue, training);
    const due = queue.pending().filter((entry) => !entry.retryAt || Date.parse(entry.retryAt) <= this.#now().getTime());
    if (due.length === 0) return;
    const window = openWindow(config.train.windows, this.#now(), config.train.timezone);
    const running = training?.status === 'running' || training?.status === 'stopping';
    if (running || !window) {
      this.#waiting(`checkpoint review: ${due.map((entry) => entry.version).join(', ')} waits for ${running ? 'the training run to end' : 'the next training window'}`);
      return;
    }
    this.#waitingFor = '';
    await this.run(queue, { deadline: window.end, command: 'start' });
  }

  /** Queues a finished training's checkpoint unless it is listed (training.json is the record, so a crash between the two loses nothing). */
  async queueFinished(queue: ReviewQueue, training: TrainingState | null): Promise<void> {
    if (training?.status !== 'finished' || !training.checkpoint || queue.entries.some((entry) => entry.checkpoint === training.checkpoint)) return;
    const entry = await queue.add(training.checkpoint, this.#now());
    this.#options.log.info({ version: entry.version }, `checkpoint review: ${training.checkpoint} queued as ${entry.version}`);
  }

  /** Reviews the queued versions in order until one cannot finish now; each outcome is recorded in the queue. */
  async run(queue: ReviewQueue, options: RunOptions = {}): Promise<RunResult[]> {
    const config = this.#options.config();
    const generatorConfig = config.review.generator;
    if (!generatorConfig) throw new CelforgeError('CONFIG_INVALID', `${config.source ?? 'the configuration'}: review.generator is not set; set it to the A1111/Forge or ComfyUI server that renders the checkpoint review`);
    const lock = await this.#lock(queue, options.command ?? 'review-checkpoints');
    if (!lock) return [];
    const results: RunResult[] = [];
    try {
      // What another process did before the lock was ours (reviewed a version, queued one) counts.
      await queue.reload();
      const generator = createImageGenerator(generatorConfig);
      for (const entry of this.#select(queue, options)) {
        const result = await this.#review(queue, entry, generator, config, options);
        results.push(result);
        if (!('outcome' in result) || result.outcome.status !== 'reviewed') break;
      }
    } finally {
      await lock.release();
    }
    return results;
  }

  #select(queue: ReviewQueue, options: RunOptions): QueuedReview[] {
    if (options.version === undefined) return queue.pending().filter((entry) => options.force || !entry.retryAt || Date.parse(entry.retryAt) <= this.#now().getTime());
    const entry = queue.find(options.version);
    if (entry) return [entry];
    const known = queue.entries.map((review) => review.version);
    throw new CelforgeError('CONFIG_INVALID', `no checkpoint version ${options.version} (${known.length ? `known: ${known.join(', ')}` : 'no checkpoint was queued for review yet'})`);
  }

  async #review(queue: ReviewQueue, entry: QueuedReview, generator: ImageGenerator, config: Config, options: RunOptions): Promise<RunResult> {
    const { log } = this.#options;
    const previous = queue.previousOf(entry);
    let outcome: ReviewOutcome;
    let unavailable = false;
    try {
      outcome = await reviewCheckpoint({
        config, generator, ports: this.#options.ports, clock: this.#options.clock, deadline: options.deadline, signal: this.#options.signal, progress: options.progress,
        current: { version: entry.version, checkpoint: entry.checkpoint, sha256: entry.sha256 },
        previous: previous ? { version: previous.version, checkpoint: previous.checkpoint, sha256: previous.sha256 } : null,
      });
    } catch (error) {
      unavailable = error instanceof GeneratorUnavailable;
      const reason = `${unavailable ? 'the generator is unavailable' : 'the review failed'}: ${errorMessage(error)}`;
      const retryAt = new Date(this.#now().getTime() + config.review.retryMinutes * 60_000).toISOString();
      if (entry.waiting !== reason) (unavailable ? log.warn : log.error).call(log, { version: entry.version }, `checkpoint review of ${entry.version}: ${reason}; it stays queued and is tried again after ${retryAt}`);
      await queue.update(entry.version, { status: 'queued', waiting: reason, retryAt });
      if (!unavailable && options.command === 'review-checkpoints') throw error;
      return { version: entry.version, unavailable: reason };
    } finally {
      await this.#unload(generator, entry.version, unavailable);
    }
    if (outcome.status === 'stopped') {
      log.info({ version: entry.version }, `checkpoint review of ${entry.version} paused: ${outcome.reason}; ${outcome.remaining} renders left for the next window`);
      // Past the deadline, not again before the window's end: the next attempt would stop at once.
      const retryAt = outcome.by === 'deadline' ? options.deadline?.toISOString() ?? null : null;
      await queue.update(entry.version, { status: 'queued', waiting: outcome.reason, retryAt, sha256: outcome.sha256 });
      return { version: entry.version, outcome };
    }
    const { summary } = outcome;
    await queue.update(entry.version, { status: 'reviewed', reviewedAt: summary.reviewedAt, waiting: null, retryAt: null, sha256: outcome.sha256 });
    const flagged = summary.regressions.length;
    log.info({ version: entry.version }, `checkpoint review of ${entry.version}${summary.previous ? ` against ${summary.previous}` : ''}: ${flagged === 0 ? 'no regressions' : `${flagged} regressions (${summary.regressions.map((regression) => regression.template).join(', ')})`}; ${path.join(path.dirname(queue.file), entry.version, summary.sheet)}`);
    this.#options.events?.emit({ kind: 'checkpoint-reviewed', version: summary.version, regressions: flagged, templates: summary.templates.length });
    return { version: entry.version, outcome };
  }

  async #unload(generator: ImageGenerator, version: string, unavailable: boolean): Promise<void> {
    try {
      await generator.unload();
    } catch (error) {
      // A generator the review found unavailable is expected to fail this too, and was logged once already.
      (unavailable ? this.#options.log.debug : this.#options.log.warn).call(this.#options.log, { version }, `checkpoint review of ${version}: ${generator.url} did not unload its models, so the GPU may still hold them: ${errorMessage(error)}`);
    }
  }

  /** The reviews' lock; in the daemon, a review run by hand at the same time means skip this tick. */
  async #lock(queue: ReviewQueue, command: string): Promise<Lock | null> {
    const file = path.join(path.dirname(queue.file), '.lock');
    try {
      return await acquireLock(file, command, `the checkpoint reviews (${path.dirname(queue.file)})`);
    } catch (error) {
      if (command === 'start' && error instanceof CelforgeError && error.code === 'LIBRARY_LOCKED') {
        this.#waiting(`checkpoint review: ${errorMessage(error)}`);
        return null;
      }
      throw error;
    }
  }

  #waiting(message: string): void {
    if (message !== this.#waitingFor) this.#options.log.info(message);
    this.#waitingFor = message;
  }

  #now(): Date {
    return (this.#options.clock ?? (() => new Date()))();
  }
}
