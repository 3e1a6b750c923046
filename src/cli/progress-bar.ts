/**
 * The terminal progress bar of `celforge process`: the job being worked on,
 * frames done of total, frames per second and ETA, redrawn from the ledger.
 */
import cliProgress from 'cli-progress';
import type { Job } from '../daemon/job.ts';

export class JobProgressBar {
  readonly #bar = new cliProgress.SingleBar(
    {
      format: '{name} [{bar}] {value}/{total} frames | {rate} fps | ETA {eta_formatted} | {stage} {state}',
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  /** Job and stage the rate is measured over: probing and the disk gate write no frames. */
  #current: string | null = null;
  #started = { at: 0, frames: 0 };

  show(job: Job | undefined): void {
    if (!job) return;
    const total = job.progress?.total ?? job.probe?.frameCount ?? 0;
    const done = job.progress?.done ?? 0;
    const key = `${job.id}/${job.stage}`;
    if (this.#current !== key) {
      this.#current = key;
      if (this.#bar.isActive) this.#bar.stop();
      this.#started = { at: Date.now(), frames: done };
      this.#bar.start(Math.max(total, 1), done, this.#payload(job, done));
      return;
    }
    if (total > 0) this.#bar.setTotal(total);
    this.#bar.update(done, this.#payload(job, done));
  }

  stop(): void {
    if (this.#bar.isActive) this.#bar.stop();
  }

  /** Gives the terminal to something else (a model download); the next show() starts the bar again. */
  pause(): void {
    this.stop();
    this.#current = null;
  }

  #payload(job: Job, done: number) {
    const seconds = (Date.now() - this.#started.at) / 1000;
    const rate = seconds > 0 ? (done - this.#started.frames) / seconds : 0;
    return { name: `${job.series} ${job.episode}`, rate: rate.toFixed(1), stage: job.stage, state: job.state };
  }
}
