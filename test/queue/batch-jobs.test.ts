/**
 * Face detection as queue jobs against a real redis-server: the coordinator's
 * faces stage with a faces worker in this process ends with the same
 * faces.jsonl, catalog tags and ledger state as `celforge process` on the
 * same clip (real LBP cascade, batches of two kept frames); results found
 * again in the queue (a coordinator that died before removing them) are
 * recorded once, without the workers running again; a worker without the
 * model makes the job wait for it; a batch that keeps failing fails the
 * video, and is tried afresh when it runs again; a worker process SIGKILLed
 * mid-batch has its stalled job taken over, with the same result; and the
 * whole through `celforge start` and a `celforge worker` process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test, type TestContext } from 'node:test';
import pino from 'pino';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { readFaces } from '../../src/adapters/faces-file.ts';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { openJobQueue, QUEUE_NAMES, startQueueWorker, type JobQueue, type WorkerSettings } from '../../src/adapters/job-queue.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { facesQueueId, type FacesJobData, type FacesJobResult } from '../../src/daemon/faces-job.ts';
import { facesJobRunner } from '../../src/daemon/faces-worker.ts';
import type { Job } from '../../src/daemon/job.ts';
import { remoteFacesStage } from '../../src/daemon/remote-faces.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import type { StagePorts } from '../../src/stages/stage.ts';
import { makeFacesClip } from '../fixtures/faces-clip.ts';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { RedisServer } from '../fixtures/redis-server.ts';
import { startWorkerProcess } from '../fixtures/worker-process.ts';
import { readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

const silent = pino({ level: 'silent' });
const WORKER: WorkerSettings = { concurrency: 1, lockMs: 2_000, stalledMs: 500, maxStalled: 1, gpu: null, heartbeatMs: 1000 };
const clip = await makeFacesClip();
const images = createImageWorkers(1);
after(() => images.close());

/** `celforge process` once: its library is the reference every test starts a copy of. */
const reference = await (async () => {
  const t = { after: (fn: () => void) => void after(fn) };
  const dir = tempDir(t);
  const models = writeModelFolder(dir, { taggers: [], cascade: true });
  const configFile = writeConfig(dir, {
    library: './library', disk: { reserve: 0 }, models, faces: { detector: 'cascade' },
    inference: { batchSize: 1, workers: 1 }, queue: { batchFrames: 2 },
  });
  const result = await runCli(['--config', configFile, 'process', clip.file], { cwd: dir });
  assert.equal(result.code, 0, result.stderr + result.stdout);
  const library = path.join(dir, 'library');
  const job = readJobs(library)[0]!;
  const facesFile = path.join(job.extract!.dir, 'faces.jsonl');
  return { dir, configFile, job, faces: readFileSync(facesFile, 'utf8'), relativeFaces: path.relative(dir, facesFile) };
})();

/** A copy of the reference's folder with no faces recorded: no faces.jsonl, no `faces` tags in the catalog. */
async function coordinatorCopy(t: TestContext) {
  const dir = tempDir(t);
  cpSync(reference.dir, dir, { recursive: true });
  const facesFile = path.join(dir, reference.relativeFaces);
  rmSync(facesFile);
  const configFile = path.join(dir, path.basename(reference.configFile));
  const config: Config = await loadConfig({ configPath: configFile, cwd: dir });
  const catalog = Catalog.open(path.join(config.library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  const hashes = (await readFaces(path.join(reference.dir, reference.relativeFaces))).map((record) => record.sha256);
  for (const hash of hashes) catalog.setSourceTags(hash, 'faces', []);
  const job: Job = { ...structuredClone(reference.job), stage: 'faces', state: 'queued' };
  delete job.faces;
  return { dir, config, catalog, facesFile, hashes, job };
}

function facesTags(catalog: Catalog, hashes: string[]) {
  return hashes.map((hash) => catalog.tagSources(hash).filter((row) => row.source === 'faces').map((row) => row.tag));
}

/** The stage as the pipeline runs it, on a job held in memory: saves and the result's change applied to it. */
async function runStage(queue: JobQueue<FacesJobData, FacesJobResult>, job: Job, config: Config, catalog: Catalog) {
  const ports = { config: () => config, catalog, log: silent, signal: new AbortController().signal, save: async (change: (target: Job) => void) => change(job) } as Partial<StagePorts> as StagePorts;
  const outcome = await remoteFacesStage(queue, 20)(structuredClone(job), ports);
  if (outcome.kind !== 'interrupted') outcome.change?.(job);
  return outcome;
}

async function facesWorker(redis: RedisServer, config: Config, onJob = () => undefined as void) {
  const runner = facesJobRunner({ config: () => config, images, models: new ModelCache(), log: silent, onLibraryMissing: (error) => assert.fail(error.message) });
  const worker = await startQueueWorker<FacesJobData, FacesJobResult>(redis.url, QUEUE_NAMES.faces, (queueJob) => {
    onJob();
    return runner(queueJob);
  }, WORKER, () => undefined);
  redis.beforeClose(() => worker.close(true));
  return worker;
}

async function openFacesQueue(redis: RedisServer) {
  const queue = await openJobQueue<FacesJobData, FacesJobResult>(redis.url, QUEUE_NAMES.faces, { attempts: 2, backoffMs: 100 });
  redis.beforeClose(() => queue.close());
  return queue;
}

test('coordinator and worker give what `celforge process` gives; results found again in the queue are recorded once, not computed again', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const { config, catalog, facesFile, hashes, job } = await coordinatorCopy(t);
  const expectedTags = hashes.map((_, index) => [`faces:${JSON.parse(reference.faces.split('\n')[index]!).faces.length}`]);
  assert.deepEqual(facesTags(catalog, hashes), hashes.map(() => []));
  const queue = await openFacesQueue(redis);
  let computed = 0;
  await facesWorker(redis, config, () => void (computed += 1));

  // A coordinator that dies after recording each batch, before removing it: its queue keeps every result.
  const keeping = { ...queue, remove: async () => undefined };
  const outcome = await runStage(keeping, job, config, catalog);
  assert.equal(outcome.kind, 'done');
  assert.equal(readFileSync(facesFile, 'utf8'), reference.faces, 'faces.jsonl byte for byte as `celforge process` wrote it');
  assert.deepEqual(facesTags(catalog, hashes), expectedTags);
  assert.deepEqual(job.faces, reference.job.faces);
  assert.equal(job.state, 'running');
  assert.equal(computed, 2, 'three kept frames in batches of two');
  const ids = [facesQueueId(job, 0), facesQueueId(job, 24)];
  for (const id of ids) assert.equal((await queue.find(id))?.state, 'completed');

  // Restarted with the first frame recorded: both results are found again; only what faces.jsonl lacks is recorded.
  writeFileSync(facesFile, `${reference.faces.split('\n')[0]}\n`);
  delete job.faces;
  assert.equal((await runStage(queue, job, config, catalog)).kind, 'done');
  assert.equal(readFileSync(facesFile, 'utf8'), reference.faces, 'no line twice');
  assert.deepEqual(facesTags(catalog, hashes), expectedTags);
  assert.deepEqual(job.faces, reference.job.faces);
  assert.equal(computed, 2, 'the workers did not run again');
  for (const id of ids) assert.equal(await queue.find(id), null, 'recorded results leave the queue');

  // Everything recorded: nothing is queued, nothing changes.
  assert.equal((await runStage(queue, job, config, catalog)).kind, 'done');
  assert.equal(readFileSync(facesFile, 'utf8'), reference.faces);
  assert.equal(computed, 2);
  assert.deepEqual(await queue.depths(), { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 });
});

test('a worker without the model: the job waits for it, naming the model; the waiting batches leave the queue', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const { dir, config, catalog, job } = await coordinatorCopy(t);
  const queue = await openFacesQueue(redis);
  mkdirSync(path.join(dir, 'worker'));
  const empty = writeModelFolder(path.join(dir, 'worker'), { taggers: [] });
  await facesWorker(redis, { ...config, models: { ...config.models, ...empty } });
  const outcome = await runStage(queue, job, config, catalog);
  assert.equal(outcome.kind, 'wait');
  assert.equal(outcome.kind === 'wait' && outcome.state, 'waiting-for-model');
  assert.deepEqual(job.waitingFor?.models, ['lbpcascade-animeface']);
  assert.equal(await queue.find(facesQueueId(job, 0)), null, 'the wait is not kept as a result');
});

test('a batch that keeps failing fails the video with the worker\'s error; run again, it is tried afresh', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const { config, catalog, facesFile, job } = await coordinatorCopy(t);
  const queue = await openFacesQueue(redis);
  let failing = true;
  const runner = facesJobRunner({ config: () => config, images, models: new ModelCache(), log: silent, onLibraryMissing: (error) => assert.fail(error.message) });
  const worker = await startQueueWorker<FacesJobData, FacesJobResult>(redis.url, QUEUE_NAMES.faces, async (queueJob) => {
    if (failing && queueJob.id === facesQueueId(job, 24)) throw new Error('the GPU fell off the bus');
    return runner(queueJob);
  }, WORKER, () => undefined);
  redis.beforeClose(() => worker.close(true));
  await assert.rejects(runStage(queue, job, config, catalog), /frames 24\.\.24 failed on the workers after 2 tries \(the GPU fell off the bus\)/);
  assert.equal((await queue.find(facesQueueId(job, 24)))?.state, 'failed', 'kept for status until the video runs again');
  failing = false;
  assert.equal((await runStage(queue, job, config, catalog)).kind, 'done');
  assert.equal(readFileSync(facesFile, 'utf8'), reference.faces);
});

test('a worker SIGKILLed mid-batch: another takes the stalled job over, and faces.jsonl is the same', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const { config, catalog, facesFile, job } = await coordinatorCopy(t);
  const queue = await openFacesQueue(redis);
  const running = runStage(queue, job, config, catalog);

  const stalling = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, '..', 'fixtures', 'stalling-faces-worker.ts'), redis.url, '1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  stalling.stdout!.on('data', (chunk) => (output += chunk));
  stalling.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => stalling.on('exit', () => resolve()));
  t.after(() => void stalling.kill('SIGKILL'));
  await waitFor('the first batch taken by the stalling worker', () => output.includes(`taken ${facesQueueId(job, 0)}`) || (stalling.exitCode !== null && assert.fail(output)), 30_000);
  assert.deepEqual((await queue.find(facesQueueId(job, 0)))?.progress, { done: 0, total: 1 }, 'the job is mid-batch');
  stalling.kill('SIGKILL');
  await exited;

  await facesWorker(redis, config);
  assert.equal((await running).kind, 'done');
  assert.equal(readFileSync(facesFile, 'utf8'), reference.faces);
  assert.deepEqual(job.faces, reference.job.faces);
});

test('celforge start as coordinator and a celforge worker process: the video ready for review with the faces `celforge process` found', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'inbox', 'Show'), { recursive: true });
  const models = JSON.parse(JSON.stringify((await loadConfig({ configPath: reference.configFile, cwd: reference.dir })).models));
  const configFile = writeConfig(dir, {
    inbox: './inbox', library: './library', disk: { reserve: 0 }, watch: { settleSeconds: 0.1 }, notify: { desktop: false },
    models: { dir: models.dir, manifest: models.manifest }, faces: { detector: 'cascade' }, inference: { batchSize: 1, workers: 1 },
    queue: { redis: redis.url, batchFrames: 2, lockSeconds: 4, stalledSeconds: 2 },
  });
  const daemon = startDaemon(configFile);
  redis.beforeClose(() => stopDaemon(daemon));
  const worker = startWorkerProcess(redis, configFile);
  cpSync(clip.file, path.join(dir, 'inbox', 'Show', 'Show 01.m2ts'));

  const library = path.join(dir, 'library');
  const job = await waitFor('the job ready for review', () => {
    const found = readJobs(library)[0];
    if (found?.state === 'failed') assert.fail(`${found.error?.message}\n${daemon.output()}`);
    return found?.state === 'ready-for-review' ? found : undefined;
  }, 120_000, 200);
  const strip = ({ file: _file, ...record }: { file: string }) => record;
  const expected = reference.faces.split('\n').filter(Boolean).map((line) => strip(JSON.parse(line)));
  assert.deepEqual((await readFaces(path.join(job.extract!.dir, 'faces.jsonl'))).map(strip), expected);
  assert.deepEqual(job.faces, reference.job.faces);
  assert.match(daemon.output(), /face detection queued for the workers \(2 batches\)/);
  assert.match(worker.output(), /taking extraction jobs and face detection batches/);
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  assert.deepEqual(facesTags(catalog, expected.map((record) => (record as { sha256: string }).sha256)), expected.map((record) => [`faces:${(record as { faces: unknown[] }).faces.length}`]));
});
