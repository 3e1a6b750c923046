/**
 * Done when (issue 17): the daemon's runtime with the stand-in trainer
 * (test/fixtures/fake-kohya), the stand-in A1111 on real HTTP, real ONNX
 * taggers, a webhook on real HTTP and an injected clock moved through two
 * nights. Two training requests make two LoRAs; each is reviewed in its
 * night right after its training ends, and the morning after the second
 * shows reviews/v2/sheet.png with v1's and v2's pictures side by side,
 * review.json with both versions' scores, and a 'checkpoint-reviewed'
 * notification, without any command typed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import type { IdleProbe } from '../../src/adapters/idle-probe.ts';
import { groupAlive } from '../../src/adapters/trainer-process.ts';
import { stateDir } from '../../src/daemon/library-paths.ts';
import { Runtime } from '../../src/daemon/runtime.ts';
import { cellOrigin } from '../../src/stages/checkpoint-review/comparison-sheet.ts';
import { readReviewSummary } from '../../src/stages/checkpoint-review/review-summary.ts';
import { trainingRequestPath } from '../../src/training/training-state.ts';
import { seedSpot } from '../fixtures/generator-picture.ts';
import { RecordServer } from '../fixtures/record-server.ts';
import { addTrainingFrames, reviewProject } from '../fixtures/training-project.ts';
import { waitFor } from '../helpers.ts';

const CELL = 256;

/** The band the stand-in draws across the top of a LoRA's pictures (generator-picture.ts: a colour from `lora:<name>:<weight>`). */
function loraBand(name: string): number[] {
  return [...createHash('sha256').update(`lora:${name}:1`).digest().subarray(0, 3)];
}

test('two nights, two trainings: the morning shows reviews/v2/sheet.png, review.json with scores and a checkpoint-reviewed notification, no command typed', async (t) => {
  const hook = await RecordServer.start();
  t.after(() => hook.stop());
  const { library, config, fake, modelFolder } = await reviewProject(t, {
    train: { args: { fake_step_ms: 5 }, maxTrainSteps: 20, saveEveryNSteps: 10, checkSeconds: 0.1 },
    seeds: [11, 22], loras: 2, config: { notify: { desktop: false, webhook: { url: hook.url }, groupSeconds: 0 } },
  });
  const clock = { now: new Date('2026-11-25T20:00:00Z') };
  const idle: IdleProbe = { check: async () => ({ idle: true, busy: [], unknown: [] }) };
  const runtime = await Runtime.open({ config, log: pino({ level: 'silent' }), command: 'start', clock: () => clock.now, idle });
  t.after(async () => {
    const running = runtime.training?.state.runs.find((run) => !run.endedAt);
    if (running && groupAlive(running.pgid)) process.kill(-running.pgid, 'SIGKILL');
  });
  await addTrainingFrames(library, runtime.catalog);
  const loop = runtime.runTraining();
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    runtime.stop();
    await loop;
    await runtime.release();
  };
  t.after(release);
  // What `celforge train` does with a daemon running: a request file, and a wake-up (SIGHUP).
  const requestTraining = () => {
    writeFileSync(trainingRequestPath(stateDir(library)), JSON.stringify({ queuedAt: clock.now.toISOString(), now: false }));
    runtime.wakeTraining();
  };
  const reviews = path.join(library, 'training', 'reviews');

  requestTraining();
  await waitFor('the first request to wait for the window', () => runtime.training!.state.status === 'waiting-for-window', 20_000);
  clock.now = new Date('2026-11-25T22:05:00Z');
  await waitFor('v1 reviewed in the first night', () => existsSync(path.join(reviews, 'v1', 'review.json')), 30_000);
  assert.equal(runtime.training!.state.checkpoint, path.join(library, 'training', 'runs', 'run-0001', 'celforge.safetensors'));

  clock.now = new Date('2026-11-26T12:00:00Z');
  requestTraining();
  await waitFor('the second request to wait for the window', () => runtime.training!.state.status === 'waiting-for-window', 20_000);
  assert.equal(existsSync(path.join(reviews, 'v2')), false, 'nothing reviewed during the day');
  clock.now = new Date('2026-11-26T22:05:00Z');
  await waitFor('v2 reviewed in the second night', () => existsSync(path.join(reviews, 'v2', 'review.json')), 30_000);
  clock.now = new Date('2026-11-27T07:00:00Z');
  const notified = await waitFor('the v2 notification', () => hook.requests.map((request) => JSON.parse(request.body)).find((body) => body.title === 'Checkpoint v2 reviewed'), 20_000);
  await release();

  // The morning: the notification, review.json, the sheet.
  assert.deepEqual(notified.events, [{ kind: 'checkpoint-reviewed', version: 'v2', regressions: notified.events[0].regressions, templates: 1 }]);
  assert.match(notified.message, /^(no regressions|\d+ regressions?)$/);
  assert.ok(hook.requests.some((request) => JSON.parse(request.body).title === 'Checkpoint v1 reviewed'));
  const summary = (await readReviewSummary(path.join(library, 'training'), 'v2'))!;
  assert.equal(summary.previous, 'v1');
  assert.deepEqual([summary.checkpoint.kind, summary.checkpoint.name, summary.checkpoint.file], ['lora', 'celforge-v2.safetensors', path.join(library, 'training', 'runs', 'run-0002', 'celforge.safetensors')]);
  assert.equal(notified.events[0].regressions, summary.regressions.length);
  const [sky] = summary.templates;
  assert.deepEqual(sky!.seeds, [11, 22]);
  assert.equal(typeof sky!.current.found, 'number');
  assert.equal(typeof sky!.previous?.found, 'number', 'v1\'s scores beside v2\'s');
  assert.ok(existsSync(path.join(modelFolder, 'celforge-v1.safetensors')) && existsSync(path.join(modelFolder, 'celforge-v2.safetensors')));
  const prompts = fake.renders.map((body) => body.prompt);
  assert.deepEqual(prompts, ['1girl, blue sky <lora:celforge-v1:1>', '1girl, blue sky <lora:celforge-v1:1>', '1girl, blue sky <lora:celforge-v2:1>', '1girl, blue sky <lora:celforge-v2:1>'], 'each LoRA rendered once; v1 reused the second night');

  const sheet = path.join(reviews, 'v2', summary.sheet);
  const { data, info } = await sharp(sheet).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number) => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
  const scale = (CELL - 2) / 64;
  for (const [row, seed] of [11, 22].entries()) {
    const [sx] = seedSpot(seed, 64, 64);
    for (const [column, lora] of ['celforge-v1', 'celforge-v2'].entries()) {
      const { left, top } = cellOrigin(row, column, CELL);
      // Two render pixels down into the 4-pixel band, away from the seed's square.
      const band = at(Math.round(left + 1 + (sx > 32 ? 8 : 56) * scale), Math.round(top + 1 + 2 * scale));
      assert.ok(band.every((value, index) => Math.abs(value - loraBand(lora)[index]!) <= 3), `row ${row} column ${column}: ${lora}'s band (${band} vs ${loraBand(lora)})`);
    }
  }
});
