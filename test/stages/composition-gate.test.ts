/**
 * The composition gate: composition tags kept by the largest face's share of
 * the picture's height, dropped without a face; its configuration; and the
 * tags stage on a real clip (a sky, then strips of grid-36 pictures, the real
 * LBP cascade) with a generated tagger that guesses every composition tag
 * everywhere: frames and crops keep what their faces allow, the sky none,
 * counted in the job; with no face detector nothing is gated.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { readCrops } from '../../src/adapters/crops-file.ts';
import { realDiskSpace } from '../../src/adapters/disk.ts';
import { readFaces } from '../../src/adapters/faces-file.ts';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { MediaRepository } from '../../src/adapters/media.ts';
import { loadConfig, validateConfig } from '../../src/config/load.ts';
import type { Job } from '../../src/daemon/job.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { compositionGate, largestFaceShare, type CompositionRanges } from '../../src/stages/tags/composition-gate.ts';
import { tagsStage } from '../../src/stages/tags/tags-stage.ts';
import { binaries } from '../fixtures/clips.ts';
import { makeFacesClip } from '../fixtures/faces-clip.ts';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { writeTaggerModel } from '../fixtures/onnx-models.ts';
import { readJobs, runCli, tempDir, writeConfig } from '../helpers.ts';
import { stageRunner } from '../fixtures/stage-run.ts';

const COMPOSITION = ['close-up', 'portrait', 'upper_body', 'cowboy_shot', 'full_body'];
const same = (tag: string) => tag;
const DEFAULTS = validateConfig({}, 'test', '/tmp').tags.composition;

test('the default ranges: a large face keeps close-up and portrait, a small one full_body; other tags are left alone', () => {
  const kept = (share: number) => compositionGate([...COMPOSITION, 'smile', '1girl'], same, share, DEFAULTS).kept;
  assert.deepEqual(kept(0.6), ['close-up', 'portrait', 'smile', '1girl']);
  assert.deepEqual(kept(0.35), ['portrait', 'upper_body', 'smile', '1girl']);
  assert.deepEqual(kept(0.2), ['upper_body', 'cowboy_shot', 'full_body', 'smile', '1girl']);
  assert.deepEqual(kept(0.05), ['full_body', 'smile', '1girl']);
  assert.deepEqual(kept(1.4), ['close-up', 'portrait', 'smile', '1girl'], 'a face box cut by the frame can be taller than it');
});

test('without a face every composition tag goes; the range ends are kept', () => {
  const result = compositionGate([...COMPOSITION, 'smile'], same, 0, DEFAULTS);
  assert.deepEqual(result.kept, ['smile']);
  assert.deepEqual(result.removed, COMPOSITION);
  const ranges: CompositionRanges = { portrait: [0.3, 0.5] };
  assert.deepEqual(compositionGate(['portrait'], same, 0.3, ranges).kept, ['portrait']);
  assert.deepEqual(compositionGate(['portrait'], same, 0.5, ranges).kept, ['portrait']);
  assert.deepEqual(compositionGate(['portrait'], same, 0.5001, ranges).kept, []);
  assert.deepEqual(compositionGate(['full_body'], same, 0, { full_body: [0, 0.2] }).kept, [], 'no face: dropped even where the range starts at 0');
  assert.deepEqual(compositionGate(['constructor', 'toString'], same, 0, {}).kept, ['constructor', 'toString'], 'only the ranges\' own keys count');
});

test('largestFaceShare: the tallest box over the picture\'s height, 0 without a face', () => {
  assert.equal(largestFaceShare([100, 300, 200], 600), 0.5);
  assert.equal(largestFaceShare([], 600), 0);
  assert.equal(largestFaceShare([100], 0), 0);
});

test('tags.composition: listed tags replace the defaults, spaces become underscores, {} turns the gate off, min above max is refused', () => {
  assert.deepEqual(Object.keys(DEFAULTS).sort(), [...COMPOSITION].sort());
  assert.deepEqual(validateConfig({ tags: { composition: { 'cowboy shot': [0.1, 0.2] } } }, 'test', '/tmp').tags.composition, { cowboy_shot: [0.1, 0.2] });
  assert.deepEqual(validateConfig({ tags: { composition: {} } }, 'test', '/tmp').tags.composition, {});
  assert.throws(() => validateConfig({ tags: { composition: { portrait: [0.5, 0.2] } } }, 'test', '/tmp'), /tags\.composition.*min <= max/s);
});

const clip = await makeFacesClip();
// The generated tagger's probabilities are sums of weights on the mean colour and a bias: these are there on every picture.
const LABELS = [...COMPOSITION.map((name) => ({ name, bias: 0.9 })), { name: '1girl', bias: 0.9 }, { name: 'smile', bias: 0.8 }];

async function processClip(t: Parameters<typeof tempDir>[0], detector: 'cascade' | 'none') {
  const dir = tempDir(t);
  const models = writeModelFolder(dir, { taggers: [{ id: 'tagger-a', blueSky: 1 }], cascade: true });
  writeTaggerModel(path.join(models.dir, 'tagger-a', 'model.onnx'), { size: 32, tags: LABELS.map((label) => ({ blue: 0, green: 0, red: 0, bias: label.bias })) });
  writeFileSync(path.join(models.dir, 'tagger-a', 'selected_tags.csv'), `tag_id,name,category,count\n${LABELS.map((label, i) => `${i},${label.name},0,100`).join('\n')}\n`);
  const configFile = writeConfig(dir, {
    inbox: './inbox', library: './library', disk: { reserve: 0 }, models: { dir: models.dir, manifest: models.manifest },
    faces: { detector }, crops: { minSize: 128 }, tags: { taggers: ['tagger-a'] }, inference: { batchSize: 2, workers: 1 },
  });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  const result = await cli('process', clip.file);
  assert.equal(result.code, 0, result.stderr + result.stdout);
  const library = path.join(dir, 'library');
  const job = readJobs(library)[0]!;
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  return { library, configFile, job, catalog, stdout: result.stdout, cli };
}

/** The composition tags the default ranges allow at this share, sorted as the catalog lists tags. */
const inRange = (share: number) => COMPOSITION.filter((tag) => share > 0 && share >= DEFAULTS[tag]![0] && share <= DEFAULTS[tag]![1]).sort();

test('the tags stage keeps each composition tag where the largest face allows it, on frames and on crops, none on the sky', { timeout: 240_000 }, async (t) => {
  const { library, configFile, job, catalog, stdout, cli } = await processClip(t, 'cascade');
  const faces = await readFaces(path.join(job.extract!.dir, 'faces.jsonl'));
  const crops = await readCrops(path.join(job.extract!.dir, 'crops.jsonl'));
  assert.ok(crops.length >= 4, `${crops.length} crops`);
  const composition = (hash: string) => catalog.tagsOf(hash).filter((tag) => COMPOSITION.includes(tag));
  let [framesGated, cropsGated] = [0, 0];

  assert.equal(faces[0]!.faces.length, 0, 'the sky');
  for (const record of faces) {
    const expected = inRange(largestFaceShare(record.faces.map((face) => face.height), 720));
    assert.deepEqual(composition(record.sha256), expected, `frame ${record.frame}, faces ${record.faces.map((face) => face.height)}`);
    if (expected.length < COMPOSITION.length) framesGated += 1;
    assert.ok(catalog.tagsOf(record.sha256).includes('smile'), 'other tags stay');
  }
  assert.deepEqual(composition(faces[0]!.sha256), []);
  const skyCaption = readFileSync(path.join(library, faces[0]!.file.replace(/\.png$/, '.txt')), 'utf8');
  assert.doesNotMatch(skyCaption, /portrait|full body|close-up/, 'nor in its caption');

  for (const crop of crops) {
    const [, boxY, , boxHeight] = crop.box;
    const [, top, , height] = crop.rect;
    const visible = Math.min(boxY + boxHeight, top + height) - Math.max(boxY, top);
    const expected = inRange(visible / height);
    assert.deepEqual(composition(crop.sha256), expected, `${crop.kind} crop ${crop.file}: face ${visible} of ${height}`);
    if (expected.length < COMPOSITION.length) cropsGated += 1;
    assert.ok(catalog.tagsOf(crop.sha256).includes('1girl'), 'a crop comes from a face: its subject tags stay');
    for (const tag of expected) assert.deepEqual(catalog.tagSources(crop.sha256).filter((row) => row.tag === tag).map((row) => row.source), ['composition']);
    const caption = readFileSync(path.join(library, crop.file.replace(/\.png$/, '.txt')), 'utf8');
    assert.match(caption, /1girl/, `${crop.file} has its caption`);
  }
  assert.ok(crops.some((crop) => crop.kind === 'face' && composition(crop.sha256).includes('portrait')), 'face close-ups are portraits');
  assert.ok(crops.some((crop) => crop.kind === 'upper_body' && composition(crop.sha256).includes('upper_body')));

  const gated = framesGated + cropsGated;
  assert.deepEqual(job.tags, { taggers: ['tagger-a'], framesDone: 3, framesGated: 1, cropsDone: crops.length, compositionGated: gated });
  assert.match(stdout, new RegExp(`3 tagged and ${crops.length} crops by tagger-a, subject tags taken from 1, composition tags from ${gated}`));
  assert.equal(catalog.count('portrait -crop:*'), faces.filter((record) => inRange(largestFaceShare(record.faces.map((face) => face.height), 720)).includes('portrait')).length);

  // The crops tagged again from nothing, stopped after their first batch: the same tags, sources and captions.
  const captionOf = (crop: { file: string }) => path.join(library, crop.file.replace(/\.png$/, '.txt'));
  const reference = crops.map((crop) => ({ sources: catalog.tagSources(crop.sha256), caption: readFileSync(captionOf(crop), 'utf8') }));
  for (const crop of crops) {
    for (const source of ['tagger:ensemble', 'face-gate', 'composition'] as const) catalog.setSourceTags(crop.sha256, source, []);
    rmSync(captionOf(crop));
  }
  const config = await loadConfig({ configPath: configFile });
  const images = createImageWorkers(1);
  t.after(() => images.close());
  const state: Job = { ...structuredClone(job), stage: 'tags', state: 'running', tags: { ...job.tags!, cropsDone: 0, compositionGated: framesGated } };
  const run = stageRunner(tagsStage, state, {
    config: () => config, media: new MediaRepository(binaries), disk: realDiskSpace, catalog, images, models: new ModelCache(), log: pino({ level: 'silent' }),
  });
  assert.equal(await run(1), 'interrupted');
  assert.equal(state.tags?.cropsDone, 2, 'one batch of crops');
  assert.equal(state.tags?.framesDone, 3, 'the frames are not tagged again');
  assert.equal(await run(null), 'done');
  assert.deepEqual(state.tags, job.tags);
  assert.deepEqual(crops.map((crop) => ({ sources: catalog.tagSources(crop.sha256), caption: readFileSync(captionOf(crop), 'utf8') })), reference);

  // `celforge tags` on pictures gates as the stage does.
  const pictures = [clip.stills[0]!.file, clip.stills[1]!.file];
  const found: { faces: { height: number }[] }[] = JSON.parse((await cli('faces', ...pictures, '--json')).stdout);
  const tagged: { compositionGated: { tag: string }[]; tags: { tag: string; source: string }[] }[] = JSON.parse((await cli('tags', ...pictures, '--json')).stdout);
  tagged.forEach((picture, index) => {
    const allowed = inRange(largestFaceShare(found[index]!.faces.map((face) => face.height), 720));
    assert.deepEqual(picture.tags.filter((tag) => COMPOSITION.includes(tag.tag)).map((tag) => [tag.tag, tag.source]).sort(), allowed.map((tag) => [tag, 'composition']));
    assert.deepEqual(picture.compositionGated.map((tag) => tag.tag).sort(), COMPOSITION.filter((tag) => !allowed.includes(tag)).sort());
  });
  assert.equal(tagged[0]!.compositionGated.length, COMPOSITION.length, 'the sky keeps none');
});

test('with no face detector nothing is gated: the tagger\'s composition guesses stay, and there are no crops', { timeout: 240_000 }, async (t) => {
  const { job, catalog } = await processClip(t, 'none');
  assert.equal(job.crops, undefined);
  assert.deepEqual(job.tags, { taggers: ['tagger-a'], framesDone: 3, framesGated: 0, cropsDone: 0, compositionGated: 0 });
  assert.equal(catalog.count('crop:*'), 0);
  for (const tag of COMPOSITION) assert.equal(catalog.count(tag), 3, tag);
});
