/**
 * review.atSteps: intermediate checkpoints reviewed before the final one.
 * The stand-in trainer (test/fixtures/fake-kohya) writes step checkpoints as
 * sd-scripts does, including --save_last_n_steps removing older ones; the
 * stand-in A1111 renders over real HTTP, real ONNX taggers score, the clock is
 * injected. Checked: two named steps and the final checkpoint become v1, v2,
 * v3, queued while the trainer runs, reviewed in order once it has ended, each
 * against the one before, from the file of its step even after the trainer
 * removed it; a resumed run's step checkpoint maps to celforge's cumulative
 * step; a step checkpoint that could not be kept and that the trainer removed
 * ends its version with the reason, once, and the next is compared with the
 * one before it; a named step passed without a checkpoint is logged once; the
 * key's validation.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import type { IdleProbe } from '../../src/adapters/idle-probe.ts';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { groupAlive } from '../../src/adapters/trainer-process.ts';
import { validateConfig } from '../../src/config/load.ts';
import { CelforgeError } from '../../src/errors.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { exportQuery } from '../../src/stages/export/export-query.ts';
import { ReviewQueue } from '../../src/stages/checkpoint-review/review-queue.ts';
import { CheckpointReviewer } from '../../src/stages/checkpoint-review/review-runner.ts';
import { readReviewSummary } from '../../src/stages/checkpoint-review/review-summary.ts';
import { TrainingSupervisor } from '../../src/training/training-supervisor.ts';
import { emptyTrainingState, type TrainingState } from '../../src/training/training-state.ts';
import { addTrainingFrames, reviewProject } from '../fixtures/training-project.ts';
import { tempDir, waitFor } from '../helpers.ts';

async function setup(t: TestContext, train: Record<string, unknown>, atSteps: number[]) {
  const { library, config, fake, modelFolder } = await reviewProject(t, { train, review: { atSteps }, loras: 3 });
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  await addTrainingFrames(library, catalog);
  const clock = { now: new Date('2026-11-25T22:05:00Z') };
  const idle: IdleProbe = { check: async () => ({ idle: true, busy: [], unknown: [] }) };
  const supervisor = await TrainingSupervisor.open({
    train: () => config.train!, stateDir: path.join(library, '.celforge'), clock: () => clock.now, idle, log: pino({ level: 'silent' }), signalGraceMs: 2000,
    prepareDataset: async (out) => exportQuery(catalog, config, '', out),
  });
  t.after(() => {
    const running = supervisor.state.runs.find((run) => !run.endedAt);
    if (running && groupAlive(running.pgid)) process.kill(-running.pgid, 'SIGKILL');
  });
  const images = createImageWorkers(1);
  t.after(() => images.close());
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const reviewer = new CheckpointReviewer({ config: () => config, ports: { images, models: new ModelCache(), log }, log, clock: () => clock.now });
  const trainDir = path.join(library, 'training');
  return { fake, modelFolder, config, clock, supervisor, reviewer, lines, trainDir, queue: () => ReviewQueue.open(trainDir) };
}

const loraOf = (body: Record<string, unknown>) => /<lora:([^:]+):/.exec(String(body.prompt))?.[1];

test('review.atSteps [2, 4]: queued while the trainer runs, kept when --save_last_n_steps removes one, then v1, v2 and the final v3 reviewed in order, each against the one before', async (t) => {
  const holdFile = path.join(tempDir(t), 'hold');
  // --save_last_n_steps 2 with a save every 2 steps: the save at step 6 removes step 2's checkpoint (train_util.get_remove_step_no).
  const { fake, modelFolder, clock, supervisor, reviewer, lines, trainDir, queue } = await setup(t, {
    args: { fake_step_ms: 5, fake_hold_file: holdFile, save_last_n_steps: 2 }, maxTrainSteps: 6, saveEveryNSteps: 2,
  }, [2, 4]);
  writeFileSync(holdFile, '4');
  await supervisor.request(false);
  assert.equal((await supervisor.tick()).status, 'running');
  const run = supervisor.state.runs[0]!.dir;
  const step = (n: number) => path.join(run, `celforge-step${String(n).padStart(8, '0')}.safetensors`);
  await waitFor('the trainer held after step 4\'s state', () => existsSync(path.join(run, 'celforge-step00000004-state', 'random_states_0.pkl')), 30_000);
  const running = await supervisor.tick();
  assert.equal(running.status, 'running');
  await reviewer.tick(running);
  let entries = (await queue()).entries;
  assert.deepEqual(entries.map((entry) => [entry.version, entry.step, entry.checkpoint, entry.status]), [['v1', 2, step(2), 'queued'], ['v2', 4, step(4), 'queued']], 'in step order, while the trainer runs');
  assert.equal(statSync(entries[0]!.kept!).ino, statSync(step(2)).ino, 'hard-linked into reviews/v1 when queued');
  assert.equal(entries[0]!.kept, path.join(trainDir, 'reviews', 'v1', 'celforge-step00000002.safetensors'));
  assert.equal(fake.renders.length, 0, 'no review while the trainer runs');
  assert.ok(lines.some((line) => /v1, v2 waits for the training run to end/.test(line.msg)));

  writeFileSync(holdFile, String(Number.MAX_SAFE_INTEGER));
  await waitFor('the training to finish', async () => ['finished', 'failed'].includes((await supervisor.tick()).status), 30_000);
  const done = supervisor.state;
  assert.equal(done.status, 'finished', done.lastEvent?.message);
  assert.equal(existsSync(step(2)), false, 'the stand-in removed step 2 as sd-scripts does');
  assert.equal(existsSync(path.join(run, 'celforge-step00000002-state')), false, 'and its state (save_and_remove_state_stepwise)');
  assert.ok(existsSync(step(4)) && existsSync(step(6)));

  clock.now = new Date('2026-11-25T22:30:00Z');
  await reviewer.tick(done);
  entries = (await queue()).entries;
  assert.deepEqual(entries.map((entry) => [entry.version, entry.step ?? null, entry.status]), [['v1', 2, 'reviewed'], ['v2', 4, 'reviewed'], ['v3', null, 'reviewed']], 'step 6 is not named: not queued');
  assert.equal(entries[2]!.checkpoint, path.join(run, 'celforge.safetensors'));
  assert.deepEqual(fake.renders.map(loraOf), ['celforge-v1', 'celforge-v2', 'celforge-v3'], 'each version rendered once, in order; the previous one reused');
  for (const [version, weights] of [['v1', 'weights at step 2'], ['v2', 'weights at step 4'], ['v3', 'weights at step 6']]) {
    assert.equal(readFileSync(path.join(modelFolder, `celforge-${version}.safetensors`), 'utf8'), weights, `${version} is the checkpoint of its step`);
  }
  const summaries = await Promise.all(['v1', 'v2', 'v3'].map((version) => readReviewSummary(trainDir, version)));
  assert.deepEqual(summaries.map((summary) => [summary!.version, summary!.previous, summary!.checkpoint.file]), [
    ['v1', null, entries[0]!.kept], ['v2', 'v1', entries[1]!.kept], ['v3', 'v2', path.join(run, 'celforge.safetensors')],
  ]);
});

test('a resumed run past its first epoch: its step checkpoint is queued at celforge\'s cumulative step, not the step in its name', async (t) => {
  // 40 batches an epoch: the run resumed at step 50 starts with global_step 10 (train_network.py @48d368f lines 1258-1344),
  // so its celforge-step00000020 is step 60 of the training, while the first run's celforge-step00000020 is step 20.
  const holdFile = path.join(tempDir(t), 'hold');
  const { clock, supervisor, reviewer, queue } = await setup(t, {
    args: { fake_step_ms: 5, fake_batches_per_epoch: 40, fake_hold_file: holdFile }, maxTrainSteps: 80, saveEveryNSteps: 10,
  }, [20, 60]);
  writeFileSync(holdFile, '45');
  await supervisor.request(false);
  assert.equal((await supervisor.tick()).status, 'running');
  await waitFor('bar count 45', async () => ((await supervisor.tick()).progress?.step ?? 0) >= 45, 30_000);
  clock.now = new Date('2026-11-26T00:10:00Z');
  assert.equal((await supervisor.tick()).status, 'stopping');
  writeFileSync(holdFile, '55');
  await waitFor('the first run to stop', async () => (await supervisor.tick()).runs[0]!.endedAt, 30_000);
  assert.equal(supervisor.state.savedSteps, 50);
  await reviewer.queueSteps(await queue(), supervisor.state);

  writeFileSync(holdFile, String(Number.MAX_SAFE_INTEGER));
  clock.now = new Date('2026-11-26T22:01:00Z');
  assert.equal((await supervisor.tick()).status, 'running');
  await waitFor('the training to finish', async () => ['finished', 'failed'].includes((await supervisor.tick()).status), 30_000);
  assert.equal(supervisor.state.status, 'finished', supervisor.state.lastEvent?.message);
  const [first, second] = supervisor.state.runs;
  assert.equal(second!.initialStep, 50);
  assert.equal(readFileSync(path.join(second!.dir, 'celforge-step00000020.safetensors'), 'utf8'), 'weights at step 20', 'named by the trainer\'s global_step');
  await reviewer.queueSteps(await queue(), supervisor.state);
  assert.deepEqual((await queue()).entries.map((entry) => [entry.version, entry.step, entry.checkpoint]), [
    ['v1', 20, path.join(first!.dir, 'celforge-step00000020.safetensors')],
    ['v2', 60, path.join(second!.dir, 'celforge-step00000020.safetensors')],
  ]);
});

test('a step checkpoint that could not be kept and that the trainer removed before its review ends that version with its reason, once; the next is compared with the version before it; a step passed without a checkpoint is logged', async (t) => {
  const { fake, reviewer, lines, trainDir, queue } = await setup(t, { maxTrainSteps: 10, saveEveryNSteps: 2 }, [2, 4, 6]);
  // What the trainer leaves (the stand-in's names and order): checkpoints at steps 2 and 4 with their states, step 6's
  // checkpoint removed before celforge saw it (--save_last_n_steps while celforge was not running), the final one.
  const run = path.join(trainDir, 'runs', 'run-0001');
  mkdirSync(run, { recursive: true });
  const step = (n: number) => path.join(run, `celforge-step${String(n).padStart(8, '0')}.safetensors`);
  for (const n of [2, 4, 6, 8]) {
    if (n !== 6) writeFileSync(step(n), `weights at step ${n}`);
    mkdirSync(`${step(n).replace(/\.safetensors$/, '')}-state`);
  }
  const training: TrainingState = {
    ...emptyTrainingState(10), status: 'running',
    runs: [{ index: 1, dir: run, log: path.join(run, 'trainer.log'), pgid: 0, startedAt: '2026-11-25T22:00:00Z', baseSteps: 0, maxSteps: 10, barTotal: 10, resumedFrom: null }],
  };
  // A file where v1's folder would be: step 2's checkpoint cannot be kept when queued.
  mkdirSync(path.join(trainDir, 'reviews'), { recursive: true });
  writeFileSync(path.join(trainDir, 'reviews', 'v1'), 'in the way');
  await reviewer.queueSteps(await queue(), training);
  const [v1, v2] = (await queue()).entries;
  assert.equal(v1!.kept, undefined);
  assert.ok(lines.some((line) => line.msg.startsWith(`checkpoint review: ${step(2)} could not be kept for the review`)));
  assert.equal(v2!.kept, path.join(trainDir, 'reviews', 'v2', 'celforge-step00000004.safetensors'));
  // Then the trainer removes it (--save_last_n_steps) before the review.
  rmSync(step(2));
  writeFileSync(path.join(run, 'celforge.safetensors'), 'weights at step 10');
  const finished: TrainingState = { ...training, status: 'finished', checkpoint: path.join(run, 'celforge.safetensors'), runs: [{ ...training.runs[0]!, endedAt: '2026-11-25T22:20:00Z' }] };
  await reviewer.tick(finished);
  const entries = (await queue()).entries;
  assert.deepEqual(entries.map((entry) => [entry.version, entry.step ?? null, entry.status]), [['v1', 2, 'gone'], ['v2', 4, 'reviewed'], ['v3', null, 'reviewed']]);
  assert.match(entries[0]!.waiting!, /^its checkpoint is gone \(.*celforge-step00000002\.safetensors: the checkpoint of v1 is gone.*\); it could not be kept when queued, and sd-scripts removes older step checkpoints \(--save_last_n_steps\)$/);
  assert.equal((await readReviewSummary(trainDir, 'v2'))!.previous, null, 'compared with the version before v1: none');
  assert.equal((await readReviewSummary(trainDir, 'v3'))!.previous, 'v2');
  assert.deepEqual(fake.renders.map(loraOf), ['celforge-v2', 'celforge-v3']);
  const gone = lines.filter((line) => /checkpoint review of v1: its checkpoint is gone/.test(line.msg));
  assert.equal(gone.length, 1);
  const missed = lines.filter((line) => /went past step 6 .*without a checkpoint/.test(line.msg));
  assert.equal(missed.length, 1, 'step 6: logged, not queued');

  await reviewer.tick(finished);
  assert.equal((await queue()).entries.length, 3, 'nothing queued again');
  assert.equal(fake.renders.length, 2, 'v1 not tried again');
  assert.equal(lines.filter((line) => /checkpoint review of v1/.test(line.msg)).length, 1);
  assert.equal(lines.filter((line) => /went past step 6/.test(line.msg)).length, 1, 'logged once');
});

test('review.atSteps must name steps at which sd-scripts writes a checkpoint before the final one', () => {
  const config = (atSteps: unknown, train: Record<string, unknown> | null = { maxTrainSteps: 2000 }) => validateConfig({
    ...(train && { train: { sdScripts: '/sd-scripts', ...train } }), review: { atSteps },
  }, 'test config', '/');
  assert.deepEqual(config([500, 1500]).review.atSteps, [500, 1500]);
  assert.deepEqual(config(undefined).review.atSteps, [], 'default: the final checkpoint only');
  const refused = (atSteps: unknown, pattern: RegExp, train?: Record<string, unknown> | null) => assert.throws(() => config(atSteps, train), (error: unknown) => {
    assert.ok(error instanceof CelforgeError && error.code === 'CONFIG_INVALID');
    assert.match(error.message, pattern);
    return true;
  });
  refused([500, 750], /review\.atSteps\.1 = 750 is not allowed: not a multiple of train\.saveEveryNSteps \(500\)/);
  refused([350], /review\.atSteps\.0 = 350 .*saveEveryNSteps \(100\)/, { maxTrainSteps: 2000, saveEveryNSteps: 100 });
  refused([2000], /review\.atSteps\.0 = 2000 is not allowed: not below train\.maxTrainSteps \(2000\): the final checkpoint is reviewed anyway/);
  refused([0], /review\.atSteps\.0 = 0 is not allowed/);
  refused([2.5], /review\.atSteps\.0 = 2\.5 is not allowed/);
  refused([500], /review\.atSteps\.0 = 500 is not allowed: names a training step, but there is no train section/, null);
});
