/**
 * What celforge knows about training, kept in `<library>/.celforge/training.json`
 * (written to a temporary name, synced, renamed): the queued request, each
 * run (its folder, process group, where it resumed from, the steps before
 * it, how it was resumed), the cumulative step count, the progress and the last event. A
 * `celforge train` from another process leaves its request in
 * `train-request.json` beside it, for the daemon to take.
 */
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { replaceFileDurably } from '../adapters/durable-file.ts';
import { CelforgeError, errorMessage } from '../errors.ts';
import type { TrainerProgress } from './tqdm-progress.ts';

export type TrainingStatus = 'idle' | 'waiting-for-window' | 'waiting-for-idle' | 'running' | 'stopping' | 'finished' | 'failed';

export interface TrainingRequest {
  queuedAt: string;
  /** Start at once instead of in the next window. */
  now: boolean;
}

export interface TrainingRun {
  index: number;
  dir: string;
  log: string;
  pgid: number;
  /** The host that started it (a library on shared storage): its pgid names a process group there only. Absent in older records: this host's. */
  host?: string;
  startedAt: string;
  endedAt?: string;
  /** Cumulative steps done before this run (Kohya counts from 0 again). */
  baseSteps: number;
  /** `--max_train_steps` given to this run: the steps left (older sd-scripts) or the whole training (sd-scripts that write train_state.json). */
  maxSteps: number;
  resumedFrom: string | null;
  /**
   * `--initial_step` given to this run (the state's cumulative step), when it
   * resumed a state that holds train_state.json; absent for older states.
   */
  initialStep?: number;
  /**
   * The total of this run's `steps` bar, once seen. `maxSteps - barTotal` is
   * the trainer's `global_step` when the bar shows 0, which names its state
   * folders (0 except on a train_state.json resume).
   */
  barTotal?: number;
  /** Why celforge stopped it, when it did. */
  stopReason?: string;
  exit?: { code: number | null; signal: string | null };
}

export interface TrainingEvent {
  kind: 'started' | 'stopped' | 'finished' | 'failed';
  message: string;
  at: string;
}

export interface TrainingState {
  version: 1;
  status: TrainingStatus;
  /** What it waits for, or why it stopped. */
  reason: string | null;
  request: TrainingRequest | null;
  targetSteps: number;
  /** Cumulative steps in the newest complete state: what a resume starts from. */
  savedSteps: number;
  /** Cumulative steps the trainer has reported (saved or not). */
  seenSteps: number;
  progress: (TrainerProgress & { at: string }) | null;
  stopRequested: { at: string; reason: string; savedStepAtRequest: number } | null;
  nextWindow: string | null;
  checkpoint: string | null;
  runs: TrainingRun[];
  lastEvent: TrainingEvent | null;
}

export function emptyTrainingState(targetSteps: number): TrainingState {
  return {
    version: 1, status: 'idle', reason: null, request: null, targetSteps, savedSteps: 0, seenSteps: 0,
    progress: null, stopRequested: null, nextWindow: null, checkpoint: null, runs: [], lastEvent: null,
  };
}

export function trainingStatePath(stateDir: string): string {
  return path.join(stateDir, 'training.json');
}

export function trainingRequestPath(stateDir: string): string {
  return path.join(stateDir, 'train-request.json');
}

export async function readTrainingState(file: string): Promise<TrainingState | null> {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(await readFile(file, 'utf8')) as TrainingState;
  } catch (error) {
    throw new CelforgeError('LEDGER_CORRUPT', `${file}: the training record cannot be read (${errorMessage(error)}); move it away to start training records afresh`, { file });
  }
}

export function writeJsonDurably(file: string, value: unknown): Promise<void> {
  return replaceFileDurably(file, `${JSON.stringify(value, null, 2)}\n`);
}

export async function takeTrainingRequest(file: string): Promise<TrainingRequest | null> {
  if (!existsSync(file)) return null;
  try {
    const request = JSON.parse(await readFile(file, 'utf8')) as TrainingRequest;
    return request;
  } catch {
    return null;
  } finally {
    await rm(file, { force: true });
  }
}
