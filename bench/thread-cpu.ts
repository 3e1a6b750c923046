/**
 * CPU time per thread of a running process and its children, read from
 * /proc (Linux): every thread's utime + stime, sampled until it exits, the
 * last sample of each thread kept. Timing steps inside the program charges
 * a step with whatever ran while it waited (the pipe's reads, the collector);
 * the kernel's count per thread does not.
 *
 * API: `followThreads(pid)` -> { stop(): ThreadCpu[] } (call after the process ended);
 * `threadKind(name)` groups thread names into what they do.
 */
import { readdirSync, readFileSync } from 'node:fs';

const POLL_MS = 100;
const TICKS_PER_SECOND = 100; // USER_HZ, the unit of utime and stime in /proc/<pid>/task/<tid>/stat (proc(5))

export interface ThreadCpu {
  pid: number;
  tid: number;
  /** The process's command name (ffmpeg, node) and the thread's own name (comm). */
  process: string;
  thread: string;
  seconds: number;
}

function readStat(file: string): { name: string; ticks: number } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  // proc(5): "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so split at the last ")".
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // Fields 14 and 15 (utime, stime) are at 11 and 12 once pid and comm are cut off (state is field 3 -> index 0).
  return { name: text.slice(text.indexOf('(') + 1, close), ticks: Number(fields[11]) + Number(fields[12]) };
}

function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const tid of tasksOf(pid)) {
    try {
      found.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return found;
}

function tasksOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}

/** Samples `pid`, its children and their threads until `stop`. */
export function followThreads(pid: number): { stop(): ThreadCpu[] } {
  const seen = new Map<string, ThreadCpu>();
  const sample = () => {
    const pids = [pid];
    for (let i = 0; i < pids.length; i += 1) pids.push(...childrenOf(pids[i]!));
    for (const processId of pids) {
      const process = readStat(`/proc/${processId}/stat`)?.name ?? '?';
      for (const tid of tasksOf(processId)) {
        const stat = readStat(`/proc/${processId}/task/${tid}/stat`);
        if (stat) seen.set(`${processId}/${tid}`, { pid: processId, tid, process, thread: stat.name, seconds: stat.ticks / TICKS_PER_SECOND });
      }
    }
  };
  sample();
  const timer = setInterval(sample, POLL_MS);
  return {
    stop: () => {
      clearInterval(timer);
      return [...seen.values()];
    },
  };
}

/**
 * What a thread does, from its process and name. Node 20 does not name its threads: the
 * feature workers, V8's helpers (GC, compiler) and libuv's pool are all "node" beside the main one.
 */
export function threadKind({ process, thread, tid, pid }: ThreadCpu): string {
  if (process === 'ffmpeg') return 'ffmpeg (decoding)';
  if (process !== 'node') return `other programs (${process})`;
  if (tid === pid) return 'node main thread';
  if (/^libvips/.test(thread)) return 'libvips (PNG, previews)';
  return 'node other threads (feature workers, GC, libuv)';
}
