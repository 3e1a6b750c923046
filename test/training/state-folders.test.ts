/**
 * Which state folders are complete, from the files accelerate v1.6.0's
 * save_state writes (checkpointing.py save_accelerator_state): a registered
 * LR scheduler adds scheduler.bin; sd-scripts' DummyScheduler for
 * schedule-free optimizers is not registered and adds nothing.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { isComplete, stateFolders } from '../../src/training/state-folders.ts';
import { tempDir } from '../helpers.ts';

function writeState(dir: string, files: string[]) {
  mkdirSync(dir, { recursive: true });
  for (const file of files) writeFileSync(path.join(dir, file), 'x');
}

test('a state is complete with the files accelerate writes for the configured optimizer', (t) => {
  const run = tempDir(t);
  const scheduled = ['train_state.json', 'model.safetensors', 'optimizer.bin', 'scheduler.bin', 'random_states_0.pkl'];
  const scheduleFree = ['train_state.json', 'model.safetensors', 'optimizer.bin', 'random_states_0.pkl'];
  writeState(path.join(run, 'c-step00000010-state'), scheduled);
  writeState(path.join(run, 'c-step00000020-state'), scheduleFree);
  writeState(path.join(run, 'c-step00000030-state'), ['pytorch_model.bin', 'optimizer.bin', 'scaler.pt', 'random_states_0.pkl']);
  writeState(path.join(run, 'c-step00000040-state'), ['train_state.json', 'model.safetensors', 'optimizer.bin']);
  writeState(path.join(run, 'c-state'), scheduled);
  const withScheduler = stateFolders(run, 'c', { scheduler: true });
  assert.deepEqual(withScheduler.map((folder) => [path.basename(folder.dir), folder.complete, folder.trainState, folder.final]), [
    ['c-step00000010-state', true, true, false],
    ['c-step00000020-state', false, true, false],
    ['c-step00000030-state', false, false, false],
    ['c-step00000040-state', false, true, false],
    ['c-state', true, true, true],
  ]);
  const scheduleFreeFolders = stateFolders(run, 'c', { scheduler: false });
  assert.deepEqual(scheduleFreeFolders.map((folder) => folder.complete), [true, true, true, false, true], 'random_states, written last, is what a cut-short folder lacks');
  assert.equal(isComplete(path.join(run, 'c-step00000020-state'), { scheduler: false }), true);
});
