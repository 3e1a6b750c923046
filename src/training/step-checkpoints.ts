/**
 * Kohya's intermediate checkpoints in a run's folder. Every
 * `--save_every_n_steps`, train_network.py saves `<output_name>-stepNNNNNNNN.<ext>`
 * named by its own `global_step`, writing the file in place (no temporary
 * name: networks/lora.py:1278 save_file), then the step's state folder
 * (`--save_state`, which celforge always passes), then removes an older step
 * checkpoint when `--save_last_n_steps` says so (kohya-ss/sd-scripts@48d368f
 * train_network.py:1497-1509;
 * library/train_util.py:99 STEP_FILE_NAME, :5776 get_step_ckpt_name, :5796
 * get_remove_step_no). So a checkpoint counts as written once the trainer has
 * written something after it: a state folder of its step or a later one, a
 * later step checkpoint, or the final checkpoint.
 *
 * API: `stepCheckpoints(run, train)` -> the written ones, oldest first, each
 * with the trainer's step and celforge's cumulative step (cumulativeStep,
 * the supervisor's rule for state folders).
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { cumulativeStep } from './state-folders.ts';
import { checkpointFileNames, type TrainerArgs } from './trainer-args.ts';
import type { TrainingRun } from './training-state.ts';

export interface StepCheckpoint {
  file: string;
  /** The step in the file's name: the trainer's `global_step` in that run. */
  trainerStep: number;
  /** celforge's cumulative step, as `celforge status` counts. */
  step: number;
}

export function stepCheckpoints(run: TrainingRun, train: { args: TrainerArgs; outputName: string }): StepCheckpoint[] {
  if (!existsSync(run.dir)) return [];
  const names = readdirSync(run.dir);
  const finals = checkpointFileNames(train.args, train.outputName);
  // The step checkpoint's extension is the final one's ("." + save_model_as).
  const extensions = new Set(finals.map((name) => path.extname(name)));
  const stepwise = new RegExp(`^${train.outputName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-step(\\d{8,})(-state|\\.\\w+)$`);
  const checkpoints: { file: string; trainerStep: number }[] = [];
  const states: number[] = [];
  for (const name of names) {
    const match = stepwise.exec(name);
    if (!match) continue;
    if (match[2] === '-state') states.push(Number(match[1]));
    else if (extensions.has(match[2]!)) checkpoints.push({ file: path.join(run.dir, name), trainerStep: Number(match[1]) });
  }
  const ended = names.some((name) => finals.includes(name) || name === `${train.outputName}-state`);
  return checkpoints
    .filter(({ trainerStep }) => ended || states.some((step) => step >= trainerStep) || checkpoints.some((other) => other.trainerStep > trainerStep))
    .sort((a, b) => a.trainerStep - b.trainerStep)
    .map((checkpoint) => ({ ...checkpoint, step: cumulativeStep(run, checkpoint.trainerStep) }));
}
