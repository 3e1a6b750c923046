/**
 * Which of Kohya's step checkpoints are written in full: sd-scripts writes
 * the file in place and then the step's state folder, so one with nothing
 * after it may be half written; the extension follows --save_model_as.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { stepCheckpoints } from '../../src/training/step-checkpoints.ts';
import type { TrainingRun } from '../../src/training/training-state.ts';
import { tempDir } from '../helpers.ts';

test('a step checkpoint counts once the trainer wrote something after it; its extension is --save_model_as', (t) => {
  const dir = tempDir(t);
  const run: TrainingRun = { index: 2, dir, log: '', pgid: 0, startedAt: '', baseSteps: 170, maxSteps: 200, barTotal: 190, initialStep: 170, resumedFrom: null };
  const write = (name: string) => writeFileSync(path.join(dir, name), 'x');
  const found = (args: Record<string, string> = {}) => stepCheckpoints(run, { args, outputName: 'c' }).map((checkpoint) => [path.basename(checkpoint.file), checkpoint.trainerStep, checkpoint.step]);
  write('c-step00000020.safetensors');
  write('other-step00000020.safetensors');
  assert.deepEqual(found(), [], 'being written: no state folder yet');
  mkdirSync(path.join(dir, 'c-step00000020-state'));
  // global_step 10 when the bar showed 0 (200 - 190): the trainer's step 20 is step 170 + 10 of the training.
  assert.deepEqual(found(), [['c-step00000020.safetensors', 20, 180]]);
  write('c-step00000030.safetensors');
  write('c-step00000040.safetensors');
  assert.deepEqual(found().map(([name]) => name), ['c-step00000020.safetensors', 'c-step00000030.safetensors'], 'step 30: a later checkpoint exists; step 40: nothing after it yet');
  write('c.safetensors');
  assert.deepEqual(found().map(([, , step]) => step), [180, 190, 200], 'the final checkpoint: every step checkpoint is whole');
  assert.deepEqual(found({ save_model_as: 'ckpt' }), [], 'with --save_model_as ckpt, .safetensors files are not its checkpoints');
});
