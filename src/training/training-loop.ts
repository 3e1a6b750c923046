/**
 * Drives the supervisor while the daemon runs: a tick every
 * `train.checkSeconds`, and one at each window opening (node-cron, in the
 * configured time zone), never two at once; after each tick, the work that
 * waits for the GPU to be free of training (`afterTick`: the checkpoint
 * review). A tick that fails is logged and the loop goes on.
 */
import cron, { type ScheduledTask } from 'node-cron';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { TrainingState } from './training-state.ts';
import type { TrainConfig, TrainingSupervisor } from './training-supervisor.ts';

export interface TrainingLoopOptions {
  supervisor: TrainingSupervisor;
  train: () => TrainConfig | undefined;
  signal: AbortSignal;
  log: Logger;
  /** Return once this holds (a foreground run). */
  until?: (state: TrainingState) => boolean;
  /** Set by the loop: makes it tick now (a new request, a reloaded configuration). */
  handle?: { wake?: () => void };
  /** Work that waits for the GPU to be free of training (the checkpoint review), run after each tick. */
  afterTick?: (state: TrainingState) => Promise<void>;
}

export async function runTrainingLoop({ supervisor, train, signal, log, until, handle, afterTick }: TrainingLoopOptions): Promise<void> {
  let wake: (() => void) | null = null;
  if (handle) handle.wake = () => wake?.();
  let tasks: ScheduledTask[] = [];
  let scheduledFor = '';
  const schedule = (config: TrainConfig) => {
    const key = JSON.stringify([config.windows, config.timezone]);
    if (key === scheduledFor) return;
    for (const task of tasks) void task.stop();
    tasks = config.windows.map((window) => cron.schedule(window.start, () => wake?.(), { timezone: config.timezone }));
    scheduledFor = key;
  };
  try {
    while (!signal.aborted) {
      const config = train();
      if (!config) return;
      schedule(config);
      try {
        const state = await supervisor.tick();
        if (until?.(state)) return;
        await afterTick?.(state).catch((error: unknown) => log.error(`checkpoint review: ${errorMessage(error)}`));
      } catch (error) {
        log.error(`training: ${errorMessage(error)}`);
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          wake = null;
          resolve();
        };
        const timer = setTimeout(done, config.checkSeconds * 1000);
        wake = done;
        signal.addEventListener('abort', done);
      });
    }
  } finally {
    for (const task of tasks) void task.stop();
  }
}
