/**
 * Model downloads in a terminal: a bar per file while it downloads, then one
 * line with its size and SHA-256 (on stdout, so it stays when the bar goes).
 */
import cliProgress from 'cli-progress';
import { formatSize } from '../config/size.ts';
import { describeDownload, type DownloadProgress } from '../models/download-progress.ts';

export class DownloadBar implements DownloadProgress {
  readonly #bar = new cliProgress.SingleBar({ format: '{name} [{bar}] {percentage}% {done} of {size}', hideCursor: true }, cliProgress.Presets.shades_classic);
  readonly #beforeStart: () => void;
  #active = false;

  /** `beforeStart` clears the way for the bar (`process` stops its job bar). */
  constructor(beforeStart: () => void = () => {}) {
    this.#beforeStart = beforeStart;
  }

  /** While true the terminal belongs to the download. */
  get active(): boolean {
    return this.#active;
  }

  start(name: string, _url: string, size: number | null): void {
    this.#beforeStart();
    this.#active = true;
    this.#bar.start(size ?? 1, 0, { name, done: '0 B', size: size ? formatSize(size) : '?' });
  }

  update(name: string, received: number, total: number | null): void {
    if (total) this.#bar.setTotal(total);
    this.#bar.update(received, { name, done: formatSize(received), size: total ? formatSize(total) : '?' });
  }

  done(name: string, result: Parameters<DownloadProgress['done']>[1]): void {
    this.#stop();
    process.stdout.write(`${describeDownload(name, result)}\n`);
  }

  failed(): void {
    this.#stop();
  }

  #stop(): void {
    this.#bar.stop();
    this.#active = false;
  }
}
