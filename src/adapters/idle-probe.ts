/**
 * Is the machine free for training? The GPU's utilisation and the memory
 * other processes hold on it (nvidia-smi), the CPU load, and optionally how
 * long since the last keyboard or mouse input (xprintidle, X11). Commands
 * run asynchronously, so the daemon's event loop stays free. What cannot be
 * measured here (no nvidia-smi, no xprintidle) is not held against idleness;
 * it is reported once.
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface IdleLimits {
  gpuUtilization: number;
  gpuMemoryMiB: number;
  cpuLoad: number;
  noInputMinutes?: number;
}

export interface IdleReport {
  idle: boolean;
  /** Why not idle, in words. */
  busy: string[];
  /** What could not be measured. */
  unknown: string[];
}

export interface IdleProbe {
  /**
   * `training`: a run of ours is going (then only other processes' use of the
   * GPU counts; its own load does not), with the pids of its process group.
   */
  check(limits: IdleLimits, training: { ownPids: readonly number[] } | null): Promise<IdleReport>;
}

export const systemIdleProbe: IdleProbe = {
  async check(limits, training) {
    const busy: string[] = [];
    const unknown: string[] = [];
    const gpu = await gpuUse();
    if (!gpu) unknown.push('GPU use (nvidia-smi did not answer)');
    else {
      const others = gpu.processes.filter((process) => !training?.ownPids.includes(process.pid));
      const otherMiB = others.reduce((sum, process) => sum + process.usedMiB, 0);
      if (otherMiB > limits.gpuMemoryMiB) busy.push(`other processes (${others.map((p) => p.pid).join(', ')}) hold ${otherMiB} MiB of GPU memory`);
      if (!training && gpu.utilization > limits.gpuUtilization) busy.push(`the GPU is ${gpu.utilization}% busy`);
    }
    if (!training) {
      const load = os.loadavg()[0]! / os.availableParallelism();
      if (load > limits.cpuLoad) busy.push(`CPU load ${load.toFixed(2)} per core`);
      if (limits.noInputMinutes !== undefined) {
        const idleMs = await inputIdleMs();
        if (idleMs === null) unknown.push('time since the last input (xprintidle did not answer)');
        else if (idleMs < limits.noInputMinutes * 60_000) busy.push(`input ${Math.round(idleMs / 60_000)} min ago`);
      }
    }
    return { idle: busy.length === 0, busy, unknown };
  },
};

async function gpuUse(): Promise<{ utilization: number; processes: { pid: number; usedMiB: number }[] } | null> {
  try {
    const { stdout: overall } = await run('nvidia-smi', ['--query-gpu=utilization.gpu', '--format=csv,noheader,nounits'], { timeout: 10_000 });
    const { stdout: apps } = await run('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'], { timeout: 10_000 });
    const utilization = Math.max(...overall.trim().split('\n').map(Number));
    const processes = apps.trim().split('\n').filter(Boolean).map((line) => {
      const [pid, used] = line.split(',').map((cell) => Number(cell.trim()));
      return { pid: pid!, usedMiB: used! };
    });
    return Number.isFinite(utilization) ? { utilization, processes } : null;
  } catch {
    return null;
  }
}

async function inputIdleMs(): Promise<number | null> {
  try {
    const { stdout } = await run('xprintidle', [], { timeout: 5_000 });
    const ms = Number(stdout.trim());
    return Number.isFinite(ms) ? ms : null;
  } catch {
    return null;
  }
}

/** The pids in a process group, to tell our trainer's GPU use from others'. */
export async function groupPids(pgid: number): Promise<number[]> {
  try {
    const { stdout } = await run('ps', ['-e', '-o', 'pid=,pgid='], { timeout: 5_000 });
    return stdout.split('\n').map((line) => line.trim().split(/\s+/).map(Number)).filter(([, group]) => group === pgid).map(([pid]) => pid!);
  } catch {
    return [pgid];
  }
}
