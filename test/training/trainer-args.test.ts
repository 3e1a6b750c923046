/** train.args: reading flags back in both forms, and refusing the ones celforge cannot follow when the configuration loads. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.ts';
import { CelforgeError } from '../../src/errors.ts';
import { argValue, checkpointFileNames, usesScheduleFree, userArgs } from '../../src/training/trainer-args.ts';

const train = (args: unknown) => ({ train: { sdScripts: '/opt/sd-scripts', maxTrainSteps: 1000, args } });

test('flags read back from the object form and the list form, with or without "="', () => {
  assert.equal(argValue({ optimizer_type: 'AdamW8bit' }, 'optimizer_type'), 'AdamW8bit');
  assert.equal(argValue(['--optimizer_type=Prodigy'], 'optimizer_type'), 'Prodigy');
  assert.equal(argValue(['--xformers', '--optimizer-type', 'Lion'], 'optimizer_type'), 'Lion');
  assert.equal(argValue(['--xformers'], 'xformers'), true);
  assert.equal(argValue({ xformers: false }, 'xformers'), undefined);
});

test('schedule-free is every optimizer type ending in "schedulefree", any case (train_util.is_schedulefree_optimizer)', () => {
  for (const type of ['AdamWScheduleFree', 'RAdamScheduleFree', 'sgdschedulefree', 'prodigyplus.ProdigyPlusScheduleFree']) {
    assert.equal(usesScheduleFree({ optimizer_type: type }), true, type);
  }
  assert.equal(usesScheduleFree(['--optimizer_type', 'AdamW8bit']), false);
  assert.equal(usesScheduleFree([]), false);
});

test('celforge owns where a resumed run starts: --initial_step, --initial_epoch and --skip_until_initial_step are dropped', () => {
  assert.deepEqual(userArgs(['--initial_step', '50', '--skip_until_initial_step', '--initial_epoch=2', '--seed', '1']), ['--seed', '1']);
});

test('the final checkpoint follows --save_model_as', () => {
  assert.deepEqual(checkpointFileNames({ save_model_as: 'ckpt' }, 'celforge'), ['celforge.ckpt']);
  assert.deepEqual(checkpointFileNames([], 'celforge'), ['celforge.safetensors', 'celforge.ckpt']);
});

test('--max_train_epochs and a --save_model_as without one checkpoint file are refused with the key and what to do', () => {
  assert.throws(() => validateConfig(train({ max_train_epochs: 10, learning_rate: 1e-4 }), 'daemon.config.ts', '/tmp'), (error: unknown) => {
    assert.ok(error instanceof CelforgeError);
    assert.equal(error.code, 'CONFIG_INVALID');
    assert.match(error.message, /daemon\.config\.ts: invalid configuration\n {2}train\.args\.max_train_epochs = 10 is not allowed: Kohya lets --max_train_epochs override --max_train_steps.*set train\.maxTrainSteps/);
    return true;
  });
  assert.throws(() => validateConfig(train(['--network_dim', '8', '--max_train_epochs=3']), 'daemon.config.ts', '/tmp'), /train\.args\.2 = "--max_train_epochs=3" is not allowed/);
  assert.throws(() => validateConfig(train({ save_model_as: 'diffusers' }), 'daemon.config.ts', '/tmp'), /train\.args\.save_model_as = "diffusers" is not allowed: celforge follows a run to one checkpoint file: expected one of ckpt, pt, safetensors/);
  assert.doesNotThrow(() => validateConfig(train({ save_model_as: 'ckpt', max_train_epochs: false }), 'daemon.config.ts', '/tmp'));
});
