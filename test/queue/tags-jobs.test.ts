/**
 * Tagging and CCIP features as queue jobs against a real redis-server (one
 * for the file, emptied after each test), with real ONNX Runtime sessions on
 * the generated stand-in taggers and CCIP models, on copies of one
 * `celforge process` run of a real clip (LBP cascade faces, crops, the
 * characters stage, two taggers): the coordinator's tags stage with a tags
 * worker in this process ends with the same catalog tags (every source),
 * captions and ledger counts as `celforge process`; results found again
 * after a restart are recorded once, without the workers running again, and
 * results left for other settings are done again, not recorded; the
 * coordinator's characters stage with a CCIP worker stores the same feature
 * bytes and makes the same clusters; a worker process SIGKILLed mid-tagging
 * has its stalled job taken over, with the same catalog and captions (and
 * `status` shows the tags batch it held); a
 * worker without the taggers makes the video wait, naming them; and the
 * whole through `celforge start` and two `celforge worker` processes on two
 * clips (the same pictures in other bytes): each video's frame map, tags,
 * captions, features and clusters as `celforge process` gives them.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { resolveFfmpegBinaries } from '../../src/adapters/ffmpeg-binaries.ts';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { openJobQueue, QUEUE_NAMES, startQueueWorker, type JobQueue, type QueueJobContext, type WorkerSettings } from '../../src/adapters/job-queue.ts';
import { CharacterClusters } from '../../src/catalog/character-clusters.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import type { CcipJobData, CcipJobResult } from '../../src/daemon/ccip-job.ts';
import { ccipJobRunner } from '../../src/daemon/ccip-worker.ts';
import type { Job } from '../../src/daemon/job.ts';
import { readQueueStatus } from '../../src/daemon/queue-status.ts';
import { remoteCharactersStage } from '../../src/daemon/remote-ccip.ts';
import { remoteTagsStage } from '../../src/daemon/remote-tags.ts';
import { tagsQueueId, type TagsJobData, type TagsJobResult } from '../../src/daemon/tags-job.ts';
import { tagsJobRunner } from '../../src/daemon/tags-worker.ts';
import { videoLayoutOf } from '../../src/daemon/library-paths.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { keptFrames } from '../../src/stages/kept-frames.ts';
import type { Stage, StagePorts } from '../../src/stages/stage.ts';
import { writeCcipModels } from '../fixtures/ccip-models.ts';
import { makeFacesClip } from '../fixtures/faces-clip.ts';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { REDIS_SERVER, RedisServer } from '../fixtures/redis-server.ts';
import { startWorkerProcess } from '../fixtures/worker-process.ts';
import { requireProgram } from '../fixtures/required-program.ts';
import { readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

const silent = pino({ level: 'silent' });
const WORKER: WorkerSettings = { concurrency: 1, lockMs: 2_000, stalledMs: 500, maxStalled: 1, gpu: null, heartbeatMs: 1000 };
const CCIP = 'ccip-test';
const TAGGERS = ['tagger-a', 'tagger-b'];
const images = createImageWorkers(1);
after(() => images.close());

/** One redis-server for the file; each test empties it when it ends. */
const redis = existsSync(REDIS_SERVER) ? await RedisServer.launch() : null;
after(() => redis?.close());

/** The taggers of model-folder.ts, the LBP cascade and the generated CCIP models (64-pixel input keeps the runs short). */
function writeModels(dir: string) {
  const models = writeModelFolder(dir, { taggers: [{ id: TAGGERS[0]!, blueSky: 1 }, { id: TAGGERS[1]!, blueSky: 0.5 }], cascade: true });
  writeCcipModels(path.join(models.dir, CCIP), { size: 64 });
  const manifest = JSON.parse(readFileSync(models.manifest, 'utf8')) as { models: unknown[] };
  manifest.models.push({
    id: CCIP, kind: 'ccip', licence: 'test', homepage: 'http://127.0.0.1/',
    input: { size: 64, layout: 'NCHW', channels: 'RGB', range: 'CLIP-normalised', pad: 'none' },
    files: ['model_feat.onnx', 'model_metrics.onnx', 'metrics.json'].map((name) => ({ name, url: `http://127.0.0.1:9/${CCIP}/${name}`, sha256: null, size: null })),
  });
  writeFileSync(models.manifest, JSON.stringify(manifest));
  return models;
}

/** What the tags and characters stages leave: every image's tags by source, the captions, the features and the clusters. */
function snapshot(library: string) {
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  try {
    const hashes = catalog.database.prepare('SELECT hash FROM images ORDER BY id').pluck().all() as string[];
    const features = catalog.database.prepare('SELECT i.hash, f.model, hex(f.feature) AS feature FROM crop_features f JOIN images i ON i.id = f.image_id ORDER BY i.id').all();
    const clusters = new CharacterClusters(catalog);
    const series = clusters.seriesList();
    return {
      tags: Object.fromEntries(hashes.map((hash) => [hash, catalog.tagSources(hash)])),
      captions: captionsOf(library),
      features,
      clusters: series.flatMap((name) => clusters.clusters(name, 0).map((cluster) => clusters.members(cluster.id).map((member) => member.hash).sort())).sort(),
    };
  } finally {
    catalog.close();
  }
}

function captionsOf(library: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const entry of readdirSync(library, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.txt')) {
      const file = path.join(entry.parentPath, entry.name);
      found[path.relative(library, file)] = readFileSync(file, 'utf8');
    }
  }
  return found;
}

/** `celforge process` once: its library is the reference every test starts a copy of. */
const reference = await (async () => {
  const clip = await makeFacesClip();
  const dir = tempDir({ after: (fn: () => void) => void after(fn) });
  const models = writeModels(dir);
  const configFile = writeConfig(dir, {
    library: './library', disk: { reserve: 0 }, models: { ...models, autoFetch: false }, faces: { detector: 'cascade' }, crops: { minSize: 64 },
    characters: { model: CCIP, method: 'dbscan' }, tags: { taggers: TAGGERS }, inference: { batchSize: 2, workers: 1 }, queue: { batchFrames: 2 },
  });
  const result = await runCli(['--config', configFile, 'process', clip.file], { cwd: dir });
  assert.equal(result.code, 0, result.stderr + result.stdout);
  const library = path.join(dir, 'library');
  const job = readJobs(library)[0]!;
  assert.equal(job.state, 'ready-for-review');
  return { dir, configFile, job, ...snapshot(library) };
})();

/** The file's redis-server for one test: the test's clients close when it ends, then the server is emptied for the next. */
function useRedis(t: TestContext) {
  if (!redis) {
    requireProgram(t, REDIS_SERVER, "install Debian's redis-server package (apt-get install redis-server), as .ci/run does, or set CELFORGE_REDIS_SERVER; the queue test is skipped");
    return null;
  }
  const cleanups: (() => unknown)[] = [];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    const client = new Redis(redis.url);
    await client.flushall();
    await client.quit();
  });
  return { url: redis.url, beforeClose: (cleanup: () => unknown) => void cleanups.push(cleanup) };
}
type TestRedis = NonNullable<ReturnType<typeof useRedis>>;

/** A copy of the reference's folder with the stage's results taken away: tags and captions, or features and clusters. */
async function coordinatorCopy(t: TestContext, stage: 'tags' | 'characters') {
  const dir = tempDir(t);
  cpSync(reference.dir, dir, { recursive: true });
  const configFile = path.join(dir, path.basename(reference.configFile));
  const config: Config = await loadConfig({ configPath: configFile, cwd: dir });
  const catalog = Catalog.open(path.join(config.library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  const job: Job = { ...structuredClone(reference.job), stage, state: 'queued' };
  if (stage === 'tags') {
    catalog.batch(() => {
      for (const hash of Object.keys(reference.tags)) for (const source of ['tagger:ensemble', 'face-gate', 'composition'] as const) catalog.setSourceTags(hash, source, []);
    });
    for (const file of Object.keys(reference.captions)) rmSync(path.join(config.library, file));
    delete job.tags;
  } else {
    catalog.database.exec('DELETE FROM crop_features; DELETE FROM moved_out; DELETE FROM cluster_members; DELETE FROM character_clusters;');
    delete job.characters;
  }
  return { dir, config, catalog, job };
}

/** The stage as the pipeline runs it, on a job held in memory: saves and the result's change applied to it; each new tags state kept. */
async function runStage(stage: Stage, job: Job, config: Config, catalog: Catalog, states: Job['tags'][] = []) {
  const ports = {
    config: () => config, catalog, images, models: new ModelCache(), log: silent, signal: new AbortController().signal,
    save: async (change: (target: Job) => void) => {
      change(job);
      if (job.tags && JSON.stringify(job.tags) !== JSON.stringify(states.at(-1))) states.push(structuredClone(job.tags));
    },
  } as Partial<StagePorts> as StagePorts;
  const outcome = await stage(structuredClone(job), ports);
  if (outcome.kind !== 'interrupted') outcome.change?.(job);
  return outcome;
}

async function startWorker<Data, Result>(
  server: TestRedis, name: string, runner: (queueJob: QueueJobContext<Data>) => Promise<Result>, onJob = () => undefined as void,
) {
  const worker = await startQueueWorker<Data, Result>(server.url, name, (queueJob) => {
    onJob();
    return runner(queueJob);
  }, WORKER, () => undefined);
  server.beforeClose(() => worker.close(true));
  return worker;
}

function workerPorts(config: Config) {
  return { config: () => config, images, models: new ModelCache(), log: silent, onLibraryMissing: (error: Error) => assert.fail(error.message) };
}

async function openQueue<Data, Result>(server: TestRedis, name: string): Promise<JobQueue<Data, Result>> {
  const queue = await openJobQueue<Data, Result>(server.url, name, { attempts: 2, backoffMs: 100 });
  server.beforeClose(() => queue.close());
  return queue;
}

function assertLikeReference(library: string) {
  const now = snapshot(library);
  assert.deepEqual(now.tags, reference.tags, 'every image\'s tags, by source, as `celforge process` left them');
  assert.deepEqual(now.captions, reference.captions, 'the captions byte for byte');
  return now;
}

test('tags on a worker give what `celforge process` gives; results found again after a restart are recorded once, not computed again; results for other settings are done again', async (t) => {
  const server = useRedis(t);
  if (!server) return;
  const { config, catalog, job } = await coordinatorCopy(t, 'tags');
  assert.notDeepEqual(snapshot(config.library).tags, reference.tags, 'the copy starts without tags');
  const queue = await openQueue<TagsJobData, TagsJobResult>(server, QUEUE_NAMES.tags);
  let computed = 0;
  await startWorker(server, QUEUE_NAMES.tags, tagsJobRunner(workerPorts(config)), () => void (computed += 1));

  // A coordinator that dies after recording each batch, before removing it: its queue keeps every result.
  const keeping = { ...queue, remove: async () => undefined };
  const states: Job['tags'][] = [];
  assert.equal((await runStage(remoteTagsStage(keeping, 20), job, config, catalog, states)).kind, 'done');
  assertLikeReference(config.library);
  assert.deepEqual(job.tags, reference.job.tags);
  assert.equal(job.state, 'running');
  const frames = reference.job.extract!.kept;
  const crops = reference.job.tags!.cropsDone!;
  assert.ok(crops >= 2, `the clip has crops to tag (${crops})`);
  const batches = Math.ceil(frames / 2) + Math.ceil(crops / 2);
  assert.equal(computed, batches, `${frames} kept frames and ${crops} crops in batches of two`);
  assert.equal(states.length, batches, 'one recorded state per batch');
  const first = tagsQueueId(job, 'frame', 0);
  assert.equal((await queue.find(first))?.state, 'completed');

  // Restarted with the first batch recorded: every result is found again; only what job.tags has not counted is recorded.
  job.tags = states[0];
  const firstCaptions = Object.keys(reference.captions).filter((file) => file.includes('frames')).sort().slice(0, 2);
  assert.equal(firstCaptions.length, 2);
  for (const file of firstCaptions) rmSync(path.join(config.library, file));
  assert.equal((await runStage(remoteTagsStage(keeping, 20), job, config, catalog)).kind, 'done');
  assert.deepEqual(job.tags, reference.job.tags, 'counted once');
  assert.equal(computed, batches, 'the workers did not run again');
  const after = captionsOf(config.library);
  for (const file of firstCaptions) assert.equal(after[file], undefined, `${file}: the first batch is not recorded again`);
  assert.deepEqual(Object.keys(after).length, Object.keys(reference.captions).length - 2);

  // Restarted so again with other settings: the results left in the queue are for other work, so they are done again, not recorded.
  const firstBatch = new Set((await keptFrames(videoLayoutOf(job, config.library))).slice(0, 2).map((frame) => frame.sha256!));
  assert.ok([...firstBatch].every((hash) => /^[0-9a-f]{64}$/.test(hash)) && firstBatch.size === 2, 'the frame map has the first frames\' hashes');
  const withLongHair = () => Object.keys(reference.tags).filter((hash) => catalog.tagSources(hash).some((row) => row.tag === 'long_hair' && row.source === 'tagger:ensemble'));
  assert.ok(withLongHair().filter((hash) => !firstBatch.has(hash)).length >= 2, 'the taggers say long_hair beyond the first batch');
  job.tags = states[0];
  const blacklisted: Config = { ...config, tags: { ...config.tags, blacklist: ['long_hair'] } };
  assert.equal((await runStage(remoteTagsStage(queue, 20), job, blacklisted, catalog)).kind, 'done');
  assert.equal(computed, 2 * batches - 1, 'every batch after the first done again');
  assert.deepEqual(withLongHair().filter((hash) => !firstBatch.has(hash)), [], 'recorded with the new settings');
  assert.deepEqual(job.tags, reference.job.tags);
  assert.deepEqual(await queue.depths(), { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 }, 'recorded results leave the queue');
});

test('CCIP features on a worker: the same feature bytes, clusters and tags as `celforge process`', async (t) => {
  const server = useRedis(t);
  if (!server) return;
  const { config, catalog, job } = await coordinatorCopy(t, 'characters');
  assert.deepEqual(snapshot(config.library).features, []);
  const queue = await openQueue<CcipJobData, CcipJobResult>(server, QUEUE_NAMES.ccip);
  let computed = 0;
  await startWorker(server, QUEUE_NAMES.ccip, ccipJobRunner(workerPorts(config)), () => void (computed += 1));
  assert.equal((await runStage(remoteCharactersStage(queue, 20), job, config, catalog)).kind, 'done');
  const now = assertLikeReference(config.library);
  assert.ok(reference.features.length >= 2, 'the reference stored features');
  assert.deepEqual(now.features, reference.features, 'the stored float32 bytes, exactly');
  assert.ok(reference.clusters.length >= 1);
  assert.deepEqual(now.clusters, reference.clusters, 'the same clusters');
  assert.deepEqual(job.characters, reference.job.characters);
  assert.equal(computed, Math.ceil(reference.job.characters!.crops / 2));
  assert.deepEqual(await queue.depths(), { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 });
});

test('a worker SIGKILLed mid-tagging: another takes the stalled job over, and the catalog and captions are the same', async (t) => {
  const server = useRedis(t);
  if (!server) return;
  const { config, catalog, job } = await coordinatorCopy(t, 'tags');
  const queue = await openQueue<TagsJobData, TagsJobResult>(server, QUEUE_NAMES.tags);
  const running = runStage(remoteTagsStage(queue, 20), job, config, catalog);

  const stalling = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, '..', 'fixtures', 'stalling-batch-worker.ts'), server.url, QUEUE_NAMES.tags, '1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  stalling.stdout!.on('data', (chunk) => (output += chunk));
  stalling.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => stalling.on('exit', () => resolve()));
  t.after(() => void stalling.kill('SIGKILL'));
  const first = tagsQueueId(job, 'frame', 0);
  await waitFor('the first batch taken by the stalling worker', () => output.includes(`taken ${first}`) || (stalling.exitCode !== null && assert.fail(output)), 30_000);
  assert.deepEqual((await queue.find(first))?.progress, { done: 0, total: 1 }, 'the job is mid-batch');
  const status = await readQueueStatus(server.url);
  assert.deepEqual(Object.keys(status.queues ?? {}).sort(), ['ccip', 'extract', 'faces', 'tags'], `status covers every queue${status.error ? ` (${status.error})` : ''}`);
  assert.equal(status.queues!.tags.active, 1);
  const holder = status.workers!.find((each) => each.job === first);
  assert.equal(holder?.video, job.source, 'status names the video of the tags batch the worker runs');
  stalling.kill('SIGKILL');
  await exited;

  await startWorker(server, QUEUE_NAMES.tags, tagsJobRunner(workerPorts(config)));
  assert.equal((await running).kind, 'done');
  assertLikeReference(config.library);
  assert.deepEqual(job.tags, reference.job.tags);
});

test('a worker without the taggers: the video waits for them, naming them; nothing is recorded', async (t) => {
  const server = useRedis(t);
  if (!server) return;
  const { dir, config, catalog, job } = await coordinatorCopy(t, 'tags');
  const queue = await openQueue<TagsJobData, TagsJobResult>(server, QUEUE_NAMES.tags);
  // The same manifest, an empty models folder: nothing fetched on that machine.
  const empty = path.join(dir, 'worker', 'models');
  mkdirSync(empty, { recursive: true });
  await startWorker(server, QUEUE_NAMES.tags, tagsJobRunner(workerPorts({ ...config, models: { ...config.models, dir: empty } })));
  const outcome = await runStage(remoteTagsStage(queue, 20), job, config, catalog);
  assert.equal(outcome.kind, 'wait');
  assert.equal(outcome.kind === 'wait' && outcome.state, 'waiting-for-model');
  assert.deepEqual(job.waitingFor?.models, TAGGERS);
  assert.match(job.waitingFor!.reason, /models tagger-a, tagger-b are not in .*worker.models; run "celforge models fetch tagger-a tagger-b"/);
  assert.equal(job.tags, undefined);
  assert.deepEqual(captionsOf(config.library), {});
  assert.equal(await queue.find(tagsQueueId(job, 'frame', 0)), null, 'the wait is not kept as a result');
});

test('celforge start as coordinator and two celforge worker processes, two clips: frame maps, catalog and captions as `celforge process` gives them', async (t) => {
  const server = useRedis(t);
  if (!server) return;
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'inbox', 'Show'), { recursive: true });
  const { models, crops, characters, tags, faces, inference } = await loadConfig({ configPath: reference.configFile, cwd: reference.dir });
  const configFile = writeConfig(dir, {
    inbox: './inbox', library: './library', disk: { reserve: 0 }, watch: { settleSeconds: 0.1 }, notify: { desktop: false },
    models: { dir: models.dir, manifest: models.manifest, autoFetch: false }, faces: { detector: faces.detector }, crops: { minSize: crops.minSize },
    characters: { model: characters.model, method: characters.method }, tags: { taggers: tags.taggers }, inference: { batchSize: inference.batchSize, workers: 1 },
    queue: { redis: server.url, batchFrames: 2, lockSeconds: 4, stalledSeconds: 2 },
  });
  const daemon = startDaemon(configFile);
  server.beforeClose(() => stopDaemon(daemon));
  const workers = [startWorkerProcess(server, configFile), startWorkerProcess(server, configFile)];
  const clip = (await makeFacesClip()).file;
  cpSync(clip, path.join(dir, 'inbox', 'Show', 'Show 01.m2ts'));
  // The second clip: the same pictures in other bytes (timestamps moved), so another video with the reference's results.
  execFileSync(resolveFfmpegBinaries().ffmpeg, ['-v', 'error', '-i', clip, '-map', '0', '-c', 'copy', '-mpegts_m2ts_mode', '1', '-output_ts_offset', '30', path.join(dir, 'Show 02.m2ts')]);
  renameSync(path.join(dir, 'Show 02.m2ts'), path.join(dir, 'inbox', 'Show', 'Show 02.m2ts'));

  const library = path.join(dir, 'library');
  const jobs = await waitFor('both jobs ready for review', () => {
    const found = readJobs(library);
    const failed = found.find((job) => job.state === 'failed');
    if (failed) assert.fail(`${failed.error?.message}\n${daemon.output()}`);
    return found.length === 2 && found.every((job) => job.state === 'ready-for-review') ? found : undefined;
  }, 180_000, 200);
  const frameMap = (folder: string) => readFileSync(path.join(folder, 'frame-map.jsonl'), 'utf8').split('\n').filter(Boolean)
    .map((line) => JSON.parse(line) as { file: string | null; preview: string | null })
    .map((record) => ({ ...record, file: record.file && frameName(record.file), preview: record.preview && frameName(record.preview) }));
  // Named after the series and episode ("Show_01_000004.jpg"): the frame number and kind are what must agree.
  function frameName(file: string) {
    return path.basename(file).replace(/^.*_(\d+\.\w+)$/, '$1');
  }
  for (const job of jobs) {
    assert.deepEqual(frameMap(job.extract!.dir), frameMap(reference.job.extract!.dir), `${job.source}: the frame map, file names aside`);
    assert.equal(job.tags!.framesDone, reference.job.tags!.framesDone, job.source);
  }
  // The same crops twice are one catalog image each, cut and tagged once, for whichever video came to them first.
  const cropsTagged = reference.job.tags!.cropsDone ?? 0;
  assert.ok(cropsTagged > 0);
  assert.equal((jobs[0]!.tags!.cropsDone ?? 0) + (jobs[1]!.tags!.cropsDone ?? 0), cropsTagged);
  assert.equal(Object.keys(reference.captions).length, reference.job.tags!.framesDone + cropsTagged, 'a caption per kept frame and crop');
  assert.equal(Object.keys(captionsOf(library)).length, 2 * reference.job.tags!.framesDone + cropsTagged, "both videos' frames, the crops once");
  assert.equal(daemon.output().match(/tagging queued for the workers/g)?.length, 2);
  assert.equal(daemon.output().match(/CCIP features queued for the workers/g)?.length, 1, 'the crops have their features once');
  for (const worker of workers) assert.match(worker.output(), /CCIP feature and tagging batches/);
  // Another series and episode (pipeline tags, caption text, folders): the pictures' bytes, the taggers' tags, the features and clusters are the same.
  const now = snapshot(library);
  const taggers = (all: typeof reference.tags) => Object.fromEntries(Object.entries(all).map(([hash, rows]) => [hash, rows.filter((row) => ['tagger:ensemble', 'face-gate', 'composition'].includes(row.source))]));
  assert.deepEqual(taggers(now.tags), taggers(reference.tags));
  assert.deepEqual(now.features, reference.features);
  assert.deepEqual(now.clusters, reference.clusters);
});
