/**
 * Following a celforge run from outside, as a user's supervisor would see
 * it: the frame map's line count over time (when each tenth of the video was
 * reached, when the first frame after a restart was), the RSS of the node
 * process, and a SIGKILL of its whole process group at a chosen frame.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const POLL_MS = 200;

/** One `celforge process` run as seen from outside: when each tenth of the frame map was reached, and RSS then. */
export interface Watch {
  /** Seconds from spawn to the first line beyond `startCount`. */
  firstNewFrame: number | null;
  /** Seconds from spawn at which the map reached k tenths (index k), and the RSS in bytes then. */
  tenths: ({ seconds: number; rss: number } | undefined)[];
  /** Seconds from spawn to exit (or to the kill). */
  seconds: number;
  peakRss: number;
  /** Lines in the map after the process ended. */
  finalCount: number;
  killed: boolean;
}

// A bench that stops (an error, Ctrl-C) leaves no celforge or ffmpeg running behind it.
const children = new Set<number>();
process.on('exit', () => {
  for (const pid of children) killGroup(pid);
});

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** Counts the complete lines of a growing file, reading only what was appended (from 0 again if it was replaced). */
class LineCounter {
  private offset = 0;
  private inode = -1;
  private lines = 0;
  private readonly buffer = Buffer.allocUnsafe(1 << 20);

  constructor(private readonly file: string) {}

  count(): number {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch {
      return this.lines;
    }
    try {
      const stat = fstatSync(fd);
      if (stat.ino !== this.inode || stat.size < this.offset) {
        this.inode = stat.ino;
        this.offset = 0;
        this.lines = 0;
      }
      for (;;) {
        const read = readSync(fd, this.buffer, 0, this.buffer.length, this.offset);
        if (read === 0) break;
        const end = this.buffer.lastIndexOf(10, read - 1);
        if (end < 0) break;
        for (let i = 0; i <= end; i++) if (this.buffer[i] === 10) this.lines += 1;
        this.offset += end + 1;
      }
      return this.lines;
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * Resident memory of one process: VmRSS in /proc/<pid>/status, in kB, which
 * is RssAnon + RssFile + RssShmem (Linux Documentation/filesystems/proc.rst,
 * Table 1-2, torvalds/linux at 03c11eb3). NaN where there is no /proc.
 */
function rssOf(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

export function frameMapUnder(library: string): string | undefined {
  if (!existsSync(library)) return undefined;
  const found = readdirSync(library, { recursive: true }).map(String).find((name) => name.endsWith('frame-map.jsonl'));
  return found && path.join(library, found);
}

export interface WatchOptions {
  /** The CLI (bin/celforge.js, run as a program) and its arguments. */
  args: string[];
  /** The working folder, holding the library folder and the log. */
  work: string;
  library: string;
  /** Frames of the video: the tenths are tenths of this. */
  total: number;
  /** stdout and stderr go to this file in `work`. */
  log: string;
  /** SIGKILL the process group once the map holds this many frames. */
  killAt?: number;
  /** Lines the map held before this run: the first new frame is the first beyond. */
  startCount?: number;
}

/**
 * Runs a celforge command in its own process group and follows the frame
 * map under `library`; with `killAt`, SIGKILLs the group (ffmpeg included)
 * once that many frames are recorded. Throws if the command fails.
 */
export async function watchRun(options: WatchOptions): Promise<Watch> {
  const { work, library } = options;
  const log = openSync(path.join(work, options.log), 'a');
  const started = performance.now();
  // Run as a program, as a user's shell runs it: the node flags of its shebang apply.
  const [program, ...args] = options.args;
  const child = spawn(program!, args, { cwd: work, detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  const pid = child.pid!;
  children.add(pid);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));

  const watch: Watch = { firstNewFrame: null, tenths: [], seconds: 0, peakRss: 0, finalCount: 0, killed: false };
  const startCount = options.startCount ?? 0;
  let counter: LineCounter | undefined;
  const seconds = () => (performance.now() - started) / 1000;
  const sample = () => {
    const map = counter ? undefined : frameMapUnder(library);
    if (map) counter = new LineCounter(map);
    const count = counter?.count() ?? 0;
    const rss = rssOf(pid);
    if (rss > watch.peakRss) watch.peakRss = rss;
    // One time per poll: tenths reached in the same poll share it (no rate between them).
    const at = seconds();
    if (watch.firstNewFrame === null && count > startCount) watch.firstNewFrame = at;
    for (let k = 1; k <= 10; k++) {
      if (!watch.tenths[k] && count >= Math.ceil((k * options.total) / 10)) watch.tenths[k] = { seconds: at, rss };
    }
    if (count > 0 && !watch.tenths[0]) watch.tenths[0] = { seconds: at, rss };
    return count;
  };
  while (!done) {
    const count = sample();
    if (options.killAt !== undefined && count >= options.killAt) {
      killGroup(pid);
      watch.killed = true;
      break;
    }
    await sleep(POLL_MS);
  }
  const code = await exited;
  children.delete(pid);
  watch.seconds = seconds();
  if (!watch.killed) {
    sample();
    if (code !== 0) throw new Error(`celforge ${options.args.slice(1).join(' ')} exited ${code}; see ${path.join(work, options.log)}:\n${readFileSync(path.join(work, options.log), 'utf8').slice(-2000)}`);
  }
  watch.finalCount = counter ? new LineCounter(frameMapUnder(library)!).count() : 0;
  return watch;
}

