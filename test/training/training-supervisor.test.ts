/**
 * Overnight training with a stand-in for Kohya (test/fixtures/fake-kohya:
 * tqdm on stderr with \r, state folders written file by file, a launcher
 * that does not pass signals on), an injected clock and an injected idle
 * probe: a run starts only inside a window and when idle, stops at the
 * window's end at the next state save, resumes the next night from the
 * newest complete state (never a half-written one), and the steps add up.
 * A run recorded by another host is never looked at or signalled here.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import type { IdleProbe } from '../../src/adapters/idle-probe.ts';
import { groupAlive } from '../../src/adapters/trainer-process.ts';
import { validateConfig } from '../../src/config/load.ts';
import { exportQuery } from '../../src/stages/export/export-query.ts';
import { isComplete } from '../../src/training/state-folders.ts';
import { userArgs } from '../../src/training/trainer-args.ts';
import { TrainingSupervisor } from '../../src/training/training-supervisor.ts';
import { emptyTrainingState, type TrainingEvent, type TrainingRun } from '../../src/training/training-state.ts';
import { addTrainingFrames, FAKE_KOHYA } from '../fixtures/training-project.ts';
import { tempDir, waitFor } from '../helpers.ts';

// Enough steps (15 ms each) that a busy machine cannot finish the first night before the window closes.
const STEPS = 200;

async function setup(t: Parameters<typeof tempDir>[0], train: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  const library = path.join(dir, 'library');
  const config = validateConfig({
    library,
    train: {
      sdScripts: FAKE_KOHYA, launcher: [process.execPath, path.join(FAKE_KOHYA, 'accelerate.mjs'), 'launch'], script: 'train_network.mjs',
      args: { fake_step_ms: 15, max_train_steps: 999 }, maxTrainSteps: STEPS, saveEveryNSteps: 10, timezone: 'UTC',
      windows: [{ start: '0 22 * * *', hours: 2 }], ...train,
    },
  }, 'test', dir);
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  await addTrainingFrames(library, catalog);
  const clock = { now: new Date('2026-11-25T20:00:00Z') };
  const probe = { busy: [] as string[], calls: [] as (object | null)[] };
  const idle: IdleProbe = {
    check: async (_limits, training) => {
      probe.calls.push(training);
      return { idle: probe.busy.length === 0, busy: [...probe.busy], unknown: [] };
    },
  };
  const events: TrainingEvent[] = [];
  const supervisor = await TrainingSupervisor.open({
    train: () => config.train!, stateDir: path.join(library, '.celforge'), clock: () => clock.now, idle, log: pino({ level: 'silent' }),
    prepareDataset: async (out) => {
      const result = await exportQuery(catalog, config, config.train!.query, out);
      return { datasetConfig: result.datasetConfig, images: result.images };
    },
    onEvent: (event) => events.push(event), signalGraceMs: 2000,
  });
  t.after(async () => {
    const running = supervisor.state.runs.find((run) => !run.endedAt);
    if (running && groupAlive(running.pgid)) process.kill(-running.pgid, 'SIGKILL');
  });
  return { config, supervisor, clock, probe, events, library };
}

function commandOf(log: string): string[] {
  return JSON.parse(readFileSync(log, 'utf8').split('\n')[0]!.replace('# celforge: ', '')) as string[];
}

function processesInGroup(pgid: number): number[] {
  const lines = execFileSync('ps', ['-e', '-o', 'pid=,pgid='], { encoding: 'utf8' }).split('\n');
  return lines.map((line) => line.trim().split(/\s+/).map(Number)).filter(([, group]) => group === pgid).map(([pid]) => pid!);
}

test('a run starts only inside a window and when idle, stops at the window end at a state save, resumes the next night, and the steps add up', async (t) => {
  const { supervisor, clock, probe, events } = await setup(t);
  await supervisor.request(false);
  let state = await supervisor.tick();
  assert.equal(state.status, 'waiting-for-window');
  assert.equal(state.nextWindow, '2026-11-25T22:00:00.000Z');
  assert.equal(state.runs.length, 0);

  clock.now = new Date('2026-11-25T22:05:00Z');
  probe.busy = ['the GPU is 90% busy'];
  state = await supervisor.tick();
  assert.equal(state.status, 'waiting-for-idle');
  assert.equal(state.reason, 'the GPU is 90% busy');
  assert.equal(state.runs.length, 0, 'a busy GPU means wait, not fail');

  probe.busy = [];
  state = await supervisor.tick();
  assert.equal(state.status, 'running');
  const first = state.runs[0]!;
  const command = commandOf(first.log);
  for (const [flag, value] of [['--save_every_n_steps', '10'], ['--max_train_steps', String(STEPS)], ['--output_name', 'celforge']]) {
    assert.equal(command[command.indexOf(flag!) + 1], value, flag);
  }
  assert.ok(command.includes('--save_state'));
  assert.ok(!command.includes('--resume'));
  assert.ok(!command.includes('999'), 'celforge owns --max_train_steps: the one in train.args is dropped');
  assert.deepEqual(probe.calls.at(-1), null, 'before a start the probe checks everything');

  await waitFor('progress past step 25', async () => ((await supervisor.tick()).progress?.step ?? 0) >= 25, 30_000);
  assert.ok(supervisor.state.progress!.loss! > 0);
  assert.ok(supervisor.state.progress!.rate! > 0);
  clock.now = new Date('2026-11-26T00:10:00Z');
  state = await supervisor.tick();
  assert.equal(state.status, 'stopping');
  const savedAtRequest = state.stopRequested!.savedStepAtRequest;
  await waitFor('the run to stop', async () => (await supervisor.tick()).runs[0]!.endedAt, 30_000);
  state = supervisor.state;
  assert.equal(state.status, 'waiting-for-window');
  assert.equal(state.runs[0]!.stopReason, 'the training window ended');
  assert.equal(groupAlive(first.pgid), false);
  assert.deepEqual(processesInGroup(first.pgid), [], 'the launcher and the trainer it started are both gone');
  assert.ok(state.savedSteps > savedAtRequest, `stopped at the next state save (${savedAtRequest} -> ${state.savedSteps})`);
  assert.equal(state.savedSteps % 10, 0);
  assert.ok(state.savedSteps < STEPS);
  assert.equal(events.at(-1)!.kind, 'stopped');
  const savedFirstNight = state.savedSteps;

  // A later state the kill cut short (the trainer may have begun it before the kill landed): it must never be resumed from.
  const partial = path.join(first.dir, `celforge-step${String(savedFirstNight + 10).padStart(8, '0')}-state`);
  mkdirSync(partial, { recursive: true });
  writeFileSync(path.join(partial, 'train_state.json'), '{}');
  writeFileSync(path.join(partial, 'model.safetensors'), 'half');
  assert.equal(isComplete(partial, { scheduler: true }), false);

  clock.now = new Date('2026-11-26T12:00:00Z');
  assert.equal((await supervisor.tick()).status, 'waiting-for-window', 'nothing runs between windows');
  clock.now = new Date('2026-11-26T22:01:00Z');
  state = await supervisor.tick();
  assert.equal(state.status, 'running');
  const second = state.runs[1]!;
  const resumed = commandOf(second.log);
  const newest = path.join(first.dir, `celforge-step${String(savedFirstNight).padStart(8, '0')}-state`);
  assert.equal(resumed[resumed.indexOf('--resume') + 1], newest, 'resumed from the newest complete state');
  assert.equal(resumed[resumed.indexOf('--max_train_steps') + 1], String(STEPS), 'the whole training: the state holds train_state.json');
  assert.equal(resumed[resumed.indexOf('--initial_step') + 1], String(savedFirstNight));
  assert.equal(second.baseSteps, savedFirstNight);

  await waitFor('the training to finish', async () => (await supervisor.tick()).status === 'finished', 30_000);
  state = supervisor.state;
  assert.equal(state.seenSteps, STEPS, 'steps counted across nights');
  assert.equal(state.savedSteps, STEPS);
  assert.equal(state.checkpoint, path.join(second.dir, 'celforge.safetensors'));
  assert.ok(existsSync(state.checkpoint!));
  assert.equal(state.request, null);
  assert.match(events.at(-1)!.message, new RegExp(`training finished: ${STEPS} steps; checkpoint .*run-0002/celforge\\.safetensors`));
  const loss = readFileSync(path.join(path.dirname(path.dirname(second.dir)), 'loss.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  assert.ok(loss.some((point) => point.run === 1) && loss.some((point) => point.run === 2));
  assert.equal(loss.at(-1).step, STEPS);
  assert.ok(loss.every((point, i) => i === 0 || point.step > loss[i - 1].step), 'the loss plot runs on in cumulative steps');
});

test('someone wanting the GPU stops the run; past the wait it is stopped at once and the last complete state is kept; a crash is a failure with the log tail', async (t) => {
  const { supervisor, clock, probe, events } = await setup(t, { stopWaitMinutes: 0, args: { fake_step_ms: 40 } });
  clock.now = new Date('2026-11-25T22:30:00Z');
  await supervisor.request(false);
  await supervisor.tick();
  await waitFor('a first state save', async () => (await supervisor.tick()).savedSteps >= 10, 30_000);
  probe.busy = ['other processes (4242) hold 9000 MiB of GPU memory'];
  await waitFor('the run to stop', async () => (await supervisor.tick()).runs[0]!.endedAt, 30_000);
  const state = supervisor.state;
  assert.equal(state.runs[0]!.stopReason, 'other processes (4242) hold 9000 MiB of GPU memory');
  assert.ok(state.savedSteps >= 10);
  assert.deepEqual(processesInGroup(state.runs[0]!.pgid), []);
  assert.ok(probe.calls.some((call) => call !== null), 'while running the probe is told our own pids');

  // A trainer that dies on its own (here: killed from outside) is a failure that names why and shows the log's last lines.
  probe.busy = [];
  await supervisor.tick();
  const running = supervisor.state.runs[1]!;
  process.kill(-running.pgid, 'SIGKILL');
  await waitFor('the failure', async () => (await supervisor.tick()).status === 'failed', 30_000);
  assert.match(supervisor.state.reason!, /signal SIGKILL|code/);
  assert.equal(events.at(-1)!.kind, 'failed');
  assert.match(events.at(-1)!.message, /Last lines of .*trainer\.log:\n/);
});

test("a run recorded as started on another host is neither stopped at shutdown nor followed: its process group number is a local process's here", async (t) => {
  const { config, library } = await setup(t);
  // A local process group with the number the other host recorded for its trainer.
  const local = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' });
  t.after(() => void (groupAlive(local.pid!) && process.kill(-local.pid!, 'SIGKILL')));
  const stateDir = path.join(library, '.celforge');
  const dir = path.join(library, 'training', 'runs', 'run-0001');
  const run: TrainingRun = { index: 1, dir, log: path.join(dir, 'trainer.log'), pgid: local.pid!, host: 'gpu-box', startedAt: '2026-11-25T22:00:00Z', baseSteps: 0, maxSteps: STEPS, resumedFrom: null };
  writeFileSync(path.join(stateDir, 'training.json'), JSON.stringify({ ...emptyTrainingState(STEPS), status: 'running', request: { queuedAt: '2026-11-25T21:00:00Z', now: false }, runs: [run] }));
  // Past the window's end: a run of this host would be asked to stop.
  const open = () => TrainingSupervisor.open({
    train: () => config.train!, stateDir, clock: () => new Date('2026-11-26T03:00:00Z'), log: pino({ level: 'silent' }),
    idle: { check: async () => ({ idle: true, busy: [], unknown: [] }) }, prepareDataset: async () => assert.fail('nothing starts'), signalGraceMs: 200,
  });
  await (await open()).shutdown();
  assert.equal(groupAlive(local.pid!), true, 'not stopped when celforge stops');
  const state = await (await open()).tick();
  assert.equal(groupAlive(local.pid!), true, 'not signalled while followed');
  assert.equal(state.status, 'failed');
  assert.ok(state.runs[0]!.endedAt);
  assert.equal(state.request, null, 'nothing starts until asked again');
  assert.match(state.reason!, new RegExp(`^training run 1 was started on gpu-box \\(process group ${local.pid} there\\), which this host \\(\\S+\\) cannot see or stop; it is recorded as ended, without its final checkpoint\\. If it still runs on gpu-box, stop it there \\(kill -TERM -${local.pid}\\) before training again \\(celforge train\\)$`));
});

test('train.args as an object become flags; the ones celforge sets are dropped', () => {
  assert.deepEqual(userArgs({ learning_rate: 0.0001, xformers: true, cache_latents: false, output_dir: '/x' }), ['--learning_rate', '0.0001', '--xformers']);
  assert.deepEqual(userArgs(['--network_dim', '32', '--max_train_steps=5', '--save_state', '--seed', '1']), ['--network_dim', '32', '--seed', '1']);
});

/** Ends the window and lets the trainer go on to bar count `holdNext`: it stops at the first state save after the request. */
async function endWindowAndStop(supervisor: TrainingSupervisor, clock: { now: Date }, holdFile: string, holdNext: number, at: string) {
  clock.now = new Date(at);
  const state = await supervisor.tick();
  assert.equal(state.status, 'stopping');
  writeFileSync(holdFile, String(holdNext));
  const index = state.runs.length - 1;
  await waitFor('the run to stop', async () => (await supervisor.tick()).runs[index]!.endedAt, 60_000);
  assert.equal(supervisor.state.status, 'waiting-for-window');
  return supervisor.state;
}

async function startNight(supervisor: TrainingSupervisor, clock: { now: Date }, holdFile: string, hold: number, at: string) {
  writeFileSync(holdFile, String(hold));
  clock.now = new Date(at);
  const state = await supervisor.tick();
  assert.equal(state.status, 'running', state.reason ?? '');
  return state.runs.at(-1)!;
}

for (const generation of ['legacy', 'train-state'] as const) {
  test(`${generation} sd-scripts: a resume past the halfway point goes on to the end with the steps adding up`, async (t) => {
    const holdFile = path.join(tempDir(t), 'hold');
    const { supervisor, clock } = await setup(t, { args: { fake_step_ms: 5, fake_generation: generation, fake_hold_file: holdFile } });
    await supervisor.request(false);
    await startNight(supervisor, clock, holdFile, 165, '2026-11-25T22:05:00Z');
    await waitFor('bar count 165', async () => ((await supervisor.tick()).progress?.step ?? 0) >= 165, 60_000);
    let state = await endWindowAndStop(supervisor, clock, holdFile, 175, '2026-11-26T00:10:00Z');
    assert.equal(state.savedSteps, 170, 'stopped at the first state save after the request');

    const second = await startNight(supervisor, clock, holdFile, Number.MAX_SAFE_INTEGER, '2026-11-26T22:01:00Z');
    await waitFor('the training to finish', async () => ['finished', 'failed'].includes((await supervisor.tick()).status), 60_000);
    state = supervisor.state;
    assert.equal(state.status, 'finished', state.lastEvent?.message);
    const command = commandOf(second.log);
    const flag = (name: string) => (command.includes(name) ? command[command.indexOf(name) + 1] : undefined);
    if (generation === 'legacy') {
      assert.equal(flag('--max_train_steps'), '30', 'older sd-scripts count from 0 again: the steps left');
      assert.ok(!command.includes('--initial_step') && !command.includes('--skip_until_initial_step'), 'older sd-scripts refuse these flags');
    } else {
      assert.equal(flag('--max_train_steps'), String(STEPS), 'the whole training, which must exceed the initial step');
      assert.equal(flag('--initial_step'), '170');
      assert.ok(command.includes('--skip_until_initial_step'));
    }
    assert.equal(state.seenSteps, STEPS);
    assert.equal(state.progress!.step, STEPS, 'progress in steps of the whole training');
    assert.equal(state.progress!.total, STEPS);
    const loss = readFileSync(path.join(path.dirname(path.dirname(second.dir)), 'loss.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    assert.ok(loss.every((point, i) => i === 0 || point.step > loss[i - 1].step), 'the loss plot runs on in cumulative steps');
    assert.equal(loss.at(-1).step, STEPS);
  });
}

test('train_state.json sd-scripts past the first epoch: state folders named by the step within the epoch still count right over three nights', async (t) => {
  // 40 batches per epoch: a resume at step 170 starts in epoch 5 with global_step 10 (train_network.py @48d368f lines 1258-1344),
  // so the second night's state "step00000030" is step 190 of the training, and its train_state.json says 30.
  const holdFile = path.join(tempDir(t), 'hold');
  const { supervisor, clock } = await setup(t, { args: { fake_step_ms: 5, fake_batches_per_epoch: 40, fake_hold_file: holdFile } });
  await supervisor.request(false);
  await startNight(supervisor, clock, holdFile, 165, '2026-11-25T22:05:00Z');
  await waitFor('bar count 165', async () => ((await supervisor.tick()).progress?.step ?? 0) >= 165, 60_000);
  let state = await endWindowAndStop(supervisor, clock, holdFile, 175, '2026-11-26T00:10:00Z');
  assert.equal(state.savedSteps, 170);

  const second = await startNight(supervisor, clock, holdFile, 15, '2026-11-26T22:01:00Z');
  await waitFor('bar count 15', async () => ((await supervisor.tick()).progress?.step ?? 0) >= 185, 60_000);
  state = await endWindowAndStop(supervisor, clock, holdFile, 25, '2026-11-27T00:10:00Z');
  const folder = path.join(second.dir, 'celforge-step00000030-state');
  assert.equal(JSON.parse(readFileSync(path.join(folder, 'train_state.json'), 'utf8')).current_step, 30, 'what sd-scripts itself wrote');
  assert.equal(state.savedSteps, 190);

  const third = await startNight(supervisor, clock, holdFile, Number.MAX_SAFE_INTEGER, '2026-11-27T22:01:00Z');
  const command = commandOf(third.log);
  assert.equal(command[command.indexOf('--resume') + 1], folder);
  assert.equal(command[command.indexOf('--initial_step') + 1], '190', 'celforge\'s count, not the 30 in train_state.json');
  await waitFor('the training to finish', async () => ['finished', 'failed'].includes((await supervisor.tick()).status), 60_000);
  assert.equal(supervisor.state.status, 'finished', supervisor.state.lastEvent?.message);
  assert.equal(supervisor.state.seenSteps, STEPS, 'Kohya trained exactly the steps left: it skipped to the right batch');
});

test('a schedule-free optimizer (no scheduler.bin in its states) stops at the next state save and resumes from it', async (t) => {
  const holdFile = path.join(tempDir(t), 'hold');
  const { supervisor, clock } = await setup(t, { args: { fake_step_ms: 5, fake_hold_file: holdFile, optimizer_type: 'AdamWScheduleFree' } });
  await supervisor.request(false);
  const first = await startNight(supervisor, clock, holdFile, 15, '2026-11-25T22:05:00Z');
  await waitFor('bar count 15', async () => ((await supervisor.tick()).progress?.step ?? 0) >= 15, 60_000);
  const state = await endWindowAndStop(supervisor, clock, holdFile, 25, '2026-11-26T00:10:00Z');
  const saved = path.join(first.dir, 'celforge-step00000020-state');
  assert.deepEqual(readdirSync(saved).sort(), ['model.safetensors', 'optimizer.bin', 'random_states_0.pkl', 'train_state.json'], 'what accelerate writes with a DummyScheduler');
  assert.equal(state.savedSteps, 20);
  const second = await startNight(supervisor, clock, holdFile, 0, '2026-11-26T22:01:00Z');
  assert.equal(second.resumedFrom, saved);
  assert.equal(isComplete(saved, { scheduler: true }), false, 'with a scheduler, the same folder would be incomplete');
});

test('the loss is read with --scale_weight_norms, and --validation_split bars are not training progress', async (t) => {
  const { supervisor, clock } = await setup(t, {
    maxTrainSteps: 30, args: { fake_step_ms: 5, scale_weight_norms: 1, validation_split: 0.1, validate_every_n_steps: 5 },
  });
  clock.now = new Date('2026-11-25T22:05:00Z');
  await supervisor.request(false);
  const totals: number[] = [];
  await waitFor('the training to finish', async () => {
    const state = await supervisor.tick();
    if (state.progress) totals.push(state.progress.total);
    return ['finished', 'failed'].includes(state.status);
  }, 60_000);
  const state = supervisor.state;
  assert.equal(state.status, 'finished', state.lastEvent?.message);
  assert.ok(totals.every((total) => total === 30), `only the steps bar is read (totals ${[...new Set(totals)].join(', ')})`);
  assert.equal(state.seenSteps, 30);
  assert.ok(state.progress!.loss! > 0, 'avr_loss read after "Average key norm" and "Keys Scaled"');
  const loss = readFileSync(path.join(state.runs[0]!.dir, '..', '..', 'loss.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  assert.equal(loss.at(-1).step, 30);
});

test('with gradient accumulation a train_state.json resume skips whole epochs only (--skip_until_initial_step skips too many there, sd-scripts#2407)', async (t) => {
  // 40 batches per epoch, 2 per optimizer step: 20 steps an epoch. With --skip_until_initial_step, a resume at 170 would start
  // at epoch 340 // 20 = 17 of 10 and train nothing (train_network.py @48d368f lines 1266-1269); without it, epoch 170 // 20 = 8.
  const holdFile = path.join(tempDir(t), 'hold');
  const { supervisor, clock } = await setup(t, { args: { fake_step_ms: 5, fake_batches_per_epoch: 40, gradient_accumulation_steps: 2, fake_hold_file: holdFile } });
  await supervisor.request(false);
  await startNight(supervisor, clock, holdFile, 165, '2026-11-25T22:05:00Z');
  await waitFor('bar count 165', async () => ((await supervisor.tick()).progress?.step ?? 0) >= 165, 60_000);
  const state = await endWindowAndStop(supervisor, clock, holdFile, 175, '2026-11-26T00:10:00Z');
  assert.equal(state.savedSteps, 170);
  const second = await startNight(supervisor, clock, holdFile, Number.MAX_SAFE_INTEGER, '2026-11-26T22:01:00Z');
  await waitFor('the training to finish', async () => ['finished', 'failed'].includes((await supervisor.tick()).status), 60_000);
  const command = commandOf(second.log);
  assert.equal(command[command.indexOf('--initial_step') + 1], '170');
  assert.ok(!command.includes('--skip_until_initial_step'));
  assert.equal(supervisor.state.status, 'finished', supervisor.state.lastEvent?.message);
  // Kohya goes through epochs 9 and 10 again in full: the 10 steps of epoch 9 already done are trained again.
  assert.equal(supervisor.state.seenSteps, 210);
});
