/**
 * Overnight training with a stand-in for Kohya (test/fixtures/fake-kohya:
 * tqdm on stderr with \r, state folders written file by file, a launcher
 * that does not pass signals on), an injected clock and an injected idle
 * probe: a run starts only inside a window and when idle, stops at the
 * window's end at the next state save, resumes the next night from the
 * newest complete state (never a half-written one), and the steps add up.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import type { IdleProbe } from '../../src/adapters/idle-probe.ts';
import { groupAlive } from '../../src/adapters/trainer-process.ts';
import { validateConfig } from '../../src/config/load.ts';
import { exportQuery } from '../../src/stages/export/export-query.ts';
import { isComplete } from '../../src/training/state-folders.ts';
import { TrainingSupervisor, userArgs } from '../../src/training/training-supervisor.ts';
import type { TrainingEvent } from '../../src/training/training-state.ts';
import { tempDir, waitFor } from '../helpers.ts';

const FAKE_KOHYA = path.join(import.meta.dirname, '..', 'fixtures', 'fake-kohya');
// Enough steps (15 ms each) that a busy machine cannot finish the first night before the window closes.
const STEPS = 200;

async function setup(t: Parameters<typeof tempDir>[0], train: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  const library = path.join(dir, 'library');
  mkdirSync(path.join(library, 'frames'), { recursive: true });
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
  for (const [index, colour] of ['#ff0000', '#0000ff'].entries()) {
    const file = path.join('frames', `${index}.png`);
    await sharp({ create: { width: 64, height: 48, channels: 3, background: colour } }).png().toFile(path.join(library, file));
    catalog.addImage({ hash: String(index).repeat(64), path: file, size: 1, width: 64, height: 48, series: 's', episode: '1', scene: 1, frame: index, source: null }, ['1girl'], 'pipeline');
  }
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

  // A later state the kill cut short: it must never be resumed from.
  const partial = path.join(first.dir, `celforge-step${String(savedFirstNight + 10).padStart(8, '0')}-state`);
  mkdirSync(partial);
  writeFileSync(path.join(partial, 'train_state.json'), '{}');
  writeFileSync(path.join(partial, 'model.safetensors'), 'half');
  assert.equal(isComplete(partial), false);

  clock.now = new Date('2026-11-26T12:00:00Z');
  assert.equal((await supervisor.tick()).status, 'waiting-for-window', 'nothing runs between windows');
  clock.now = new Date('2026-11-26T22:01:00Z');
  state = await supervisor.tick();
  assert.equal(state.status, 'running');
  const second = state.runs[1]!;
  const resumed = commandOf(second.log);
  const newest = path.join(first.dir, `celforge-step${String(savedFirstNight).padStart(8, '0')}-state`);
  assert.equal(resumed[resumed.indexOf('--resume') + 1], newest, 'resumed from the newest complete state');
  assert.equal(resumed[resumed.indexOf('--max_train_steps') + 1], String(STEPS - savedFirstNight), 'only the steps left');
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

test('train.args as an object become flags; the ones celforge sets are dropped', () => {
  assert.deepEqual(userArgs({ learning_rate: 0.0001, xformers: true, cache_latents: false, output_dir: '/x' }), ['--learning_rate', '0.0001', '--xformers']);
  assert.deepEqual(userArgs(['--network_dim', '32', '--max_train_steps=5', '--save_state', '--seed', '1']), ['--network_dim', '32', '--seed', '1']);
});
