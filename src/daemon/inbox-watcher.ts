/**
 * Watches the inbox folders (recursively, chokidar) for video files and
 * reports each one once it is completely written. Files present at start-up
 * go through the same settle check; a periodic full rescan catches events the
 * OS dropped; polling serves network shares. Hidden, partial and temporary
 * files are ignored, and so is the library if it sits inside an inbox. With
 * `watch.waitForMount` an inbox on a network share is waited for until it is
 * mounted.
 */
import { statSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { SettleTracker } from './settle.ts';

/** Mounted: the folder exists on another file system than the root one. */
export function isMounted(folder: string): boolean {
  try {
    return statSync(folder).dev !== statSync(path.parse(path.resolve(folder)).root).dev;
  } catch {
    return false;
  }
}

const PARTIAL_SUFFIXES = ['.part', '.partial', '.tmp', '.temp', '.crdownload', '.download', '.filepart', '.!qb', '~'];

export interface InboxWatcherOptions {
  config: Config;
  log: Logger;
  onVideo: (file: string) => void;
}

export class InboxWatcher {
  readonly #config: Config;
  readonly #log: Logger;
  readonly #tracker: SettleTracker;
  #watcher: FSWatcher | null = null;
  #rescanTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #wakeMountWait: (() => void) | null = null;
  /** Ends start()'s wait for chokidar's first scan: a closed watcher never reports `ready` (SIGTERM during a long first scan). */
  #wakeReadyWait: (() => void) | null = null;

  constructor({ config, log, onVideo }: InboxWatcherOptions) {
    this.#config = config;
    this.#log = log;
    this.#tracker = new SettleTracker(config.watch.settleSeconds * 1000, onVideo);
  }

  async start(): Promise<void> {
    const { inbox, watch: settings } = this.#config;
    if (settings.waitForMount) {
      if (!(await this.#waitForMounts())) return;
    } else {
      await Promise.all(inbox.map((folder) => mkdir(folder, { recursive: true })));
    }
    this.#watcher = watch(inbox, {
      ignored: (file, stats) => this.#ignored(file, stats?.isFile() ?? false),
      ignoreInitial: false,
      usePolling: settings.polling,
      interval: settings.pollIntervalSeconds * 1000,
      binaryInterval: settings.pollIntervalSeconds * 1000,
    });
    const consider = (file: string) => {
      if (this.isVideo(file)) void this.#tracker.touch(path.resolve(file));
    };
    this.#watcher.on('add', consider);
    this.#watcher.on('change', consider);
    this.#watcher.on('unlink', (file) => this.#tracker.forget(path.resolve(file)));
    this.#watcher.on('error', (error) => this.#log.error({ err: error }, 'inbox watcher error'));
    await new Promise<void>((resolve) => {
      this.#wakeReadyWait = resolve;
      this.#watcher!.once('ready', () => resolve());
    });
    this.#wakeReadyWait = null;
    if (this.#closed) {
      await this.#watcher.close();
      return;
    }
    this.#rescanTimer = setInterval(() => void this.rescan(), settings.rescanMinutes * 60_000);
    this.#log.info({ inbox, settleSeconds: settings.settleSeconds, polling: settings.polling }, 'watching the inbox');
  }

  /** Walks every inbox folder and checks each video again (unchanged ones are skipped). */
  async rescan(): Promise<void> {
    for (const folder of this.#config.inbox) {
      for (const file of await this.#videosUnder(folder)) await this.#tracker.touch(file);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wakeMountWait?.();
    this.#wakeReadyWait?.();
    if (this.#rescanTimer) clearInterval(this.#rescanTimer);
    this.#tracker.close();
    await this.#watcher?.close();
  }

  isVideo(file: string): boolean {
    return this.#config.watch.extensions.includes(path.extname(file).toLowerCase()) && !this.#ignored(file, true);
  }

  #ignored(file: string, isFile: boolean): boolean {
    const absolute = path.resolve(file);
    const library = this.#config.library;
    if (absolute === library || absolute.startsWith(library + path.sep)) return true;
    const name = path.basename(absolute);
    if (this.#config.inbox.includes(absolute)) return false;
    if (name.startsWith('.') || name.startsWith('~$')) return true;
    if (!isFile) return false;
    const lower = name.toLowerCase();
    if (PARTIAL_SUFFIXES.some((suffix) => lower.endsWith(suffix))) return true;
    return !this.#config.watch.extensions.includes(path.extname(lower));
  }

  async #videosUnder(folder: string): Promise<string[]> {
    const entries = await readdir(folder, { recursive: true, withFileTypes: true }).catch(() => []);
    return entries
      .filter((entry) => entry.isFile())
      .map((entry) => path.join(entry.parentPath, entry.name))
      .filter((file) => this.isVideo(file) && !this.#hiddenFolderBetween(folder, file));
  }

  /**
   * An inbox on a network share that is not mounted is a missing folder, or
   * an empty mount point on the root file system: neither is read as an empty
   * inbox, and nothing is created there. Returns false when closed first.
   */
  async #waitForMounts(): Promise<boolean> {
    const reported = new Set<string>();
    for (;;) {
      const waiting = this.#config.inbox.filter((folder) => !isMounted(folder));
      if (waiting.length === 0) {
        if (reported.size) this.#log.info({ inbox: this.#config.inbox }, 'the inbox is mounted now');
        return true;
      }
      for (const folder of waiting.filter((folder) => !reported.has(folder))) {
        reported.add(folder);
        this.#log.warn({ folder }, `${folder}: the inbox is not mounted; waiting for it`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#config.watch.pollIntervalSeconds * 1000);
        this.#wakeMountWait = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (this.#closed) return false;
    }
  }

  #hiddenFolderBetween(inbox: string, file: string): boolean {
    return path.relative(inbox, path.dirname(file)).split(path.sep).some((part) => part.startsWith('.'));
  }
}
