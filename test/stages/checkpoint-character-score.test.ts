/**
 * The checkpoint review's character score on real ONNX Runtime sessions of
 * generated models with CCIP's contract (test/fixtures/ccip-models.ts, whose
 * features follow a picture's colours, so which pictures are one character
 * is known) and real PNG renders: a template's renders of its character
 * score the same, other characters and a stand-in generator's picture score
 * different, a v2 that lost the character is flagged, a missing model gives
 * null and a warning, and a character without reference pictures is an error
 * naming the template and the folder.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { validateConfig } from '../../src/config/load.ts';
import { CelforgeError } from '../../src/errors.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { characterScores, type CharacterRender } from '../../src/stages/checkpoint-review/character-score.ts';
import { regressions, type CharacterScore, type TemplateScore } from '../../src/stages/checkpoint-review/scores.ts';
import { CHARACTERS, characterCrop, writeCcipModels } from '../fixtures/ccip-models.ts';
import { renderPicture } from '../fixtures/generator-picture.ts';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { tempDir } from '../helpers.ts';

const SERIES = 'Show';
const ALICE = 0;
/** Alice in another outfit: as far from her usual pictures as two characters are (about 0.36 with these models). */
const ALICE_WINTER = { ...CHARACTERS[ALICE]!, clothes: '#1030c0' };
const THRESHOLD = 0.178;

/** A models folder whose manifest has the generated CCIP models as `ccip-test` and an entry `ccip-missing` never fetched. */
function writeModels(dir: string): { dir: string; manifest: string } {
  const models = writeModelFolder(dir, { taggers: [] });
  // A 64-pixel input keeps the runs short; the contract is the same (the input size is read from the model).
  writeCcipModels(path.join(models.dir, 'ccip-test'), { size: 64, threshold: THRESHOLD });
  const manifest = JSON.parse(readFileSync(models.manifest, 'utf8')) as { models: unknown[] };
  manifest.models.push(...['ccip-test', 'ccip-missing'].map((id) => ({
    id, kind: 'ccip', licence: 'test', homepage: 'http://127.0.0.1/',
    input: { size: 64, layout: 'NCHW', channels: 'RGB', range: 'CLIP-normalised', pad: 'none' },
    files: ['model_feat.onnx', 'model_metrics.onnx', 'metrics.json'].map((name) => ({ name, url: `http://127.0.0.1:9/${id}/${name}`, sha256: null, size: null })),
  })));
  writeFileSync(models.manifest, JSON.stringify(manifest));
  return models;
}

async function writePicture(file: string, picture: Promise<Buffer>): Promise<string> {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, await picture);
  return file;
}

async function setup(t: Parameters<typeof tempDir>[0], options: { model?: string; templates?: unknown[] } = {}) {
  const dir = tempDir(t);
  const library = path.join(dir, 'library');
  // Alice's reference pictures, one in her other outfit (the folder named as a person would, with a space); Bob's in the same series.
  const references = path.join(library, 'characters', SERIES, 'Alice Liddell');
  for (const seed of [1, 2, 3]) await writePicture(path.join(references, `${seed}.png`), characterCrop(CHARACTERS[ALICE]!, seed, 160));
  await writePicture(path.join(references, 'winter.png'), characterCrop(ALICE_WINTER, 1, 160));
  await writePicture(path.join(library, 'characters', SERIES, 'bob', '1.png'), characterCrop(CHARACTERS[1]!, 1, 160));
  const templates = options.templates ?? [
    { name: 'alice portrait', prompt: 'alice_liddell, 1girl, portrait', seeds: [1, 2, 3, 4], character: 'alice_liddell' },
    { name: 'scenery', prompt: 'outdoors, no_humans', seeds: [1, 2] },
  ];
  const config = validateConfig({
    library: './library', models: { ...writeModels(dir), autoFetch: false },
    characters: { model: options.model ?? 'ccip-test' }, inference: { batchSize: 4 },
    review: { templates },
  }, 'test', dir);
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, new Writable({ write: (chunk, _encoding, done) => done(void lines.push(String(chunk))) }));
  const images = createImageWorkers(0);
  const ports = { config, images, models: new ModelCache(), log };
  t.after(() => images.close());
  return { dir, library, references, config, ports, lines };
}

/** Renders of `template` for `version`, each seed drawn by `draw`. */
async function renders(dir: string, version: string, template: string, seeds: number[], draw: (seed: number) => Promise<Buffer>): Promise<CharacterRender[]> {
  return Promise.all(seeds.map(async (seed) => ({ template, file: await writePicture(path.join(dir, 'reviews', version, template, `${seed}.png`), draw(seed)) })));
}

function templateScore(template: string, version: number, character: CharacterScore | null): TemplateScore {
  return { template, version, seeds: 4, found: 1, vanishedSubjects: [], compositionDrift: [], character };
}

test('renders of the character score the same, other characters and a generator picture different; v2 losing the character is flagged', async (t) => {
  const { dir, references, config, ports, lines } = await setup(t);
  const v1 = [
    // Two renders are reference pictures themselves, two are new drawings of Alice (another pose and grain) at render size,
    // one of them in her winter outfit: the same character as one reference picture, far from the others (the smallest counts).
    ...(await renders(dir, 'v1', 'alice portrait', [1, 2], (seed) => Promise.resolve(readFileSync(path.join(references, `${seed}.png`))))),
    ...(await renders(dir, 'v1', 'alice portrait', [3], (seed) => characterCrop(CHARACTERS[ALICE]!, 100 + seed, 256))),
    ...(await renders(dir, 'v1', 'alice portrait', [4], (seed) => characterCrop(ALICE_WINTER, 100 + seed, 256))),
    ...(await renders(dir, 'v1', 'scenery', [1, 2], (seed) => renderPicture({ model: 'v1.safetensors', prompt: 'outdoors', seed, width: 256, height: 256 }))),
  ];
  const first = await characterScores(v1, config.review.templates, ports);
  assert.deepEqual([...first.keys()], ['alice portrait', 'scenery'], 'every template has an entry');
  assert.equal(first.get('scenery'), null, 'a template that names no character has no score');
  const alice = first.get('alice portrait')!;
  assert.equal(alice.name, 'Alice Liddell', 'the reference folder found by the tag spelling, named as the folder is');
  assert.equal(alice.sameShare, 1);
  assert.ok(alice.meanDifference < THRESHOLD / 2, `a reference picture itself is ~0 apart, new drawings within the threshold (mean ${alice.meanDifference})`);
  assert.deepEqual(lines, [], 'no warning');

  // v2 drew other characters on three seeds and a stand-in generator's picture (a flat colour field) on the fourth.
  const v2 = [
    ...(await renders(dir, 'v2', 'alice portrait', [1, 2, 3], (seed) => characterCrop(CHARACTERS[seed + 1]!, seed, 256))),
    ...(await renders(dir, 'v2', 'alice portrait', [4], (seed) => renderPicture({ model: 'v2.safetensors', prompt: '1girl, circle', seed, width: 256, height: 256 }))),
  ];
  const second = (await characterScores(v2, config.review.templates, ports)).get('alice portrait')!;
  assert.equal(second.sameShare, 0, 'no render of v2 is Alice');
  assert.ok(second.meanDifference > THRESHOLD, `unrelated pictures lie beyond the threshold (mean ${second.meanDifference})`);

  // Half the seeds lost (v1's new drawings with v2's first two seeds): the share, and the mean of each render's own difference.
  const half = [...v1.slice(2, 4), ...v2.slice(0, 2)];
  const mixed = (await characterScores(half, config.review.templates, ports)).get('alice portrait')!;
  assert.equal(mixed.sameShare, 0.5);
  const each = await Promise.all(half.map(async (render) => (await characterScores([render], config.review.templates, ports)).get('alice portrait')!.meanDifference));
  assert.ok(Math.abs(mixed.meanDifference - each.reduce((sum, value) => sum + value, 0) / 4) < 1e-6, `${mixed.meanDifference} is the mean of ${each.join(', ')}`);
  assert.ok(each[0]! > 0.001 && each[0]! <= THRESHOLD, `a new drawing of Alice is near but not at a reference (${each[0]})`);

  const flagged = regressions([templateScore('alice portrait', 1, alice)], [templateScore('alice portrait', 2, second)], config.review.scoreMargin, config.review.characterMargin);
  assert.deepEqual(flagged, [{ template: 'alice portrait', reasons: [{ kind: 'character', previous: 1, current: 0 }] }]);
});

test('character regressions: a drop beyond review.characterMargin or below half is flagged, one seed of four is not', () => {
  const score = (sameShare: number, name = 'alice'): CharacterScore => ({ name, sameShare, meanDifference: 0.1 });
  const pairs: [string, CharacterScore | null, CharacterScore | null][] = [
    ['one seed lost', score(1), score(0.75)],
    ['two seeds lost', score(1), score(0.5)],
    ['below half', score(0.5), score(0.25)],
    ['within the majority', score(0.75), score(0.5)],
    ['better', score(0.25), score(1)],
    ['another character', score(1, 'alice'), score(0, 'bob')],
    ['no model before', null, score(0)],
    ['no model now', score(1), null],
  ];
  const flagged = regressions(
    pairs.map(([name, before]) => templateScore(name, 1, before)),
    pairs.map(([name, , now]) => templateScore(name, 2, now)),
    0.1, 0.25,
  );
  assert.deepEqual(flagged, [
    { template: 'two seeds lost', reasons: [{ kind: 'character', previous: 1, current: 0.5 }] },
    { template: 'below half', reasons: [{ kind: 'character', previous: 0.5, current: 0.25 }] },
  ]);
  assert.equal(validateConfig({}, 'test', '/tmp').review.characterMargin, 0.25);
  assert.throws(() => validateConfig({ review: { templates: [{ name: 'a', prompt: 'x', seeds: [1], series: SERIES }] } }, 'test', '/tmp'), /series.*set "character" too/);
});

test('a missing CCIP model: no score and a warning that says what fetches it; the other templates still have their entries', async (t) => {
  const { dir, config, ports, lines } = await setup(t, { model: 'ccip-missing' });
  const scores = await characterScores(await renders(dir, 'v1', 'alice portrait', [1], (seed) => characterCrop(CHARACTERS[ALICE]!, seed, 128)), config.review.templates, ports);
  assert.deepEqual([...scores.entries()], [['alice portrait', null], ['scenery', null]]);
  assert.equal(lines.length, 1);
  const { level, msg } = JSON.parse(lines[0]!) as { level: number; msg: string };
  assert.equal(level, 40, 'a warning');
  assert.match(msg, /no character scores for "alice portrait": model ccip-missing is not in .*; run "celforge models fetch ccip-missing"/);
});

test('the reference folder: found in the only series that has it or the named one; unknown, ambiguous or empty is an error naming the template and the folder', async (t) => {
  const { dir, library, config, ports } = await setup(t);
  const run = (template: Record<string, unknown>, renders: CharacterRender[] = [{ template: 't', file: path.join(dir, 'none.png') }]) => characterScores(
    renders,
    validateConfig({ review: { templates: [{ name: 't', prompt: 'x', seeds: [1], ...template }] } }, 'test', dir, library).review.templates,
    ports,
  );
  const refused = (pattern: RegExp) => (error: unknown) => error instanceof CelforgeError && error.code === 'CONFIG_INVALID' && pattern.test(error.message);
  const expected = path.join(library, 'characters', '<series>', 'carol');
  await assert.rejects(run({ character: 'carol' }), refused(new RegExp(`review\\.templates "t": no reference folder for the character "carol" \\(expected ${expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`)));
  await assert.rejects(run({ character: 'carol' }, []), refused(/no reference folder/), 'checked before any render exists');
  await assert.rejects(run({ character: 'bob', series: 'Other Show' }), refused(/"t": no reference folder for the character "bob" \(expected .*Other Show.bob/));
  mkdirSync(path.join(library, 'characters', 'Other Show', 'Bob'), { recursive: true });
  await assert.rejects(run({ character: 'bob', series: 'Other Show' }), refused(/"t": the reference folder .*Other Show.Bob of the character "bob" holds no PNG, JPEG or WebP pictures/));
  await writePicture(path.join(library, 'characters', 'Other Show', 'Bob', '1.png'), characterCrop(CHARACTERS[2]!, 1, 96));
  await assert.rejects(run({ character: 'bob' }), refused(/"t": the character "bob" has reference folders .*Other Show.Bob, .*Show.bob; set the template's "series"/));
  await assert.rejects(run({ character: 'a, b' }), refused(/"t": the character "a, b" contains a comma/));
  // With its series named, the other Bob is found; a render of the first series' Bob is not that character.
  const file = await writePicture(path.join(dir, 'bob.png'), characterCrop(CHARACTERS[1]!, 7, 128));
  const scores = await characterScores([{ template: 't', file }],
    validateConfig({ review: { templates: [{ name: 't', prompt: 'x', seeds: [1], character: 'bob', series: 'Other Show' }] } }, 'test', dir, library).review.templates, ports);
  assert.equal(scores.get('t')!.name, 'Bob');
  assert.equal(scores.get('t')!.sameShare, 0);
  assert.equal(config.review.templates[0]!.character, 'alice_liddell');
});
