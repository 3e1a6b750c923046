/**
 * `celforge review-checkpoints [--version N]` in a child process, against the
 * stand-in A1111 on real HTTP and real ONNX taggers: clear errors without a
 * generator, without a checkpoint and for an unknown version; a busy
 * generator leaves the review queued (and `celforge status` says so); then
 * progress lines and a summary line,
 * and a second review of the version reuses its renders.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { emptyTrainingState } from '../../src/training/training-state.ts';
import { FakeA1111 } from '../fixtures/fake-a1111.ts';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { runCli, tempDir, writeConfig } from '../helpers.ts';

test('review-checkpoints: errors that say what to set, a busy generator, then the queued version reviewed with progress and a summary, and again with --version', async (t) => {
  const dir = tempDir(t);
  const fake = await FakeA1111.start({ checkpoints: ['base.safetensors'] });
  t.after(() => fake.stop());
  fake.addCheckpoint('celforge-v1.safetensors');
  const library = path.join(dir, 'library');
  const train = { sdScripts: dir, script: 'sdxl_train.py', maxTrainSteps: 10 };
  const review = {
    port: 0,
    templates: [{ name: 'sky', prompt: '1girl, blue sky', seeds: [11, 22], width: 64, height: 64 }],
  };
  const base = { library: './library', models: writeModelFolder(dir, { taggers: [{ id: 'tagger-a', blueSky: 1 }] }), tags: { taggers: ['tagger-a'] }, train, review };
  const cli = (...args: string[]) => runCli(['--config', path.join(dir, 'daemon.config.ts'), 'review-checkpoints', ...args], { cwd: dir });

  writeConfig(dir, base);
  let result = await cli();
  assert.equal(result.code, 1);
  assert.match(result.stderr, /daemon\.config\.ts: review\.generator is not set; set it to the A1111\/Forge or ComfyUI server/);

  writeConfig(dir, { ...base, review: { ...review, generator: { kind: 'a1111', url: fake.url, timeoutSeconds: 20, modelFolder: path.join(dir, 'webui', 'models', 'Stable-diffusion') } } });
  result = await cli();
  assert.equal(result.code, 1);
  assert.match(result.stderr, /no checkpoint to review in .*training: no training has finished yet \(celforge train\)/);

  const checkpoint = path.join(library, 'training', 'runs', 'run-0001', 'celforge.safetensors');
  mkdirSync(path.dirname(checkpoint), { recursive: true });
  writeFileSync(checkpoint, 'weights');
  writeFileSync(path.join(library, '.celforge', 'training.json'), JSON.stringify({ ...emptyTrainingState(10), status: 'finished', checkpoint }));
  fake.mode = 'busy';
  result = await cli();
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stdout, /^v1 stays queued: the generator is unavailable: .*503/m);
  const status = await runCli(['--config', path.join(dir, 'daemon.config.ts'), 'status'], { cwd: dir });
  assert.match(status.stdout, /^checkpoint reviews: v1 queued \(the generator is unavailable: .*503.*\)$/m);

  fake.mode = 'ok';
  result = await cli();
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^v1: rendering sky seed 11 \(1 of 2\)\nv1: rendering sky seed 22 \(2 of 2\)\nv1: tagging 2 renders\n/);
  assert.match(result.stdout, /^v1 reviewed: 1 templates, 2 rendered, 0 reused; no regressions; sheet .*reviews\/v1\/sheet\.png$/m);
  assert.equal(fake.renders.length, 2);

  result = await cli('--version', '7');
  assert.equal(result.code, 1);
  assert.match(result.stderr, /no checkpoint version v7 \(known: v1\)/);

  result = await cli();
  assert.equal(result.code, 0);
  assert.match(result.stdout, /nothing queued: v1 reviewed; review one again with --version N/);
  result = await cli('--version', '1');
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /v1 reviewed: 1 templates, 0 rendered, 2 reused; no regressions/);
  assert.equal(fake.renders.length, 2, 'no new render');
});
