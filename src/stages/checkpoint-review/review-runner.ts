/**
 * When checkpoint reviews run: a finished training's checkpoint is queued
 * (review-queue.ts), and before it, in step order, the intermediate
 * checkpoints at the steps `review.atSteps` names, as soon as the trainer has
 * written them (training running or not), each hard-linked (or copied) into
 * its version's folder so that sd-scripts' --save_last_n_steps cannot remove
 * it before its review; a version whose checkpoint is gone all the same is
 * marked 'gone' with the reason, never tried again, and the next version is
 * compared with the one before it. The daemon's training loop calls `tick(trainingState)`
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
 * API: `new CheckpointReviewer(options)`, `tick(state)`, `queueSteps(queue, state)`, `queueFinished(queue, state)`, `run(queue, runOptions)`.
 * Only one process reviews at a time (`<train.dir>/reviews/.lock`).
 */
import { copyFile, link, mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { createImageGenerator, GeneratorUnavailable, type ImageGenerator } from '../../adapters/image-generator.ts';
import { acquireLock, type Lock } from '../../adapters/lock-file.ts';
import type { Config } from '../../config/schema.ts';
import { CelforgeError, errorMessage } from '../../errors.ts';
import type { TaggingPorts } from '../../inference/taggers.ts';
import type { Logger } from '../../log.ts';
import type { EventSink } from '../../notify/events.ts';
import { stepCheckpoints } from '../../training/step-checkpoints.ts';
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

/** `gone`: the version's checkpoint file is gone; it is not tried again. */
export type RunResult = { version: string } & ({ outcome: ReviewOutcome } | { unavailable: string; gone?: true });

/** Link errors after which the checkpoint is copied instead: another volume, a file system without hard links, the link limit. */
const LINK_UNSUPPORTED = ['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK'];

export class CheckpointReviewer {
  readonly #options: ReviewerOptions;
  #waitingFor = '';
  readonly #missed = new Set<string>();

  constructor(options: ReviewerOptions) {
    this.#options = options;
  }

  /** After a training tick: queues a finished training's checkpoint, and reviews inside a window while no trainer runs. */
  async tick(training: TrainingState | null): Promise<void> {
    const config = this.#options.config();
    if (!config.train || !config.review.generator) return;
    const queue = await ReviewQueue.open(config.train.dir!);
    await this.queueSteps(queue, training);
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

  /**
   * Queues the written checkpoints at the steps review.atSteps names, in step order, once per step and training
   * (runs of an earlier training are marked baseSteps -1). A named step the training went past without a
   * checkpoint there is logged once: a resumed run saves at steps shifted by the epochs it skipped, and
   * --save_last_n_steps may have removed one while celforge was not running.
   */
  async queueSteps(queue: ReviewQueue, training: TrainingState | null): Promise<void> {
    const config = this.#options.config();
    const named = new Set(config.review.atSteps);
    if (!config.train || named.size === 0 || !training) return;
    const runs = training.runs.filter((run) => run.baseSteps >= 0);
    const ours = (entry: { checkpoint: string }) => runs.some((run) => path.dirname(entry.checkpoint) === run.dir);
    const written = runs.flatMap((run) => stepCheckpoints(run, config.train!)).sort((a, b) => a.step - b.step);
    for (const { file, step } of written) {
      if (!named.has(step) || queue.entries.some((entry) => entry.checkpoint === file || (entry.step === step && ours(entry)))) continue;
      const version = queue.nextVersion();
      let kept: string | undefined;
      try {
        kept = await keepCheckpoint(file, path.join(path.dirname(queue.file), version));
      } catch (error) {
        this.#options.log.warn({ version }, `checkpoint review: ${file} could not be kept for the review (${errorMessage(error)}); it is reviewed where the trainer wrote it, unless sd-scripts removes it first`);
      }
      await queue.add(file, this.#now(), { step, ...(kept && { kept }) });
      this.#options.log.info({ version }, `checkpoint review: ${file} (step ${step}) queued as ${version}`);
    }
    const reached = Math.max(training.status === 'finished' ? training.targetSteps : 0, ...written.map((checkpoint) => checkpoint.step));
    for (const step of named) {
      const key = `${runs[0]?.dir}:${step}`;
      if (step >= reached || this.#missed.has(key) || queue.entries.some((entry) => entry.step === step && ours(entry))) continue;
      this.#missed.add(key);
      this.#options.log.warn(`checkpoint review: the training went past step ${step} (review.atSteps) without a checkpoint there to review; a resumed run saves at steps shifted by the epochs it skipped, or sd-scripts removed it (--save_last_n_steps) before celforge saw it`);
    }
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
        if ('gone' in result) continue;
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
    const checkpoint = entry.kept ?? entry.checkpoint;
    let outcome: ReviewOutcome;
    let unavailable = false;
    try {
      outcome = await reviewCheckpoint({
        config, generator, ports: this.#options.ports, clock: this.#options.clock, deadline: options.deadline, signal: this.#options.signal, progress: options.progress,
        current: { version: entry.version, checkpoint, sha256: entry.sha256 },
        previous: previous ? { version: previous.version, checkpoint: previous.kept ?? previous.checkpoint, sha256: previous.sha256 } : null,
      });
    } catch (error) {
      if (error instanceof CelforgeError && error.code === 'FILE_NOT_FOUND' && error.file === checkpoint) {
        // A file that is gone does not come back by waiting: say why once, and let the next version go on.
        const why = entry.step !== undefined && !entry.kept ? '; it could not be kept when queued, and sd-scripts removes older step checkpoints (--save_last_n_steps)' : '';
        const reason = `its checkpoint is gone (${errorMessage(error)})${why}`;
        log.error({ version: entry.version }, `checkpoint review of ${entry.version}: ${reason}; it is not tried again`);
        await queue.update(entry.version, { status: 'gone', waiting: reason, retryAt: null });
        return { version: entry.version, unavailable: reason, gone: true };
      }
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

/** The checkpoint hard-linked into `folder` (copied where linking cannot work) under a temporary name, then renamed: never half a file. */
async function keepCheckpoint(file: string, folder: string): Promise<string> {
  const target = path.join(folder, path.basename(file));
  const temporary = `${target}.${process.pid}.tmp`;
  await mkdir(folder, { recursive: true });
  await rm(temporary, { force: true });
  try {
    await link(file, temporary);
  } catch (error) {
    if (!LINK_UNSUPPORTED.includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
    await copyFile(file, temporary);
  }
  await rename(temporary, target);
  return target;
}
