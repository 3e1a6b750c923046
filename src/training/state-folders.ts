/**
 * Kohya's resumable states in a run's output folder: `<name>-step00000500-state`
 * every `--save_every_n_steps` and `<name>-state` at the end (sd-scripts
 * library/train_util.py STEP_STATE_NAME, LAST_STATE_NAME), each written by
 * `accelerator.save_state`. A folder is complete only when every file that
 * save_state writes for this training is there and not empty; a folder cut
 * short by a kill is never resumed from.
 *
 * What save_state writes, in order (accelerate v1.6.0, accelerator.py
 * save_state and checkpointing.py save_accelerator_state lines 100-170):
 * the pre-hooks (sd-scripts' `train_state.json`, since 2024-05-31, commit
 * b2363f10), `model.safetensors` (`pytorch_model.bin` without safetensors;
 * `_1`, `_2`... for further models), `optimizer.bin`, `scheduler.bin` for
 * each *registered* scheduler, a sampler only for iterable datasets,
 * `scaler.pt` with fp16, and `random_states_<process>.pkl`. sd-scripts
 * registers no scheduler for schedule-free optimizers (a DummyScheduler that
 * is not an LRScheduler, so accelerate's prepare leaves it alone:
 * accelerator.py _prepare_one line 1294): their states have no scheduler.bin.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { TrainingRun } from './training-state.ts';

export interface StateFolder {
  dir: string;
  /** The step in the folder's name: the trainer's own `global_step` in that run. */
  step: number;
  /** The state written at the end of training (`<name>-state`). */
  final: boolean;
  complete: boolean;
  /** Holds train_state.json: written by an sd-scripts that reads it back on --resume. */
  trainState: boolean;
}

export interface StateContents {
  /** Whether accelerate saves a scheduler for this training (not for schedule-free optimizers). */
  scheduler: boolean;
}

const MODEL = /^(model(_\d+)?\.safetensors|pytorch_model(_\d+)?\.bin)$/;
const OPTIMIZER = /^optimizer(_\d+)?\.bin$/;
const SCHEDULER = /^scheduler(_\d+)?\.bin$/;
const RANDOM_STATES = /^random_states_\d+\.pkl$/;

export function stateFolders(runDir: string, outputName: string, contents: StateContents): StateFolder[] {
  if (!existsSync(runDir)) return [];
  const stepwise = new RegExp(`^${escape(outputName)}-step(\\d{8})-state$`);
  const folders: StateFolder[] = [];
  for (const name of readdirSync(runDir)) {
    const dir = path.join(runDir, name);
    const match = stepwise.exec(name);
    const final = name === `${outputName}-state`;
    if ((!match && !final) || !statSync(dir).isDirectory()) continue;
    const files = filesWritten(dir);
    folders.push({ dir, step: match ? Number(match[1]) : Number.POSITIVE_INFINITY, final, complete: isComplete(files, contents), trainState: files.includes('train_state.json') });
  }
  return folders.sort((a, b) => a.step - b.step);
}

/** Whether a state folder (or the list of its non-empty files) holds everything save_state writes for this training. */
export function isComplete(dirOrFiles: string | string[], contents: StateContents): boolean {
  const files = typeof dirOrFiles === 'string' ? filesWritten(dirOrFiles) : dirOrFiles;
  const required = contents.scheduler ? [MODEL, OPTIMIZER, SCHEDULER, RANDOM_STATES] : [MODEL, OPTIMIZER, RANDOM_STATES];
  return required.every((pattern) => files.some((name) => pattern.test(name)));
}

/**
 * celforge's cumulative step for a step the trainer names a file or folder by (its `global_step` in this run):
 * the run's base plus the steps since its bar showed 0 (the rules at the top of training-supervisor.ts); before
 * the bar is seen, a train_state.json resume within the first epoch.
 */
export function cumulativeStep(run: Pick<TrainingRun, 'baseSteps' | 'maxSteps' | 'barTotal' | 'initialStep'>, trainerStep: number): number {
  const offset = run.barTotal !== undefined ? run.maxSteps - run.barTotal : (run.initialStep ?? 0);
  return run.baseSteps + trainerStep - offset;
}

function filesWritten(dir: string): string[] {
  return readdirSync(dir).filter((name) => statSync(path.join(dir, name)).size > 0);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
