/**
 * `celforge train` through the CLI, with the stand-in Kohya: in the foreground with --now, queued with a running daemon,
 * and queued, unsignalled, for a daemon of another host.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { trainingProject } from '../fixtures/training-project.ts';
import { readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor } from '../helpers.ts';

async function setup(t: Parameters<typeof tempDir>[0], args: Record<string, unknown> = {}) {
  const { dir, pictures, configFile } = await trainingProject(t, { args: { fake_step_ms: 10, ...args }, maxTrainSteps: 30, saveEveryNSteps: 10 });
  mkdirSync(path.join(dir, 'inbox'));
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  assert.equal((await cli('import', pictures)).code, 0);
  return { dir, configFile, cli };
}

test('train --now without a daemon trains in the foreground to the end; status shows the checkpoint', async (t) => {
  const { cli } = await setup(t);
  const result = await cli('train', '--now');
  assert.equal(result.code, 0, result.stderr + result.stdout);
  assert.match(result.stdout, /training finished +step 30\/30 \(30 saved\) +checkpoint .*run-0001\/celforge\.safetensors/);
  const status = await cli('status', '--json');
  const { training } = JSON.parse(status.stdout);
  assert.equal(training.status, 'finished');
  assert.equal(training.runs.length, 1);
});

test('train with a daemon running: queued for the next window, then --now starts it at once', async (t) => {
  const { configFile, cli, dir } = await setup(t);
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  await waitFor('the daemon to watch', () => daemon.output().includes('watching the inbox'));
  const queued = await cli('train');
  assert.equal(queued.code, 0, queued.stderr);
  assert.match(queued.stdout, /queued with the daemon \(pid \d+\); the next window opens 2027-01-01T00:00:00\.000Z/);
  await waitFor('the daemon to take the request', async () => /training waiting-for-window .*next training window opens 2027-01-01/.test((await cli('status')).stdout), 20_000);

  assert.equal((await cli('train', '--now')).code, 0);
  await waitFor('the training to finish', async () => (await cli('status')).stdout.includes('training finished'), 30_000);
  assert.match(daemon.output(), /training: training run 1 started on 2 images at step 0 of 30/);
  assert.deepEqual(readJobs(path.join(dir, 'library')), []);
  await stopDaemon(daemon);
});

test("train with the library's daemon on another host: queued for it, no local process signalled, the host named with what to do there", async (t) => {
  const { cli, dir } = await setup(t);
  // The other host's daemon pid is this test's own: a SIGHUP sent to that pid here would be heard.
  const heard: string[] = [];
  const onHangup = () => heard.push('SIGHUP');
  process.on('SIGHUP', onHangup);
  t.after(() => process.off('SIGHUP', onHangup));
  const state = path.join(dir, 'library', '.celforge');
  writeFileSync(path.join(state, 'daemon.lock'), JSON.stringify({ pid: process.pid, host: 'gpu-box', command: 'start', since: new Date().toISOString(), nonce: 'elsewhere' }));
  const result = await cli('train', '--now');
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, new RegExp(`^queued in \\S+train-request\\.json for the daemon on gpu-box \\(pid ${process.pid} there\\), which takes it at its next training check \\(train\\.checkSeconds, [\\d.]+ s in this configuration\\); it is not signalled from \\S+\\. To have it taken at once, run "celforge train --now" on gpu-box, or "kill -HUP ${process.pid}" there\\.\\n$`));
  assert.deepEqual(JSON.parse(readFileSync(path.join(state, 'train-request.json'), 'utf8')).now, true);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(heard, [], 'no SIGHUP to the local process with that pid');
});

test('stopping the daemon (SIGTERM) stops the trainer\'s whole process group and keeps the run resumable', async (t) => {
  const { configFile, cli } = await setup(t);
  writeFileSync(configFile, readFileSync(configFile, 'utf8').replace('"maxTrainSteps": 30', '"maxTrainSteps": 100000'));
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  await waitFor('the daemon to watch', () => daemon.output().includes('watching the inbox'));
  assert.equal((await cli('train', '--now')).code, 0);
  const running = await waitFor('training to run', async () => {
    const { training } = JSON.parse((await cli('status', '--json')).stdout);
    return training?.status === 'running' && training.savedSteps >= 10 ? training : false;
  }, 30_000);
  const pgid = running.runs[0].pgid;
  daemon.child.kill('SIGTERM');
  assert.equal(await daemon.exited, 0);
  assert.throws(() => process.kill(-pgid, 0), 'no process of the trainer\'s group is left');
  const { training } = JSON.parse((await cli('status', '--json')).stdout);
  assert.equal(training.status, 'waiting-for-window');
  assert.equal(training.runs[0].stopReason, 'celforge was stopped');
  assert.ok(training.savedSteps >= 10);
  assert.ok(training.request, 'still queued: the next start resumes it');
});

test('train --now with --save_model_as ckpt finishes with the .ckpt checkpoint Kohya wrote', async (t) => {
  const { cli } = await setup(t, { save_model_as: 'ckpt' });
  const result = await cli('train', '--now');
  assert.equal(result.code, 0, result.stderr + result.stdout);
  assert.match(result.stdout, /training finished +step 30\/30 \(30 saved\) +checkpoint .*run-0001\/celforge\.ckpt/);
});

test('train with --max_train_epochs in train.args is refused before anything runs, naming the key and what to set instead', async (t) => {
  const { cli, dir } = await setup(t);
  const configFile = path.join(dir, 'daemon.config.ts');
  writeFileSync(configFile, readFileSync(configFile, 'utf8').replace('"fake_step_ms": 10', '"fake_step_ms": 10, "max_train_epochs": 4'));
  const result = await cli('train', '--now');
  assert.equal(result.code, 1);
  assert.match(result.stderr, /daemon\.config\.ts: invalid configuration\n {2}train\.args\.max_train_epochs = 4 is not allowed: .*set train\.maxTrainSteps/);
  assert.equal(existsSync(path.join(dir, 'library', 'training', 'runs')), false, 'no run was started');
});
