/**
 * The faces and tags stages in the pipeline, on a real clip of held stills
 * (a sky, then two strips of anime pictures with faces), the real LBP
 * cascade and two generated taggers whose answers are known: subject tags
 * only where a face is, averaged taggers, copyright and blacklist dropped,
 * results in the catalog with their sources, Kohya sidecars beside the
 * frames, a job that waits for a missing model and goes on once fetched.
 */
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { readFaces } from '../../src/adapters/faces-file.ts';
import { readFrameMap } from '../../src/adapters/frame-map-file.ts';
import { realDiskSpace } from '../../src/adapters/disk.ts';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { MediaRepository } from '../../src/adapters/media.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Job } from '../../src/daemon/job.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { facesStage } from '../../src/stages/faces/faces-stage.ts';
import type { Stage, StagePorts } from '../../src/stages/stage.ts';
import { tagsStage } from '../../src/stages/tags/tags-stage.ts';
import { binaries } from '../fixtures/clips.ts';
import { makeFacesClip } from '../fixtures/faces-clip.ts';
import { FileServer } from '../fixtures/file-server.ts';
import { RecordServer } from '../fixtures/record-server.ts';
import { CASCADE_FILE, writeModelFolder } from '../fixtures/model-folder.ts';
import { readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

const clip = await makeFacesClip();

function setup(t: Parameters<typeof tempDir>[0], { models: modelsExtra, ...extra }: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  const models = writeModelFolder(dir, { taggers: [{ id: 'tagger-a', blueSky: 1 }, { id: 'tagger-b', blueSky: 0.5 }], cascade: true });
  const config = {
    inbox: './inbox', library: './library', disk: { reserve: 0 }, watch: { settleSeconds: 0.2 },
    models: { dir: models.dir, manifest: models.manifest, ...(modelsExtra as object | undefined) },
    faces: { detector: 'cascade' },
    tags: { taggers: ['tagger-a', 'tagger-b'], blacklist: ['watermark'] },
    inference: { batchSize: 2, workers: 2 },
    ...extra,
  };
  const configFile = writeConfig(dir, config);
  return { dir, configFile, models, library: path.join(dir, 'library'), cli: (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir }) };
}

test('process: faces found, subject tags only on frames with a face, tags in the catalog by source, captions beside the frames', async (t) => {
  const { library, cli } = setup(t);
  const result = await cli('process', clip.file);
  assert.equal(result.code, 0, result.stderr + result.stdout);
  const job = readJobs(library)[0]!;
  assert.equal(job.state, 'ready-for-review');
  assert.match(result.stdout, /faces on 2 of 3 \(lbpcascade-animeface\); \d+ crops; 3 tagged (and \d+ crops )?by tagger-a, tagger-b/);

  const kept = (await readFrameMap(path.join(job.extract!.dir, 'frame-map.jsonl'))).filter((record) => record.status === 'kept');
  assert.deepEqual(kept.map((record) => record.frame), [0, 12, 24], 'one kept frame per still');
  const faces = await readFaces(path.join(job.extract!.dir, 'faces.jsonl'));
  assert.deepEqual(faces.map((record) => record.frame), [0, 12, 24]);
  assert.deepEqual(faces.map((record) => record.passed), clip.stills.map((still) => still.faces));
  for (const record of faces.filter((r) => r.passed)) {
    assert.ok(record.faces.length >= 2, `frame ${record.frame}: ${record.faces.length} faces`);
    for (const box of record.faces) assert.ok(box.width >= 100 && box.width <= 300 && box.y > 146 && box.y + box.height < 720 - 146, JSON.stringify(box));
  }

  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  const [sky, strip] = [faces[0]!, faces[1]!];
  const skyTags = catalog.tagsOf(sky.sha256);
  for (const tag of ['blue_sky', 'long_hair', '^_^', 'rating:general', 'faces:0']) assert.ok(skyTags.includes(tag), `sky lacks ${tag}: ${skyTags}`);
  for (const tag of ['1girl', 'solo', 'watermark', 'fate_(series)', 'rating:sensitive']) assert.ok(!skyTags.includes(tag), `sky has ${tag}`);
  const stripTags = catalog.tagsOf(strip.sha256);
  assert.ok(stripTags.includes('1girl'), 'a frame with faces keeps 1girl');
  assert.ok(!stripTags.includes('solo'), 'solo goes with two faces or more');
  assert.ok(!stripTags.includes('blue_sky'));
  assert.ok(stripTags.includes(`faces:${strip.faces.length}`));
  const sources = catalog.tagSources(strip.sha256);
  assert.deepEqual(sources.filter((row) => row.tag === '1girl').map((row) => row.source), ['face-gate']);
  assert.deepEqual(sources.filter((row) => row.tag === 'long_hair').map((row) => row.source), ['tagger:ensemble']);
  assert.deepEqual(sources.filter((row) => row.tag.startsWith('faces:')).map((row) => row.source), ['faces']);
  assert.equal(catalog.count('1girl -crop:*'), 2, 'frames (crops of the faces have 1girl too)');
  assert.equal(catalog.count('faces:0'), 1);

  const caption = (record: { file: string }) => readFileSync(path.join(library, record.file.replace(/\.png$/, '.txt')), 'utf8').trim().split(', ');
  const skyCaption = caption(sky);
  assert.deepEqual([...skyCaption].sort(), ['^_^', 'blue sky', 'general', 'long hair'], 'underscores become spaces except in kaomoji; organisation namespaces left out');
  assert.equal(skyCaption.at(-1), 'general', 'the rating comes last');
  assert.ok(skyCaption.indexOf('long hair') < skyCaption.indexOf('blue sky'), 'general tags by probability: 0.5 before the averaged 0.42');
  assert.deepEqual([...caption(strip)].sort(), ['1girl', '^_^', 'general', 'long hair']);

  const search = await cli('search', '1girl -faces:0 -crop:*');
  assert.equal(search.stdout.trim().split('\n').length, 2, search.stdout);

  assert.equal((await cli('reject', 'faces:0', '--yes')).code, 0);
  const trashed = path.join(library, 'trash', sky.file.replace(/\.png$/, '.txt'));
  assert.deepEqual(readFileSync(trashed, 'utf8').trim().split(', '), skyCaption, 'the caption goes to the trash with its frame');
});

test('with models.autoFetch off, a missing model holds the job at its stage with the fetch command; fetching it and a SIGHUP let it finish', async (t) => {
  const hook = await RecordServer.start();
  t.after(() => hook.stop());
  const { dir, configFile, models, library, cli } = setup(t, { models: { autoFetch: false }, notify: { desktop: false, webhook: { url: `${hook.url}/hook` }, groupSeconds: 0 } });
  const cascade = readFileSync(CASCADE_FILE);
  const server = await FileServer.start({ body: cascade });
  t.after(() => server.stop());
  rmSync(path.join(models.dir, 'lbpcascade-animeface'), { recursive: true });
  const manifest = JSON.parse(readFileSync(models.manifest, 'utf8'));
  manifest.models.find((entry: { id: string }) => entry.id === 'lbpcascade-animeface').files[0].url = `${server.url}/lbpcascade_animeface.xml`;
  writeFileSync(models.manifest, JSON.stringify(manifest));
  mkdirSync(path.join(dir, 'inbox'));
  copyFileSync(clip.file, path.join(dir, 'inbox', 'Stills 01.m2ts'));

  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  const waiting = await waitFor('the job to wait for the cascade', () => readJobs(library).find((job) => job.state === 'waiting-for-model'), 60_000);
  assert.equal(waiting.stage, 'faces');
  assert.deepEqual(waiting.waitingFor, {
    models: ['lbpcascade-animeface'], command: 'celforge models fetch lbpcascade-animeface',
    reason: `model lbpcascade-animeface is not in ${models.dir}; run "celforge models fetch lbpcascade-animeface"`,
  });
  assert.equal(waiting.extract?.kept, 3, 'the frames are kept while it waits');
  const status = await cli('status');
  assert.match(status.stdout, /faces\/waiting-for-model .*run "celforge models fetch lbpcascade-animeface"/);
  assert.equal(daemon.output().match(/: waiting-for-model: /g)?.length, 1, 'the wait is logged once');

  const fetched = await cli('models', 'fetch', 'lbpcascade-animeface');
  assert.equal(fetched.code, 0, fetched.stderr);
  daemon.child.kill('SIGHUP');
  const ready = await waitFor('the job to finish', () => readJobs(library).find((job) => job.state === 'ready-for-review'), 60_000);
  assert.equal(ready.faces?.framesWithFaces, 2);
  assert.equal(ready.tags?.framesDone, 3);
  assert.equal(ready.waitingFor, undefined);
  assert.match(daemon.output(), /the models are there now; continuing/);
  const events = await waitFor('two notifications', () => (hook.requests.length >= 2 ? hook.requests.map((request) => JSON.parse(request.body)) : false));
  assert.deepEqual(events.map((event) => event.events[0].kind), ['model-missing', 'ready-for-review']);
  assert.equal(events[0].message, 'run: celforge models fetch lbpcascade-animeface');
  assert.equal(events[1].title, 'Ready for review: Stills 01.m2ts');
  assert.match(events[1].message, /^3 frames kept of 36; 2 with faces, 3 tagged$/);
});

test('celforge faces and celforge tags --json on pictures: boxes with scores, tags with probabilities and each tagger\'s word', async (t) => {
  const { cli } = setup(t);
  const [sky, row0] = [clip.stills[0]!.file, clip.stills[1]!.file];
  const faces = await cli('faces', sky, row0, '--json');
  assert.equal(faces.code, 0, faces.stderr);
  const found = JSON.parse(faces.stdout);
  assert.deepEqual(found.map((entry: { passed: boolean }) => entry.passed), [false, true]);
  assert.ok(found[1].faces.length >= 2);
  assert.deepEqual(Object.keys(found[1].faces[0]).sort(), ['height', 'score', 'width', 'x', 'y']);

  const tags = await cli('tags', sky, row0, '--json');
  assert.equal(tags.code, 0, tags.stderr);
  const [skyTags, rowTags] = JSON.parse(tags.stdout);
  const blueSky = skyTags.tags.find((tag: { tag: string }) => tag.tag === 'blue_sky');
  assert.equal(blueSky.text, 'blue sky');
  assert.ok(Math.abs(blueSky.probability - (blueSky.taggers['tagger-a'] + blueSky.taggers['tagger-b']) / 2) < 1e-6, 'the average of the two taggers');
  assert.ok(Math.abs(blueSky.taggers['tagger-b'] - blueSky.taggers['tagger-a'] / 2) < 1e-3, 'tagger-b has half the weight');
  assert.equal(skyTags.faces, 0);
  assert.deepEqual(skyTags.gated.map((tag: { tag: string }) => tag.tag).sort(), ['1girl', 'solo']);
  assert.equal(rowTags.tags.find((tag: { tag: string }) => tag.tag === '1girl').source, 'face-gate');

  const ungated = JSON.parse((await cli('tags', sky, '--json', '--no-gate')).stdout);
  assert.equal(ungated[0].faces, null);
  assert.ok(ungated[0].tags.some((tag: { tag: string }) => tag.tag === '1girl'), 'without the gate the tagger\'s 1girl stays');

  const broken = path.join(path.dirname(sky), `not-a-picture-${process.pid}.png`);
  writeFileSync(broken, 'no picture here');
  t.after(() => rmSync(broken, { force: true }));
  const partly = await cli('tags', broken, row0, '--json');
  assert.equal(partly.code, 1);
  const [bad, good] = JSON.parse(partly.stdout);
  assert.match(bad.error, /not-a-picture-\d+\.png: cannot read this picture/);
  assert.ok(good.tags.length > 0, 'the readable picture is still tagged');
});

test('a YOLO detector with a free batch dimension runs batched in the stage', async (t) => {
  // Input 64x64; every picture (1280x720, letterboxed at scale 0.05) gets the same two boxes.
  const { library, cli } = setup(t, { faces: { detector: 'yolo', score: 0.5, iou: 0.5 } });
  writeModelFolder(path.dirname(library), {
    taggers: [{ id: 'tagger-a', blueSky: 1 }, { id: 'tagger-b', blueSky: 0.5 }], cascade: true,
    yolo: { size: 64, freeBatch: true, rows: [[32, 32, 8, 8, 0.9], [33, 32, 8, 8, 0.8], [10, 30, 4, 4, 0.3]] },
  });
  const result = await cli('process', clip.file);
  assert.equal(result.code, 0, result.stderr + result.stdout);
  const job = readJobs(library)[0]!;
  const faces = await readFaces(path.join(job.extract!.dir, 'faces.jsonl'));
  assert.deepEqual(faces.map((record) => record.faces.length), [1, 1, 1], 'the overlapping box is suppressed and the weak one dropped');
  // Centre (32, 32) in the input is the picture centre; 8 input pixels are 160 picture pixels.
  assert.deepEqual(faces[0]!.faces[0], { x: 560, y: 280, width: 160, height: 160, score: 0.9 });
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  assert.ok(catalog.tagsOf(faces[0]!.sha256).includes('solo'), 'one face: solo stays');
  assert.equal(catalog.count('1girl -crop:*'), 3);
});

test('faces and tags stopped after a batch (and a line cut short) resume to the same results as an uninterrupted run', async (t) => {
  const { library, configFile, cli } = setup(t, { inference: { batchSize: 1, workers: 1 } });
  assert.equal((await cli('process', clip.file)).code, 0);
  const finished = readJobs(library)[0]!;
  const facesFile = path.join(finished.extract!.dir, 'faces.jsonl');
  const reference = {
    faces: readFileSync(facesFile, 'utf8'),
    sidecars: (await readFaces(facesFile)).map((record) => readFileSync(path.join(library, record.file.replace(/\.png$/, '.txt')), 'utf8')),
  };
  const config = await loadConfig({ configPath: configFile });
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  const images = createImageWorkers(1);
  t.after(async () => {
    catalog.close();
    await images.close();
  });
  const hashes = (await readFaces(facesFile)).map((record) => record.sha256);
  const referenceSources = hashes.map((hash) => catalog.tagSources(hash));

  // Start both stages over from nothing recorded, as after a crash right after the catalog stage.
  rmSync(facesFile);
  for (const record of await readFrameMap(path.join(finished.extract!.dir, 'frame-map.jsonl'))) {
    if (record.file) rmSync(path.join(library, record.file.replace(/\.png$/, '.txt')), { force: true });
  }
  let job: Job = { ...structuredClone(finished), stage: 'faces', state: 'running' };
  delete job.faces;
  delete job.tags;
  const runUntilFirstSave = async (stage: Stage) => {
    const abort = new AbortController();
    const ports: StagePorts = {
      config: () => config, media: new MediaRepository(binaries), disk: realDiskSpace, catalog, images, models: new ModelCache(),
      log: pino({ level: 'silent' }), signal: abort.signal,
      save: async (change) => {
        change(job);
        abort.abort();
      },
    };
    return stage(structuredClone(job), ports);
  };
  const runToEnd = async (stage: Stage) => {
    const ports: StagePorts = {
      config: () => config, media: new MediaRepository(binaries), disk: realDiskSpace, catalog, images, models: new ModelCache(),
      log: pino({ level: 'silent' }), signal: new AbortController().signal, save: async (change) => change(job),
    };
    const result = await stage(structuredClone(job), ports);
    assert.equal(result.kind, 'done');
    if (result.kind === 'done') result.change?.(job);
  };

  assert.equal((await runUntilFirstSave(facesStage)).kind, 'interrupted');
  assert.equal((job as Job).faces?.framesDone, 1);
  appendFileSync(facesFile, '{"frame":12,"file":"cut sh');
  await runToEnd(facesStage);
  assert.equal(readFileSync(facesFile, 'utf8'), reference.faces, 'faces.jsonl as in the uninterrupted run');

  job = { ...job, stage: 'tags' };
  assert.equal((await runUntilFirstSave(tagsStage)).kind, 'interrupted');
  assert.equal((job as Job).tags?.framesDone, 1);
  await runToEnd(tagsStage);
  assert.equal((job as Job).tags?.framesDone, 3, "every kept frame tagged");
  assert.deepEqual(hashes.map((hash) => catalog.tagSources(hash)), referenceSources, 'every tag once, from the same sources');
  const records = await readFaces(facesFile);
  assert.deepEqual(records.map((record) => readFileSync(path.join(library, record.file.replace(/\.png$/, '.txt')), 'utf8')), reference.sidecars);
});
