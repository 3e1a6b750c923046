/**
 * Is the machine free for training? The GPU's utilisation and the memory
 * other processes hold on it (src/adapters/gpu-use.ts), the share of CPU
 * time in use (systeminformation's currentLoad, on every platform), and
 * optionally how long since the last keyboard or mouse input
 * (src/adapters/input-idle.ts, the platform's own source). Commands run
 * asynchronously with argument arrays, so the daemon's event loop stays
 * free. What cannot be measured is not held against idleness; it is
 * reported, and the supervisor logs it once.
 *
 * `createIdleProbe` takes the platform, environment, command runner and
 * systeminformation calls as parameters so that each platform's path can be
 * run anywhere; `systemIdleProbe` is this machine's.
 */
import { execFile } from 'node:child_process';
import si from 'systeminformation';
import { gpuUseFromControllers, parseNvidiaSmiApps, parseNvidiaSmiUtilization, type GpuUse, type GraphicsController } from './gpu-use.ts';
import { inputIdleSources, readInputIdle, type CommandRunner } from './input-idle.ts';

export interface IdleLimits {
  gpuUtilization: number;
  gpuMemoryMiB: number;
  /** Most share (0 to 1) of all CPU time in use. */
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

export interface IdleProbeSystem {
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
  run: CommandRunner;
  /** Share (0 to 1) of all CPU time in use since the previous call; null when it cannot be read. */
  cpuLoad(): Promise<number | null>;
  /** systeminformation's graphics controllers; null when it cannot say. */
  graphicsControllers(): Promise<GraphicsController[] | null>;
}

const COMMAND_TIMEOUT_MS = 10_000;

/** execFile: no shell; no console window flashing up on Windows every check. */
export const runCommand: CommandRunner = (command, args) =>
  new Promise((resolve, reject) => {
    execFile(command, [...args], { timeout: COMMAND_TIMEOUT_MS, windowsHide: true, encoding: 'utf8' }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
  });

/**
 * systeminformation's currentLoad is the share of all cores' time not idle
 * since its previous call (lib/cpu.js getLoad, from os.cpus() times, which
 * Windows fills too, unlike os.loadavg(), which is always 0 there), in
 * percent; its first call measures over half a second.
 */
async function systemCpuLoad(): Promise<number | null> {
  try {
    const { currentLoad } = await si.currentLoad();
    return Number.isFinite(currentLoad) ? Math.min(Math.max(currentLoad / 100, 0), 1) : null;
  } catch {
    return null;
  }
}

/** systeminformation reads macOS's GPUs from system_profiler, which has no utilisation or memory in use, so it is not asked there. */
async function systemGraphicsControllers(platform: NodeJS.Platform): Promise<GraphicsController[] | null> {
  if (platform === 'darwin') return null;
  try {
    return (await si.graphics()).controllers;
  } catch {
    return null;
  }
}

export function createIdleProbe(overrides: Partial<IdleProbeSystem> = {}): IdleProbe {
  const platform = overrides.platform ?? process.platform;
  const system: IdleProbeSystem = {
    platform,
    env: overrides.env ?? process.env,
    run: overrides.run ?? runCommand,
    cpuLoad: overrides.cpuLoad ?? systemCpuLoad,
    graphicsControllers: overrides.graphicsControllers ?? (() => systemGraphicsControllers(platform)),
  };
  return {
    async check(limits, training) {
      const busy: string[] = [];
      const unknown: string[] = [];
      checkGpu(await gpuUse(system), limits, training, busy, unknown);
      if (!training) {
        const load = await system.cpuLoad();
        if (load === null) unknown.push('CPU load (systeminformation did not answer)');
        else if (load > limits.cpuLoad) busy.push(`the CPU is ${Math.round(load * 100)}% busy`);
        if (limits.noInputMinutes !== undefined) {
          const sources = inputIdleSources(system.platform, system.env);
          if (sources.length === 0) unknown.push('time since the last input (no desktop session here: no DISPLAY or WAYLAND_DISPLAY)');
          else {
            const reading = await readInputIdle(sources, system.run);
            if (reading.ms === null) unknown.push(`time since the last input (${reading.tried.join(', ')} did not answer)`);
            else if (reading.ms < limits.noInputMinutes * 60_000) busy.push(`input ${Math.round(reading.ms / 60_000)} min ago`);
          }
        }
      }
      return { idle: busy.length === 0, busy, unknown };
    },
  };
}

export const systemIdleProbe: IdleProbe = createIdleProbe();

async function gpuUse(system: IdleProbeSystem): Promise<GpuUse | null> {
  try {
    const utilization = parseNvidiaSmiUtilization(await system.run('nvidia-smi', ['--query-gpu=utilization.gpu', '--format=csv,noheader,nounits']));
    const processes = parseNvidiaSmiApps(await system.run('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits']));
    if (utilization !== null && processes !== null) return { source: 'nvidia-smi', utilization, processes };
  } catch {
    // not on PATH, or no driver: systeminformation may still find one
  }
  const controllers = await system.graphicsControllers();
  return controllers ? gpuUseFromControllers(controllers) : null;
}

function checkGpu(gpu: GpuUse | null, limits: IdleLimits, training: { ownPids: readonly number[] } | null, busy: string[], unknown: string[]): void {
  if (!gpu) {
    unknown.push('GPU use (nvidia-smi did not answer, and systeminformation found no GPU it can measure)');
    return;
  }
  if (gpu.source === 'nvidia-smi') {
    const others = gpu.processes.filter((process) => !training?.ownPids.includes(process.pid));
    const unmeasured = others.filter((process) => process.usedMiB === null);
    if (unmeasured.length) unknown.push(`GPU memory of processes ${unmeasured.map((p) => p.pid).join(', ')} (nvidia-smi shows [N/A])`);
    const otherMiB = others.reduce((sum, process) => sum + (process.usedMiB ?? 0), 0);
    if (otherMiB > limits.gpuMemoryMiB) busy.push(`other processes (${others.filter((p) => p.usedMiB).map((p) => p.pid).join(', ')}) hold ${otherMiB} MiB of GPU memory`);
  } else if (training) {
    unknown.push("other processes' GPU memory (systeminformation gives only the total, which includes our trainer's)");
  } else if (gpu.usedMiB > limits.gpuMemoryMiB) {
    busy.push(`${gpu.usedMiB} MiB of GPU memory are in use`);
  }
  if (!training && gpu.utilization > limits.gpuUtilization) busy.push(`the GPU is ${gpu.utilization}% busy`);
}

/** The pids in a process group, to tell our trainer's GPU use from others'. */
export async function groupPids(pgid: number): Promise<number[]> {
  try {
    const stdout = await runCommand('ps', ['-e', '-o', 'pid=,pgid=']);
    return stdout.split('\n').map((line) => line.trim().split(/\s+/).map(Number)).filter(([, group]) => group === pgid).map(([pid]) => pid!);
  } catch {
    return [pgid];
  }
}
