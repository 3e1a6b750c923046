/**
 * The checkpoint review as the daemon runs it (CheckpointReviewer.tick after
 * a training tick), over the stand-in A1111 on real HTTP and real ONNX
 * taggers (test/fixtures/model-folder.ts): a finished training's checkpoint
 * is queued as v1, v2, linked into the generator's model folder under its
 * version, each render made on the right model, the previous version's
 * renders reused, a regression flagged, review.json and the sheet written,
 * the notification sent; a generator that is down, a window that ends, a
 * trainer that runs and a restart all leave the review queued, not lost.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { validateConfig } from '../../src/config/load.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { describeEvent, type CelforgeEvent } from '../../src/notify/events.ts';
import { cellOrigin } from '../../src/stages/checkpoint-review/comparison-sheet.ts';
import { ReviewQueue } from '../../src/stages/checkpoint-review/review-queue.ts';
import { CheckpointReviewer } from '../../src/stages/checkpoint-review/review-runner.ts';
import { readReviewSummary } from '../../src/stages/checkpoint-review/review-summary.ts';
import { emptyTrainingState, type TrainingState } from '../../src/training/training-state.ts';
import { FakeA1111 } from '../fixtures/fake-a1111.ts';
import { modelColour, seedSpot } from '../fixtures/generator-picture.ts';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { tempDir } from '../helpers.ts';

const CELL = 256;
// The stand-in paints a model's pictures in modelColour(its file name); the test tagger finds blue_sky when blue
// outweighs red: celforge-v1's colour has it (2(b-r)/255 = 0.61 > the 0.35 threshold), celforge-v2's not (-0.11).
const V1 = 'celforge-v1.safetensors';
const V2 = 'celforge-v2.safetensors';

async function setup(t: TestContext, options: { seeds?: number[]; timeoutSeconds?: number } = {}) {
  const dir = tempDir(t);
  const fake = await FakeA1111.start({ checkpoints: ['base.safetensors'] });
  t.after(() => fake.stop());
  fake.addCheckpoint(V1);
  fake.addCheckpoint(V2);
  const modelFolder = path.join(dir, 'webui', 'models', 'Stable-diffusion');
  const checkpoints = [1, 2].map((run) => {
    const file = path.join(dir, 'library', 'training', 'runs', `run-000${run}`, 'celforge.safetensors');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `model weights of run ${run}`);
    return file;
  });
  const config = validateConfig({
    library: path.join(dir, 'library'),
    models: writeModelFolder(dir, { taggers: [{ id: 'tagger-a', blueSky: 1 }] }),
    tags: { taggers: ['tagger-a'] },
    train: { sdScripts: dir, script: 'sdxl_train.py', maxTrainSteps: 10, windows: [{ start: '0 22 * * *', hours: 2 }], timezone: 'UTC' },
    review: {
      generator: { kind: 'a1111', url: fake.url, timeoutSeconds: options.timeoutSeconds ?? 20, modelFolder },
      templates: [{ name: 'sky', prompt: '1girl, (blue sky:1.2)', seeds: options.seeds ?? [11, 22], width: 64, height: 64 }],
    },
  }, 'test config', dir);
  const images = createImageWorkers(1);
  t.after(() => images.close());
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const clock = { now: new Date('2026-11-25T22:30:00Z') };
  const events: CelforgeEvent[] = [];
  const models = new ModelCache();
  const reviewer = (clockFn: () => Date = () => clock.now, signal?: AbortSignal) => new CheckpointReviewer({
    config: () => config, ports: { images, models, log }, log, clock: clockFn, events: { emit: (event) => events.push(event) }, signal,
  });
  return { dir, fake, config, modelFolder, checkpoints, lines, clock, events, reviewer, train: path.join(dir, 'library', 'training') };
}

function finished(checkpoint: string): TrainingState {
  return { ...emptyTrainingState(10), status: 'finished', checkpoint };
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

async function pixel(file: string, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (y * info.width + x) * 3;
  return [data[at]!, data[at + 1]!, data[at + 2]!];
}

test('two finished trainings become v1 and v2: linked for the generator, rendered on the right model, v1 reused, a regression flagged, review.json and the sheet, notified', async (t) => {
  const { fake, modelFolder, checkpoints, events, reviewer, train } = await setup(t);
  await reviewer().tick(finished(checkpoints[0]!));
  const first = await readReviewSummary(train, 'v1');
  assert.ok(first, 'v1 reviewed in the same tick');
  assert.equal(first.previous, null);
  const linked = path.join(modelFolder, V1);
  assert.equal(statSync(linked).ino, statSync(checkpoints[0]!).ino, 'hard-linked: same file system');
  assert.deepEqual(first.checkpoint, { kind: 'checkpoint', name: V1, sha256: sha256(checkpoints[0]!), file: checkpoints[0]! });
  assert.equal(first.templates[0]!.current.found, 1, '1girl and blue_sky found on v1');
  assert.ok(fake.requests.findIndex((request) => request.path === '/sdapi/v1/refresh-checkpoints') < fake.requests.findIndex((request) => request.path === '/sdapi/v1/txt2img'));
  assert.equal(fake.requests.at(-1)!.path, '/sdapi/v1/unload-checkpoint', 'the GPU is released once v1 is reviewed');
  assert.equal(fake.gpuModel, null);

  // The same training state again is the same checkpoint: no second version.
  await reviewer().tick(finished(checkpoints[0]!));
  await reviewer().tick(finished(checkpoints[1]!));
  const second = await readReviewSummary(train, 'v2');
  assert.ok(second);
  const unloads = () => fake.requests.filter((request) => request.path === '/sdapi/v1/unload-checkpoint').length;
  assert.equal(unloads(), 2, 'one unload after each review');
  assert.equal(fake.requests.at(-1)!.path, '/sdapi/v1/unload-checkpoint');
  assert.equal(fake.gpuModel, null);
  assert.equal(second.previous, 'v1');
  const models = fake.renders.map((body) => (body.override_settings as { sd_model_checkpoint: string }).sd_model_checkpoint);
  assert.deepEqual(models, [V1, V1, V2, V2], 'v1 rendered once and reused for v2\'s comparison');
  assert.deepEqual(fake.renders.map((body) => body.seed), [11, 22, 11, 22]);
  assert.deepEqual(second.templates.map((template) => [template.template, template.seeds, template.previous?.found, template.current.found]), [['sky', [11, 22], 1, 0.5]]);
  assert.deepEqual(second.regressions, [{ template: 'sky', reasons: [{ kind: 'found', previous: 1, current: 0.5 }] }]);
  assert.deepEqual((await ReviewQueue.open(train)).entries.map((entry) => [entry.version, entry.status, entry.checkpoint]), [['v1', 'reviewed', checkpoints[0]], ['v2', 'reviewed', checkpoints[1]]]);

  // The sheet: v1 in the left column, v2 in the right, each seed's row with its square.
  const sheet = path.join(train, 'reviews', 'v2', second.sheet);
  for (const [row, seed] of [11, 22].entries()) {
    const [sx, sy] = seedSpot(seed, 64, 64);
    for (const [column, model] of [V1, V2].entries()) {
      const { left, top } = cellOrigin(row, column, CELL);
      // Cells are 254 px for 64 px renders: a render pixel is ~4 cell pixels.
      const scale = (CELL - 2) / 64;
      const inSquare = await pixel(sheet, Math.round(left + 1 + (sx + 4) * scale), Math.round(top + 1 + (sy + 4) * scale));
      assert.ok(inSquare.every((value) => value < 20), `row ${row} column ${column}: the seed's square (${inSquare})`);
      const away = await pixel(sheet, Math.round(left + 1 + (sx > 32 ? 8 : 56) * scale), Math.round(top + 1 + (sy > 32 ? 8 : 56) * scale));
      assert.ok(away.every((value, index) => Math.abs(value - modelColour(model)[index]!) <= 3), `row ${row} column ${column}: ${model}'s colour (${away})`);
    }
  }

  assert.deepEqual(events, [
    { kind: 'checkpoint-reviewed', version: 'v1', regressions: 0, templates: 1 },
    { kind: 'checkpoint-reviewed', version: 'v2', regressions: 1, templates: 1 },
  ]);
  assert.deepEqual(describeEvent(events[1]!), { title: 'Checkpoint v2 reviewed', message: '1 regression' });

  // Reviewing v2 again by hand reuses every stored render, even with v1's model file gone (its renders record it).
  rmSync(checkpoints[0]!);
  rmSync(linked);
  const again = await reviewer().run(await ReviewQueue.open(train), { version: 'v2', force: true });
  assert.equal(fake.renders.length, 4);
  assert.deepEqual(again.map((result) => 'outcome' in result && [result.outcome.status, result.outcome.rendered, result.outcome.reused]), [['reviewed', 0, 4]]);
});

test('a generator that is busy keeps the review queued (logged once, tried again after review.retryMinutes), across a restart, until it answers', async (t) => {
  const { fake, checkpoints, lines, clock, events, reviewer, train } = await setup(t);
  fake.mode = 'busy';
  await reviewer().tick(finished(checkpoints[0]!));
  let [entry] = (await ReviewQueue.open(train)).entries;
  assert.equal(entry!.status, 'queued');
  assert.match(entry!.waiting!, /generator is unavailable: .*503/);
  assert.equal(entry!.retryAt, '2026-11-25T22:40:00.000Z', 'review.retryMinutes (10) later');
  const asked = fake.requests.length;
  await reviewer().tick(finished(checkpoints[0]!));
  assert.equal(fake.requests.length, asked, 'not asked again before retryAt');

  clock.now = new Date('2026-11-25T22:41:00Z');
  await reviewer().tick(finished(checkpoints[0]!));
  assert.ok(fake.requests.length > asked, 'asked again after retryAt');
  assert.equal(lines.filter((line) => line.msg.includes('generator is unavailable')).length, 1, 'the same reason is logged once');
  assert.deepEqual(events, []);

  // A restart: a new reviewer reads the queue from disk. The generator answers again.
  fake.mode = 'ok';
  clock.now = new Date('2026-11-25T22:52:00Z');
  await reviewer().tick(finished(checkpoints[0]!));
  [entry] = (await ReviewQueue.open(train)).entries;
  assert.equal(entry!.status, 'reviewed');
  assert.equal(entry!.waiting, null);
  assert.ok(await readReviewSummary(train, 'v1'));
  assert.equal(events.length, 1);
});

test('outside a window, while a trainer runs or when celforge stops the review waits; a window that ends stops it before a render that cannot finish, and the next window finishes it', async (t) => {
  const { fake, checkpoints, clock, reviewer, train, lines } = await setup(t, { seeds: [1, 2, 3], timeoutSeconds: 20 });
  clock.now = new Date('2026-11-25T12:00:00Z');
  await reviewer().tick(finished(checkpoints[0]!));
  assert.equal((await ReviewQueue.open(train)).pending().length, 1, 'queued');
  assert.equal(fake.requests.length, 0, 'outside the window: nothing asked');
  clock.now = new Date('2026-11-25T22:30:00Z');
  await reviewer().tick({ ...finished(checkpoints[0]!), status: 'running' });
  assert.equal(fake.requests.length, 0, 'a trainer runs: nothing asked');
  assert.ok(lines.some((line) => /v1 waits for the training run to end/.test(line.msg)));
  // celforge stopping (the daemon's signal): no render starts, and a restart in the same window goes on.
  await reviewer(() => clock.now, AbortSignal.abort()).tick(finished(checkpoints[0]!));
  assert.equal(fake.renders.length, 0);
  assert.deepEqual((await ReviewQueue.open(train)).entries.map((entry) => [entry.waiting, entry.retryAt]), [['celforge is stopping', null]]);

  // Each render takes a minute on this clock; the window (22:00 + 2 h) ends 2.5 minutes after 23:57:30.
  let base = new Date('2026-11-25T23:57:30Z').getTime();
  const renderClock = () => new Date(base + fake.renders.length * 60_000);
  await reviewer(renderClock).tick(finished(checkpoints[0]!));
  assert.equal(fake.renders.length, 2, 'the first render (estimated at the 20 s timeout) and the second (60 s, as the first took) fit; the third does not');
  let [entry] = (await ReviewQueue.open(train)).entries;
  assert.equal(entry!.status, 'queued');
  assert.match(entry!.waiting!, /the window ends at 2026-11-26T00:00:00\.000Z, before another render could finish \(60 s each\)/);
  assert.equal(await readReviewSummary(train, 'v1'), undefined, 'no summary for a review cut short');
  assert.equal(fake.requests.at(-1)!.path, '/sdapi/v1/unload-checkpoint', 'a review stopped for the window\'s end releases the GPU');
  assert.equal(fake.gpuModel, null);

  base = new Date('2026-11-26T22:00:30Z').getTime() - 2 * 60_000;
  await reviewer(renderClock).tick(finished(checkpoints[0]!));
  assert.deepEqual(fake.renders.map((body) => body.seed), [1, 2, 3], 'the next window renders only what is missing');
  [entry] = (await ReviewQueue.open(train)).entries;
  assert.equal(entry!.status, 'reviewed');
  assert.deepEqual((await readReviewSummary(train, 'v1'))!.templates[0]!.seeds, [1, 2, 3]);
});

test('a review that fails releases the GPU too; a generator that cannot unload is logged and the review still counts', async (t) => {
  const { fake, modelFolder, checkpoints, lines, clock, events, reviewer, train } = await setup(t, { seeds: [11] });
  // The model folder is a file: the checkpoint cannot be placed, and the review fails before any render.
  mkdirSync(path.dirname(modelFolder), { recursive: true });
  writeFileSync(modelFolder, 'not a folder');
  await reviewer().tick(finished(checkpoints[0]!));
  let [entry] = (await ReviewQueue.open(train)).entries;
  assert.equal(entry!.status, 'queued');
  assert.match(entry!.waiting!, /the review failed/);
  assert.deepEqual(fake.requests.map((request) => request.path), ['/sdapi/v1/unload-checkpoint'], 'nothing rendered, and the GPU released all the same');

  rmSync(modelFolder);
  fake.failUnload = true;
  clock.now = new Date('2026-11-25T22:41:00Z');
  await reviewer().tick(finished(checkpoints[0]!));
  [entry] = (await ReviewQueue.open(train)).entries;
  assert.equal(entry!.status, 'reviewed', 'a failed unload does not undo the review');
  assert.deepEqual(events.map((event) => event.kind), ['checkpoint-reviewed']);
  const warned = lines.filter((line) => line.msg.includes('did not unload its models'));
  assert.equal(warned.length, 1);
  assert.equal(warned[0]!.level, 40, 'a warning');
  assert.match(warned[0]!.msg, /checkpoint review of v1: http:\/\/127\.0\.0\.1:\d+ did not unload its models, so the GPU may still hold them: .*unload-checkpoint answered 500/);

  // A generator that is down fails the unload as well: expected, so no second warning.
  fake.failUnload = false;
  fake.mode = 'error';
  await reviewer().run(await ReviewQueue.open(train), { version: 'v1', force: true });
  assert.equal(fake.requests.at(-1)!.path, '/sdapi/v1/unload-checkpoint', 'tried all the same');
  assert.equal(lines.filter((line) => line.msg.includes('did not unload its models')).length, 1);
});
