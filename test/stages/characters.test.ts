/**
 * The characters stage on a small library written here as the crops stage
 * leaves one (crop PNGs of generated characters, crops.jsonl, the crops and
 * their frames in the catalog), with real ONNX Runtime sessions on
 * generated CCIP models whose features follow the characters' colours (so
 * the right clusters are known): clusters as designed, a name from reference
 * pictures on the crops and their frames, a second episode joining the
 * clusters, a person's name and "not this one" surviving re-runs, a restart
 * that does not cluster twice, the conflict flag, a missing model that makes
 * the job wait. Then `celforge process` on a real clip (the LBP cascade's
 * faces, the crops stage's crops) and `celforge search "character:<name>"`
 * after naming a cluster.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { CropsWriter, readCrops, type CropRecord } from '../../src/adapters/crops-file.ts';
import { realDiskSpace } from '../../src/adapters/disk.ts';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { MediaRepository } from '../../src/adapters/media.ts';
import { CharacterClusters } from '../../src/catalog/character-clusters.ts';
import { CONFLICT_TAG, refreshCharacterTags } from '../../src/catalog/character-tags.ts';
import { CropFeatures } from '../../src/catalog/crop-features.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import type { Job } from '../../src/daemon/job.ts';
import { videoLayout } from '../../src/daemon/library-paths.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { loadCcipModel } from '../../src/inference/ccip.ts';
import { charactersStage } from '../../src/stages/characters/characters-stage.ts';
import { clusterSeries } from '../../src/stages/characters/series-clusters.ts';
import { chooseName, readReferences } from '../../src/stages/characters/reference-names.ts';
import type { StagePorts, StageResult } from '../../src/stages/stage.ts';
import { tagsStage } from '../../src/stages/tags/tags-stage.ts';
import { binaries } from '../fixtures/clips.ts';
import { CHARACTERS, characterCrop, writeCcipModels } from '../fixtures/ccip-models.ts';
import { makeFacesClip } from '../fixtures/faces-clip.ts';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { writeTaggerModel } from '../fixtures/onnx-models.ts';
import { readJobs, runCli, tempDir, writeConfig } from '../helpers.ts';

const SERIES = 'Show';
const MODEL = 'ccip-test';

interface Crop {
  hash: string;
  frameHash: string;
  /** Index into CHARACTERS. */
  character: number;
  file: string;
  frameFile: string;
}

/**
 * The models folder and manifest: the generated CCIP models as MODEL, an
 * entry `ccip-missing` that is never fetched, the LBP cascade, and a tagger
 * `tagger-wd14` that names the character `someone_else` on every picture.
 */
function writeModels(dir: string): { dir: string; manifest: string } {
  const models = writeModelFolder(dir, { taggers: [{ id: 'tagger-wd14', blueSky: 1 }], cascade: true });
  // selected_tags.csv categories: 0 general, 4 character (src/stages/tags/wd14.ts).
  writeTaggerModel(path.join(models.dir, 'tagger-wd14', 'model.onnx'), { size: 32, tags: [{ blue: 0, green: 0, red: 0, bias: 1 }, { blue: 0, green: 0, red: 0, bias: 1 }] });
  writeFileSync(path.join(models.dir, 'tagger-wd14', 'selected_tags.csv'), 'tag_id,name,category,count\n0,1girl,0,100\n1,someone_else,4,100\n');
  // A 64-pixel input keeps the runs short; the contract is the same (the input size is read from the model).
  writeCcipModels(path.join(models.dir, MODEL), { size: 64 });
  const manifest = JSON.parse(readFileSync(models.manifest, 'utf8')) as { models: unknown[] };
  manifest.models.push(...[MODEL, 'ccip-missing'].map((id) => ({
    id, kind: 'ccip', licence: 'test', homepage: 'http://127.0.0.1/',
    input: { size: 64, layout: 'NCHW', channels: 'RGB', range: 'CLIP-normalised', pad: 'none' },
    files: ['model_feat.onnx', 'model_metrics.onnx', 'metrics.json'].map((name) => ({ name, url: `http://127.0.0.1:9/${id}/${name}`, sha256: null, size: null })),
  })));
  writeFileSync(models.manifest, JSON.stringify(manifest));
  return models;
}

async function setup(t: Parameters<typeof tempDir>[0], characters: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  const modelFolder = writeModels(dir);
  const configFile = writeConfig(dir, {
    library: './library', models: { ...modelFolder, autoFetch: false },
    faces: { detector: 'cascade' }, characters: { model: MODEL, ...characters }, inference: { batchSize: 4, workers: 1 },
  });
  const config = await loadConfig({ configPath: configFile });
  const catalog = Catalog.open(path.join(config.library, 'catalog.sqlite'));
  const images = createImageWorkers(1);
  const models = new ModelCache();
  t.after(async () => {
    catalog.close();
    await images.close();
  });
  const ports = (job: Job, options: { abortAtSave?: boolean } = {}): StagePorts => {
    const abort = new AbortController();
    return {
      config: () => config, media: new MediaRepository(binaries), disk: realDiskSpace, catalog, images, models,
      log: pino({ level: 'silent' }), signal: abort.signal,
      save: async (change) => {
        change(job);
        if (options.abortAtSave) abort.abort();
      },
    };
  };
  const run = async (job: Job, options: { abortAtSave?: boolean } = {}): Promise<StageResult> => {
    const result = await charactersStage(structuredClone(job), ports(job, options));
    if (result.kind !== 'interrupted') result.change?.(job);
    return result;
  };
  const clusters = new CharacterClusters(catalog);
  const found = (query: string) => catalog.search(query).map((image) => image.hash).sort();
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  return { config, catalog, clusters, run, found, cli };
}

/**
 * Writes one episode as the crops stage leaves it: for each entry of
 * `cast` (a character and a number of crops), that many frames, each with
 * one upper-body crop of that character.
 */
async function writeEpisode(config: Config, catalog: Catalog, episode: string, cast: [number, number][], seed = 0): Promise<{ job: Job; crops: Crop[] }> {
  const layout = videoLayout(config.library, SERIES, episode);
  mkdirSync(path.join(config.library, layout.dir), { recursive: true });
  const writer = new CropsWriter(layout.crops);
  const crops: Crop[] = [];
  let frame = 0;
  for (const [character, count] of cast) {
    for (let k = 0; k < count; k += 1) {
      frame += 1;
      const frameFile = layout.keptFile(1, frame);
      const frameHash = createHash('sha256').update(`${episode}/${frame}`).digest('hex');
      catalog.addImage({ hash: frameHash, path: frameFile, size: 1, width: 1920, height: 1080, series: SERIES, episode, scene: 1, frame, source: 'show.m2ts' }, [`series:${SERIES}`], 'pipeline');
      const bytes = await characterCrop(CHARACTERS[character]!, seed + frame * 31 + character);
      const file = layout.cropFile('upper_body', 1, frame, 0);
      mkdirSync(path.dirname(path.join(config.library, file)), { recursive: true });
      writeFileSync(path.join(config.library, file), bytes);
      const hash = createHash('sha256').update(bytes).digest('hex');
      catalog.addImage({
        hash, path: file, size: bytes.length, width: 200, height: 220, series: SERIES, episode, scene: 1, frame, source: 'show.m2ts',
        origin: { hash: frameHash, box: [100, 100, 80, 80] },
      }, [`series:${SERIES}`], 'pipeline');
      catalog.setSourceTags(hash, 'crops', ['crop:upper_body']);
      const record: CropRecord = {
        frame, scene: 1, frameFile, frameSha256: frameHash, faceIndex: 0, kind: 'upper_body', box: [100, 100, 80, 80],
        rect: [0, 0, 200, 220], file, sha256: hash, width: 200, height: 220,
      };
      await writer.append([record]);
      crops.push({ hash, frameHash, character, file, frameFile });
    }
  }
  await writer.close();
  const now = new Date().toISOString();
  const job: Job = {
    id: `job-${episode}`, source: `/inbox/${SERIES} ${episode}.m2ts`, seenAs: [], sizeBytes: 1, series: SERIES, episode,
    stage: 'characters', state: 'running', progress: null, timings: {}, createdAt: now, updatedAt: now,
  };
  return { job, crops };
}

async function writeReferences(config: Config, name: string, character: number, count: number): Promise<void> {
  const dir = path.join(config.library, 'characters', SERIES, name);
  mkdirSync(dir, { recursive: true });
  for (let k = 0; k < count; k += 1) writeFileSync(path.join(dir, `ref-${k}.png`), await characterCrop(CHARACTERS[character]!, 5000 + k));
}

/** The clusters as sets of crop hashes, each keyed by the characters of its crops. */
function clustersByCharacter(clusters: CharacterClusters, crops: readonly Crop[]): Map<number, { id: number; name: string | null; hashes: string[] }> {
  const characterOf = new Map(crops.map((crop) => [crop.hash, crop.character]));
  const result = new Map<number, { id: number; name: string | null; hashes: string[] }>();
  for (const cluster of clusters.clusters(SERIES)) {
    const hashes = clusters.members(cluster.id).map((member) => member.hash).sort();
    const characters = new Set(hashes.map((hash) => characterOf.get(hash)));
    assert.equal(characters.size, 1, `cluster ${cluster.id} holds one character (${[...characters].join(', ')})`);
    result.set([...characters][0]!, { id: cluster.id, name: cluster.name, hashes });
  }
  return result;
}

const hashesOf = (crops: readonly Crop[], character: number) => crops.filter((crop) => crop.character === character).map((crop) => crop.hash).sort();

test('an episode: one cluster per character, a stray crop left out, a reference picture names its cluster, its frames and crops carry the name', async (t) => {
  const { config, catalog, clusters, run, found } = await setup(t);
  const { job, crops } = await writeEpisode(config, catalog, '01', [[0, 6], [1, 6], [2, 5], [3, 1]]);
  await writeReferences(config, 'Red Girl', 0, 2);

  const result = await run(job);
  assert.equal(result.kind, 'done');
  assert.deepEqual(job.characters, { model: MODEL, crops: 18, cropsDone: 18, clusters: 3 });
  const byCharacter = clustersByCharacter(clusters, crops);
  assert.deepEqual([...byCharacter.keys()].sort(), [0, 1, 2], 'the stray (one crop of its character) is in no cluster');
  for (const character of [0, 1, 2]) assert.deepEqual(byCharacter.get(character)!.hashes, hashesOf(crops, character));
  assert.equal(byCharacter.get(0)!.name, 'red_girl');
  assert.equal(byCharacter.get(1)!.name, null, 'no reference: unnamed');

  const red = crops.filter((crop) => crop.character === 0);
  assert.deepEqual(found('character:red_girl'), [...red.map((crop) => crop.hash), ...red.map((crop) => crop.frameHash)].sort());
  assert.ok(catalog.tagSources(red[0]!.hash).some(({ tag, source }) => tag === 'character:red_girl' && source === 'ccip'));

  // A tagger that names another character on a crop: flagged for review at the next run (the tags stage re-derives the same).
  catalog.setSourceTags(red[1]!.hash, 'tagger:ensemble', ['character:someone_else']);
  assert.equal((await run(job)).kind, 'done');
  assert.deepEqual(found(CONFLICT_TAG), [red[1]!.hash]);
  assert.equal(clusters.clusters(SERIES).length, 3, 'the re-run made no cluster');
});

test("a second episode joins the clusters; a person's name and a crop moved out survive; a restart does not cluster twice", async (t) => {
  // DBSCAN (eps = the threshold): every crop of a character is within it of the others, so each joins its cluster;
  // OPTICS (the first test) may leave a crop at a cluster's edge out.
  const { config, catalog, clusters, run, found } = await setup(t, { method: 'dbscan' });
  const first = await writeEpisode(config, catalog, '01', [[0, 6], [1, 6]]);
  assert.equal((await run(first.job)).kind, 'done');
  const before = clustersByCharacter(clusters, first.crops);
  clusters.name(before.get(1)!.id, 'Blue Boy');
  const movedOut = before.get(0)!.hashes[0]!;
  clusters.moveOut(before.get(0)!.id, [movedOut]);
  // A reference that looks like the person's "Blue Boy" does not rename it.
  await writeReferences(config, 'imposter', 1, 2);

  const second = await writeEpisode(config, catalog, '02', [[0, 3], [1, 3], [4, 6]], 100);
  const interrupted = await run(second.job, { abortAtSave: true });
  assert.equal(interrupted.kind, 'interrupted');
  assert.equal(second.job.characters?.cropsDone, 12, 'the features were kept');
  assert.equal(second.job.characters?.clusters, null, 'not clustered yet');
  assert.equal((await run(second.job)).kind, 'done');

  const all = [...first.crops, ...second.crops];
  const after = clustersByCharacter(clusters, all);
  assert.deepEqual([...after.keys()].sort(), [0, 1, 4]);
  assert.equal(after.get(0)!.id, before.get(0)!.id, 'the new crops joined the cluster that existed');
  assert.equal(after.get(1)!.id, before.get(1)!.id);
  assert.deepEqual(after.get(1)!.hashes, hashesOf(all, 1));
  assert.deepEqual(after.get(0)!.hashes, hashesOf(all, 0).filter((hash) => hash !== movedOut), 'the crop a person moved out stays out');
  assert.deepEqual(after.get(4)!.hashes, hashesOf(all, 4));
  assert.equal(after.get(1)!.name, 'blue_boy', "the person's name, not the reference's");
  assert.equal(found('character:blue_boy').length, 2 * 9, 'crops of both episodes and their frames');
  assert.equal(clusters.clusters(SERIES).length, 3);

  // Another run changes nothing.
  assert.equal((await run(second.job)).kind, 'done');
  assert.deepEqual(clustersByCharacter(clusters, all), after);
});

test('a person merging clusters while the stage decides: nothing fails, the crops find the merged cluster at the next run', async (t) => {
  const { config, catalog, clusters, run } = await setup(t, { method: 'dbscan' });
  const first = await writeEpisode(config, catalog, '01', [[0, 4], [1, 4]]);
  assert.equal((await run(first.job)).kind, 'done');
  const before = clustersByCharacter(clusters, first.crops);
  const second = await writeEpisode(config, catalog, '02', [[0, 2], [1, 2]], 100);
  assert.equal((await run(second.job, { abortAtSave: true })).kind, 'interrupted', 'features stored, not clustered');

  const model = await loadCcipModel(path.join(config.models.dir, MODEL), { providers: ['cpu'], batchSize: 4, log: pino({ level: 'silent' }) });
  t.after(() => model.close());
  let merged = false;
  const meddling = {
    ...model, differences: model.differences.bind(model), features: model.features.bind(model),
    crossDifferences: async (rows: readonly Float32Array[], columns: readonly Float32Array[]) => {
      if (!merged) clusters.merge(before.get(0)!.id, before.get(1)!.id);
      merged = true;
      return model.crossDifferences(rows, columns);
    },
  };
  const made = await clusterSeries(SERIES, meddling, new CropFeatures(catalog, model.id), clusters, catalog, 'dbscan');
  assert.equal(made.created, 0);
  assert.deepEqual(clusters.clusters(SERIES).map((cluster) => cluster.id), [before.get(0)!.id]);
  assert.deepEqual(clusters.assignments(SERIES).clusterOf.size, 8 + made.joined, 'the crops meant for the merged-away cluster wait');

  assert.equal((await run(second.job)).kind, 'done');
  assert.deepEqual(clusters.members(before.get(0)!.id).map((member) => member.hash).sort(), [...first.crops, ...second.crops].map((crop) => crop.hash).sort());
});

test('a missing model makes the job wait, unless the stage is off or there are no crops', async (t) => {
  const { config, catalog, clusters, run, cli } = await setup(t, { model: 'ccip-missing' });
  const { job } = await writeEpisode(config, catalog, '01', [[0, 2]]);
  const result = await run(job);
  assert.equal(result.kind, 'wait');
  assert.equal(result.kind === 'wait' && result.state, 'waiting-for-model');
  assert.deepEqual(job.waitingFor, { models: ['ccip-missing'], reason: job.waitingFor?.reason, command: 'celforge models fetch ccip-missing' });
  assert.equal(clusters.clusters(SERIES).length, 0);
  const doctor = await cli('doctor');
  assert.match(doctor.stdout, /^FAIL\s+model ccip-missing\s+.*missing: run "celforge models fetch ccip-missing"/m, 'doctor names it too');

  const off = await setup(t, { enabled: false });
  const episode = await writeEpisode(off.config, off.catalog, '01', [[0, 2]]);
  assert.equal((await off.run(episode.job)).kind, 'done');
  assert.equal(off.clusters.clusters(SERIES).length, 0);

  const empty = await setup(t, { model: 'ccip-missing' });
  const none = await writeEpisode(empty.config, empty.catalog, '01', []);
  assert.equal((await empty.run(none.job)).kind, 'done', 'no crops: no model needed');
});

test('reference names: a majority of the sample must match, the name most of it matches wins, unusable folder names are refused', async (t) => {
  const sets = [{ name: 'rin', files: ['a', 'b'] }, { name: 'saber', files: ['c'] }];
  // Rows: sampled crops; columns: rin's a, b, then saber's c. Threshold 0.2.
  const rows = (...cells: number[][]) => Float32Array.from(cells.flat());
  assert.equal(chooseName(rows([0.1, 0.9, 0.9], [0.9, 0.15, 0.9], [0.9, 0.9, 0.1], [0.9, 0.9, 0.9]), 4, sets, 0.2, 0.5), 'rin', '2 of 4 match rin (either picture), 1 saber');
  assert.equal(chooseName(rows([0.1, 0.9, 0.9], [0.9, 0.9, 0.9], [0.9, 0.9, 0.1], [0.9, 0.9, 0.9]), 4, sets, 0.2, 0.5), null, '1 of 4 is no majority');
  assert.equal(chooseName(rows([0.25, 0.9, 0.9]), 1, sets, 0.25, 0.5), 'rin', 'at the threshold is the same character, as ccip_same');

  const library = tempDir(t);
  for (const name of ['Rin', 'a, b', 'empty']) mkdirSync(path.join(library, 'characters', SERIES, name), { recursive: true });
  writeFileSync(path.join(library, 'characters', SERIES, 'Rin', 'x.png'), '');
  writeFileSync(path.join(library, 'characters', SERIES, 'Rin', 'notes.txt'), '');
  writeFileSync(path.join(library, 'characters', SERIES, 'a, b', 'x.png'), '');
  const { sets: found, refused } = await readReferences(library, SERIES);
  assert.deepEqual(found, [{ name: 'Rin', files: [path.join(library, 'characters', SERIES, 'Rin', 'x.png')] }]);
  assert.equal(refused.length, 1);
  assert.match(refused[0]!, /a, b: the name contains a comma/);
});

test('process: the pipeline runs characters between crops and tags on a real clip; a named cluster is found by search, and flagged where the tagger names another character', async (t) => {
  const clip = await makeFacesClip();
  const dir = tempDir(t);
  const models = writeModels(dir);
  const configFile = writeConfig(dir, {
    inbox: './inbox', library: './library', disk: { reserve: 0 }, models: { ...models, autoFetch: false },
    faces: { detector: 'cascade' }, crops: { minSize: 64 }, characters: { model: MODEL, method: 'dbscan' }, tags: { taggers: ['tagger-wd14'] },
    inference: { batchSize: 4, workers: 1 },
  });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  const result = await cli('process', clip.file);
  assert.equal(result.code, 0, result.stderr + result.stdout);
  const library = path.join(dir, 'library');
  const job = readJobs(library)[0]!;
  assert.equal(job.state, 'ready-for-review');
  assert.ok(job.timings.characters?.finishedAt && job.timings.crops!.finishedAt! <= job.timings.characters.startedAt, 'after crops');
  const crops = (await readCrops(path.join(job.extract!.dir, 'crops.jsonl')));
  assert.ok(crops.length >= 4, `crops were cut (${crops.length})`);
  assert.deepEqual(job.characters, { model: MODEL, crops: crops.length, cropsDone: crops.length, clusters: job.characters?.clusters });
  assert.match(result.stdout, new RegExp(`characters of ${crops.length} crops \\(${MODEL}\\), ${job.characters!.clusters} clusters in the series`));

  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  const clusters = new CharacterClusters(catalog);
  const list = clusters.clusters(job.series);
  assert.equal(list.length, job.characters!.clusters);
  assert.ok(list.length >= 1, 'crops of the same face (close-up and upper body) or look-alikes cluster');
  const members = clusters.members(list[0]!.id);
  const frames = [...new Set(members.map((member) => crops.find((crop) => crop.sha256 === member.hash)!.frameSha256))];
  const found = (query: string) => catalog.search(query).map((image) => image.hash).sort();
  assert.deepEqual(found(CONFLICT_TAG), [], 'the tagger names someone_else, no cluster names anyone yet');
  clusters.name(list[0]!.id, 'hero');
  const named = [...members.map((member) => member.hash), ...frames].sort();
  assert.deepEqual(found(CONFLICT_TAG), named, 'named hero where the tagger says someone_else: flagged');

  // The tags stage flags what it tags: without the tagger's word the flag goes, tagging again brings it back.
  catalog.batch(() => named.forEach((hash) => catalog.setSourceTags(hash, 'tagger:ensemble', [])));
  refreshCharacterTags(catalog, named);
  assert.deepEqual(found(CONFLICT_TAG), []);
  const config = await loadConfig({ configPath: configFile });
  const images = createImageWorkers(1);
  t.after(() => images.close());
  const retag: Job = { ...structuredClone(job), stage: 'tags', state: 'running' };
  delete retag.tags;
  const ports: StagePorts = {
    config: () => config, media: new MediaRepository(binaries), disk: realDiskSpace, catalog, images, models: new ModelCache(),
    log: pino({ level: 'silent' }), signal: new AbortController().signal, save: async () => undefined,
  };
  assert.equal((await tagsStage(retag, ports)).kind, 'done');
  assert.deepEqual(found(CONFLICT_TAG), named);
  catalog.close();

  const search = await cli('search', 'character:hero');
  assert.equal(search.code, 0, search.stderr);
  const files = [...members.map((member) => member.path), ...new Set(members.map((member) => crops.find((crop) => crop.sha256 === member.hash)!.frameFile))];
  assert.deepEqual(search.stdout.trim().split('\n').sort(), files.map((file) => path.join(library, file)).sort());
});
