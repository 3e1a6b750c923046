/**
 * The trainer as an operating-system process: started detached in its own
 * process group with its output going to a log file (so that it outlives a
 * daemon restart and the daemon can follow it again), and stopped by
 * signalling the whole group: Kohya has no signal handling and `accelerate
 * launch` does not forward signals to the Python it starts.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface StartedTrainer {
  pid: number;
  /** The process group: the same number as pid (the trainer leads its group). */
  pgid: number;
  /** Resolves with the exit code (null when killed by a signal) for a trainer this process started. */
  exited: Promise<{ code: number | null; signal: string | null }>;
}

export function startTrainer(command: readonly string[], options: { cwd: string; log: string; env?: NodeJS.ProcessEnv }): StartedTrainer {
  const out = openSync(options.log, 'a');
  try {
    const child = spawn(command[0]!, command.slice(1), { cwd: options.cwd, detached: true, stdio: ['ignore', out, out], env: options.env ?? process.env });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', (error) => resolve({ code: 127, signal: error.message }));
    });
    child.unref();
    return { pid: child.pid ?? -1, pgid: child.pid ?? -1, exited };
  } finally {
    closeSync(out);
  }
}

export function groupAlive(pgid: number): boolean {
  if (pgid <= 0) return false;
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** SIGINT, then SIGTERM, then SIGKILL to the whole group, each given `graceMs` to end it. */
export async function stopGroup(pgid: number, graceMs = 10_000): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
    if (!groupAlive(pgid)) return;
    try {
      process.kill(-pgid, signal);
    } catch {
      return;
    }
    const deadline = Date.now() + graceMs;
    while (groupAlive(pgid) && Date.now() < deadline) await sleep(50);
  }
}
