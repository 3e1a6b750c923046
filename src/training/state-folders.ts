/**
 * Kohya's resumable states in a run's output folder: `<name>-step00000500-state`
 * every `--save_every_n_steps` and `<name>-state` at the end (sd-scripts
 * library/train_util.py STEP_STATE_NAME, LAST_STATE_NAME), each written by
 * `accelerator.save_state`. A folder is complete only when every file of a
 * state is there and not empty: the model weights, the optimizer, the
 * scheduler and the random states (written last by accelerate); a folder cut
 * short by a kill is never resumed from.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export interface StateFolder {
  dir: string;
  /** The trainer's own step count in that run. */
  step: number;
  complete: boolean;
}

const REQUIRED = [/^(model(_\d+)?\.safetensors|pytorch_model(_\d+)?\.bin)$/, /^optimizer(_\d+)?\.bin$/, /^scheduler(_\d+)?\.bin$/, /^random_states_\d+\.pkl$/];

export function stateFolders(runDir: string, outputName: string, finalStep: number): StateFolder[] {
  if (!existsSync(runDir)) return [];
  const stepwise = new RegExp(`^${escape(outputName)}-step(\\d{8})-state$`);
  const folders: StateFolder[] = [];
  for (const name of readdirSync(runDir)) {
    const dir = path.join(runDir, name);
    const match = stepwise.exec(name);
    const step = match ? Number(match[1]) : name === `${outputName}-state` ? finalStep : null;
    if (step === null || !statSync(dir).isDirectory()) continue;
    folders.push({ dir, step, complete: isComplete(dir) });
  }
  return folders.sort((a, b) => a.step - b.step);
}

export function isComplete(dir: string): boolean {
  const files = readdirSync(dir).filter((name) => statSync(path.join(dir, name)).size > 0);
  return REQUIRED.every((pattern) => files.some((name) => pattern.test(name)));
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
