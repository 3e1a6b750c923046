/**
 * Runs jobs one at a time, oldest first, through the pipeline. A waiting job
 * (disk space) is tried again at its time while others go ahead; `notify()`
 * wakes the loop when a job arrives. A coordinator (stages run on workers,
 * queue.redis) moves several jobs at once, so that each worker has a video,
 * while the stages it runs itself still go one at a time.
 */
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { isFinished, type Job } from './job.ts';
import type { Ledger } from './ledger.ts';
import { runPipeline, type PipelinePorts } from './pipeline.ts';

/** At most this long before trying again when the ledger could not be written (a full disk frees up as partial files go). */
const LEDGER_RETRY_MAX_MS = 60_000;
/** A coordinator's jobs in flight: videos queued for the workers beyond this wait in the ledger. */
const COORDINATOR_PARALLEL_JOBS = 8;

export interface SchedulerOptions {
  /** Return once every job (or every job in `only`) is done or failed. */
  exitWhenIdle?: boolean;
  only?: ReadonlySet<string>;
  /** With exitWhenIdle: a job waiting for a model counts as idle (a one-off run does not wait for a download). */
  leaveModelWaits?: boolean;
  /** With exitWhenIdle: a job waiting for disk space counts as idle (a one-off run says so and ends). */
  leaveDiskWaits?: boolean;
}

export class Scheduler {
  readonly #ledger: Ledger;
  readonly #ports: PipelinePorts;
  readonly #log: Logger;
  readonly #retryAt = new Map<string, number>();
  #wake: (() => void) | null = null;

  constructor(ledger: Ledger, ports: PipelinePorts) {
    this.#ledger = ledger;
    this.#ports = ports;
    this.#log = ports.log;
  }

  notify(): void {
    this.#wake?.();
  }

  /** Makes a job waiting for disk try again now (its wait time is dropped). */
  retryNow(): void {
    this.#retryAt.clear();
    this.notify();
  }

  async run(options: SchedulerOptions = {}): Promise<void> {
    const { signal } = this.#ports;
    const parallel = this.#ports.remoteStages ? COORDINATOR_PARALLEL_JOBS : 1;
    const ports = parallel > 1 ? { ...this.#ports, localTurn: oneAtATime() } : this.#ports;
    const running = new Map<string, Promise<void>>();
    try {
      while (!signal.aborted) {
        const job = running.size < parallel ? this.#next(running) : undefined;
        if (job) {
          running.set(job.id, this.#runJob(job, ports).finally(() => {
            running.delete(job.id);
            this.notify();
          }));
          continue;
        }
        if (running.size === 0 && options.exitWhenIdle && this.#pending(options.only).every((pending) => isLeftWaiting(pending, options))) return;
        await this.#sleepUntilWork();
      }
    } finally {
      await Promise.all(running.values());
    }
  }

  async #runJob(job: Job, ports: PipelinePorts): Promise<void> {
    try {
      const outcome = await runPipeline(job.id, this.#ledger, ports);
      if (outcome.kind === 'waiting') this.#retryAt.set(job.id, outcome.retryAt);
      else this.#retryAt.delete(job.id);
    } catch (error) {
      // The ledger itself could not be written (a full or failing disk): keep the daemon up and try later.
      const retryMs = Math.min(LEDGER_RETRY_MAX_MS, this.#ports.config().disk.recheckSeconds * 1000);
      this.#log.error({ job: job.id, err: error }, `${job.source}: ${errorMessage(error)}; retrying in ${Math.round(retryMs / 1000)} s`);
      this.#retryAt.set(job.id, Date.now() + retryMs);
    }
  }

  #pending(only?: ReadonlySet<string>): Job[] {
    return this.#ledger.jobs().filter((job) => !isFinished(job) && (!only || only.has(job.id)));
  }

  #next(running: ReadonlyMap<string, unknown>): Job | undefined {
    const now = Date.now();
    return this.#pending()
      .filter((job) => !running.has(job.id) && (this.#retryAt.get(job.id) ?? 0) <= now)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))[0];
  }

  async #sleepUntilWork(): Promise<void> {
    const waits = [...this.#retryAt.values()].map((at) => at - Date.now());
    const ms = waits.length ? Math.max(0, Math.min(...waits)) : 60_000;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#ports.signal.removeEventListener('abort', done);
        this.#wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
      this.#ports.signal.addEventListener('abort', done);
    });
    this.#log.trace('scheduler woke');
  }
}

/** Runs what it is given one after another, each once the previous has ended (however it ended). */
function oneAtATime(): <T>(work: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return (work) => {
    const turn = tail.then(work);
    tail = turn.catch(() => undefined);
    return turn;
  };
}

function isLeftWaiting(job: Job, options: SchedulerOptions): boolean {
  if (job.state === 'waiting-for-model') return Boolean(options.leaveModelWaits);
  if (job.state === 'waiting-for-disk' || job.state === 'paused-disk-low') return Boolean(options.leaveDiskWaits);
  return false;
}
