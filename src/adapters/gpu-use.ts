/**
 * How busy the GPU is and how much of its memory is held, from nvidia-smi
 * where it is on PATH (per process, so our trainer's own use can be told
 * apart), else from systeminformation's graphics controllers. The second is
 * no second measurement: systeminformation also asks nvidia-smi
 * (lib/graphics.js, getNvidiaSmi: `nvidia-smi` on Linux, and on Windows
 * System32\nvidia-smi.exe or the newest copy under
 * System32\DriverStore\FileRepository, which need not be on PATH), but it
 * finds the Windows copies that are not on PATH. On macOS it reads
 * system_profiler, which has no utilisation or memory in use: there GPU use
 * is unknown.
 */
import type { Systeminformation } from 'systeminformation';

export interface GpuProcess {
  pid: number;
  /** null where nvidia-smi prints "[N/A]", as it does for every process under Windows' WDDM driver model. */
  usedMiB: number | null;
}

export type GpuUse =
  | { source: 'nvidia-smi'; utilization: number; processes: GpuProcess[] }
  | { source: 'systeminformation'; utilization: number; usedMiB: number };

/** `nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits`: one percentage per GPU, one a line. The busiest GPU counts. */
export function parseNvidiaSmiUtilization(stdout: string): number | null {
  const values = stdout.split(/\r?\n/).map((line) => line.trim()).filter(Boolean).map(Number);
  return values.length > 0 && values.every(Number.isFinite) ? Math.max(...values) : null;
}

/** `nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits`: "pid, MiB" a line; nothing when no process uses the GPU. */
export function parseNvidiaSmiApps(stdout: string): GpuProcess[] | null {
  const processes: GpuProcess[] = [];
  for (const line of stdout.split(/\r?\n/).map((text) => text.trim()).filter(Boolean)) {
    const [pid, used] = line.split(',').map((cell) => cell.trim());
    if (!pid || !/^\d+$/.test(pid) || used === undefined) return null;
    processes.push({ pid: Number(pid), usedMiB: /^\d+(\.\d+)?$/.test(used) ? Number(used) : null });
  }
  return processes;
}

export type GraphicsController = Systeminformation.GraphicsControllerData;

/**
 * GPU use from systeminformation's controllers: the busiest one's
 * utilisation and the memory in use on all of them. systeminformation sets
 * these only from nvidia-smi and only when they are truthy
 * (lib/graphics.js, mergeControllerNvidia: `if (nvidia.utilizationGpu)`,
 * `if (nvidia.memoryUsed)`), so a controller with one of them and not the
 * other has 0 of the other. Null when no controller has either.
 */
export function gpuUseFromControllers(controllers: readonly GraphicsController[]): GpuUse | null {
  const measured = controllers.filter((controller) => typeof controller.utilizationGpu === 'number' || typeof controller.memoryUsed === 'number');
  if (measured.length === 0) return null;
  return {
    source: 'systeminformation',
    utilization: Math.max(...measured.map((controller) => controller.utilizationGpu ?? 0)),
    usedMiB: measured.reduce((sum, controller) => sum + (controller.memoryUsed ?? 0), 0),
  };
}
