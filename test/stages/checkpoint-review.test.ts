import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import sharp from 'sharp';
import { A1111Generator } from '../../src/adapters/a1111-generator.ts';
import { GeneratorUnavailable } from '../../src/adapters/image-generator.ts';
import { validateConfig } from '../../src/config/load.ts';
import { CelforgeError } from '../../src/errors.ts';
import { cellOrigin, writeComparisonSheet } from '../../src/stages/checkpoint-review/comparison-sheet.ts';
import { renderVersion, type ReviewCheckpoint } from '../../src/stages/checkpoint-review/review-store.ts';
import { loadTemplates, renderJobs, templateFolder } from '../../src/stages/checkpoint-review/templates.ts';
import { FakeA1111 } from '../fixtures/fake-a1111.ts';
import { closedPortUrl, modelColour, seedSpot } from '../fixtures/generator-picture.ts';

const CELL = 64;
const V1: ReviewCheckpoint = { kind: 'checkpoint', name: 'celforge-v1.safetensors', sha256: 'a'.repeat(64) };
const V2: ReviewCheckpoint = { kind: 'checkpoint', name: 'celforge-v2.safetensors', sha256: 'b'.repeat(64) };

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'celforge-ckpt-review-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function server(t: TestContext) {
  const fake = await FakeA1111.start({ checkpoints: ['base.safetensors', V1.name, V2.name] });
  t.after(() => fake.stop());
  return { fake, generator: new A1111Generator({ url: fake.url, timeoutSeconds: 20 }) };
}

/** Two templates (one with a name unsafe as a folder), two seeds and one seed; 64x64 pictures. */
function reviewConfig(dir: string, extra: Record<string, unknown> = {}) {
  return validateConfig(
    {
      review: {
        templates: [
          { name: 'portrait', prompt: '1girl, smile, portrait', seeds: [11, 22], width: 64, height: 64 },
          { name: 'Back/ground: "city" <night>', prompt: 'no_humans, city, night', negativePrompt: 'lowres', seeds: [5], width: 64, height: 64, steps: 12 },
        ],
        ...extra,
      },
    },
    'test config',
    dir,
  ).review;
}

async function pixel(file: string | Buffer, x: number, y: number): Promise<[number, number, number]> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (Math.round(y) * info.width + Math.round(x)) * 3;
  return [data[at]!, data[at + 1]!, data[at + 2]!];
}

async function allFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

test('templates: defaults, the wild prompts file (comments and blanks skipped), jobs per seed, clear errors naming file and line', async (t) => {
  const dir = await tempDir(t);
  const wild = path.join(dir, 'wild.txt');
  await writeFile(wild, '# seen on a forum\n\n1girl, holding umbrella, rain\n  \nsolo, from behind, looking back\n');
  const review = reviewConfig(dir, { wildPrompts: wild, wildSeeds: [3, 4] });
  assert.equal(review.templates[0]!.steps, 28);
  assert.equal(review.templates[0]!.sampler, 'Euler a');
  assert.equal(review.templates[0]!.cfgScale, 7);
  const templates = await loadTemplates(review);
  assert.deepEqual(templates.map((template) => template.name), ['portrait', 'Back/ground: "city" <night>', 'wild-1', 'wild-2']);
  assert.deepEqual(templates[3], { name: 'wild-2', prompt: 'solo, from behind, looking back', negativePrompt: '', seeds: [3, 4], steps: 28, cfgScale: 7, sampler: 'Euler a', width: 512, height: 512 });
  const jobs = renderJobs(templates);
  assert.deepEqual(jobs.map((job) => `${job.template}#${job.parameters.seed}`), ['portrait#11', 'portrait#22', 'Back/ground: "city" <night>#5', 'wild-1#3', 'wild-1#4', 'wild-2#3', 'wild-2#4']);
  assert.equal(jobs[2]!.parameters.steps, 12);
  assert.equal(jobs[2]!.parameters.negativePrompt, 'lowres');

  const folder = templateFolder('Back/ground: "city" <night>');
  assert.match(folder, /^[A-Za-z0-9._-]+$/);
  assert.notEqual(folder, templateFolder('Back_ground: "city" <night>'), 'names that differ only in replaced characters stay apart');
  assert.notEqual(templateFolder('Portrait'), templateFolder('portrait'), 'names that differ in case stay apart on a case-blind disk');
  assert.equal(templateFolder('portrait'), 'portrait');
  assert.doesNotMatch(templateFolder('../../etc'), /^\.|\//);

  await writeFile(wild, 'ok prompt\n# note\n1girl <lora:other:0.8>\n');
  await assert.rejects(loadTemplates(review), (error: unknown) => error instanceof CelforgeError && error.message.includes(`${wild}:3`) && /lora/.test(error.message));
  await assert.rejects(loadTemplates({ ...review, wildPrompts: path.join(dir, 'none.txt') }), (error: unknown) => error instanceof CelforgeError && error.code === 'FILE_NOT_FOUND' && error.message.includes('none.txt'));
  await writeFile(wild, 'a prompt\n');
  const clash = reviewConfig(dir, { wildPrompts: wild });
  await assert.rejects(loadTemplates({ ...clash, templates: [{ ...clash.templates[0]!, name: 'wild-1' }] }), (error: unknown) => error instanceof CelforgeError && error.message.includes(`${wild}:1`) && error.message.includes('wild-1'));

  assert.throws(() => reviewConfig(dir, { templates: [{ name: 'x', prompt: 'y', seeds: [] }] }), /review\.templates\.0\.seeds/);
  assert.throws(() => reviewConfig(dir, { templates: [{ name: 'x', prompt: 'y', seeds: [1], width: 500 }] }), /review\.templates\.0\.width.*multiple of 8/s);
  assert.throws(() => reviewConfig(dir, { templates: [{ name: 'x', prompt: 'y', seeds: [1] }, { name: 'X', prompt: 'z', seeds: [1] }] }), /review\.templates\.1\.name/);
});

test('renderVersion: the right checkpoint and seed per render, records, reuse, a changed parameter re-renders only its cell, and the sheet shows the right pictures', async (t) => {
  const dir = await tempDir(t);
  const { fake, generator } = await server(t);
  const jobs = renderJobs(await loadTemplates(reviewConfig(dir)));

  const first = await renderVersion(generator, 'v1', V1, jobs, dir);
  assert.deepEqual([first.rendered, first.reused], [3, 0]);
  const second = await renderVersion(generator, 'v2', V2, jobs, dir);
  assert.deepEqual([second.rendered, second.reused], [3, 0]);
  const sent = fake.renders;
  assert.equal(sent.length, 6);
  assert.deepEqual(sent.map((body) => (body.override_settings as { sd_model_checkpoint: string }).sd_model_checkpoint), [V1.name, V1.name, V1.name, V2.name, V2.name, V2.name]);
  assert.deepEqual(sent.map((body) => body.seed), [11, 22, 5, 11, 22, 5]);
  assert.equal(sent[2]!.negative_prompt, 'lowres');
  assert.equal(sent[2]!.steps, 12);

  // Each stored picture is that version's model's and has its seed's square.
  for (const [version, checkpoint] of [['v1', V1], ['v2', V2]] as const) {
    for (const job of jobs) {
      const png = path.join(dir, 'reviews', version, job.folder, `${job.parameters.seed}.png`);
      const [sx, sy] = seedSpot(job.parameters.seed, 64, 64);
      assert.deepEqual(await pixel(png, sx + 4, sy + 4), [0, 0, 0], `${png}: the seed's square`);
      const record = JSON.parse(await readFile(png.replace(/\.png$/, '.json'), 'utf8'));
      assert.equal(record.version, version);
      assert.deepEqual(record.checkpoint, checkpoint);
      assert.equal(record.template, job.template);
      assert.equal(record.seed, job.parameters.seed);
      assert.deepEqual(record.parameters, job.parameters);
      assert.equal(record.generator, fake.url);
      assert.ok(!Number.isNaN(Date.parse(record.renderedAt)));
    }
  }

  const again = await renderVersion(generator, 'v1', V1, jobs, dir);
  assert.deepEqual([again.rendered, again.reused], [0, 3]);
  assert.equal(fake.renders.length, 6, 'a second review makes no new txt2img request');

  const changed = jobs.map((job, index) => (index === 1 ? { ...job, parameters: { ...job.parameters, cfgScale: 5.5 } } : job));
  const partly = await renderVersion(generator, 'v1', V1, changed, dir);
  assert.deepEqual([partly.rendered, partly.reused], [1, 2]);
  assert.equal(fake.renders.length, 7);
  assert.deepEqual([fake.renders[6]!.seed, fake.renders[6]!.cfg_scale], [22, 5.5]);

  const retrained = await renderVersion(generator, 'v2', { ...V2, sha256: 'c'.repeat(64) }, jobs, dir);
  assert.equal(retrained.rendered, 3, 'a version whose checkpoint file changed is rendered again');

  // Sheet: v1 was last rendered with the changed job list, so the cfg 7 cell of seed 22 is missing in v1.
  const sheet = await writeComparisonSheet(dir, ['v1', 'v2'], jobs, { cellSize: CELL });
  assert.equal(sheet, path.join(dir, 'reviews', 'v2', 'sheet.png'));
  const meta = await sharp(sheet).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 220 + 2 * CELL, 32 + 3 * CELL]);
  const raw = await sharp(sheet).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number) => {
    const offset = (y * raw.info.width + x) * 3;
    return [raw.data[offset]!, raw.data[offset + 1]!, raw.data[offset + 2]!];
  };
  const near = (actual: number[], expected: number[], what: string) =>
    assert.ok(actual.every((value, index) => Math.abs(value - expected[index]!) <= 3), `${what}: ${actual} is not ${expected}`);
  for (const [row, job] of jobs.entries()) {
    // A point of the cell the seed's square does not reach.
    const [sx, sy] = seedSpot(job.parameters.seed, 64, 64);
    const px = sx > 32 ? 16 : 48;
    const py = sy > 32 ? 16 : 48;
    for (const [column, checkpoint] of [V1, V2].entries()) {
      const { left, top } = cellOrigin(row, column, CELL);
      const colour = at(left + px, top + py);
      if (row === 1 && column === 0) {
        assert.notDeepEqual(colour, modelColour(V1.name), 'the stale cell is drawn empty, not with the other render');
        near(colour, [56, 56, 56], 'the empty cell');
      } else near(colour, modelColour(checkpoint.name), `row ${row} (${job.template}), column ${column}`);
    }
  }
  // The overlay's labels are drawn: the header above the first column holds light text pixels.
  let light = 0;
  for (let x = 220; x < 220 + CELL; x += 1) for (let y = 0; y < 32; y += 1) if (at(x, y)[0]! > 150) light += 1;
  assert.ok(light > 5, `the column header has text (${light} light pixels)`);
});

test('a generator that is down: GeneratorUnavailable, and nothing half-written is left', async (t) => {
  const dir = await tempDir(t);
  const jobs = renderJobs(await loadTemplates(reviewConfig(dir)));
  const down = new A1111Generator({ url: await closedPortUrl(), timeoutSeconds: 5 });
  await assert.rejects(renderVersion(down, 'v1', V1, jobs, dir), GeneratorUnavailable);
  assert.deepEqual(await readdir(dir), []);

  // Down half way: the renders made before stay whole and are reused; no temporary file, no picture without its record.
  const { fake, generator } = await server(t);
  await renderVersion(generator, 'v1', V1, jobs.slice(0, 1), dir);
  fake.mode = 'busy';
  await assert.rejects(renderVersion(generator, 'v1', V1, jobs, dir), GeneratorUnavailable);
  const files = await allFiles(path.join(dir, 'reviews', 'v1'));
  assert.deepEqual(files.filter((file) => file.endsWith('.png') || file.endsWith('.json') || file.endsWith('.tmp')), ['portrait/11.json', 'portrait/11.png']);
  fake.mode = 'ok';
  const resumed = await renderVersion(generator, 'v1', V1, jobs, dir);
  assert.deepEqual([resumed.rendered, resumed.reused], [2, 1]);
});

test('a LoRA version renders with its <lora:name:weight> tag, and another weight is another render', async (t) => {
  const dir = await tempDir(t);
  const fake = await FakeA1111.start({ checkpoints: ['base.safetensors'], loras: ['celforge-000001.safetensors'] });
  t.after(() => fake.stop());
  const generator = new A1111Generator({ url: fake.url, timeoutSeconds: 20 });
  const jobs = renderJobs(await loadTemplates(reviewConfig(dir))).slice(0, 1);
  const lora: ReviewCheckpoint = { kind: 'lora', name: 'celforge-000001.safetensors', weight: 0.8, sha256: 'd'.repeat(64) };
  await renderVersion(generator, 'e1', lora, jobs, dir);
  assert.equal(fake.renders[0]!.prompt, '1girl, smile, portrait <lora:celforge-000001:0.8>');
  assert.equal(fake.renders[0]!.override_settings, undefined);
  assert.deepEqual(JSON.parse(await readFile(path.join(dir, 'reviews', 'e1', 'portrait', '11.json'), 'utf8')).checkpoint, lora);
  assert.equal((await renderVersion(generator, 'e1', lora, jobs, dir)).reused, 1);
  assert.equal((await renderVersion(generator, 'e1', { ...lora, weight: 1 }, jobs, dir)).rendered, 1);
  assert.equal(fake.renders.at(-1)!.prompt, '1girl, smile, portrait <lora:celforge-000001:1>');
});
