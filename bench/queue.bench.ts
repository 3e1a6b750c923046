/**
 * Extraction through the job queue (queue.redis, issue 18) against one
 * process, on a real redis-server: (1) the queue's own cost per job, a no-op
 * job's round trip through BullMQ, raw and through the coordinator's extract
 * stage (which looks every 250 ms); (2) the extract stage of one clip in
 * `celforge process` against a coordinator with one worker (the ledger's
 * stage timings; worker start-up not counted); (3) two clips with one worker
 * against two; (4) face detection (FaceBoxes, the shipped model, on the CPU)
 * of the same kept frames, the first FACES_BATCHES x FACES_BATCH_FRAMES of
 * (2)'s clip, per batch of queue.batchFrames (set to FACES_BATCH_FRAMES: at
 * ~0.1-0.2 s a frame on a CPU the default 256 would take minutes a run): the
 * local faces stage against the coordinator's remote faces stage with one
 * faces worker in this process (same image threads, each with its own model
 * cache, warmed by a first run; the medians of three runs each, interleaved).
 * BENCH_SECONDS sets the clips' length (default 20 s, 320x180).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Catalog } from '../src/adapters/catalog-store.ts';
import { createImageWorkers } from '../src/adapters/image-workers.ts';
import { openJobQueue, QUEUE_NAMES, startQueueWorker } from '../src/adapters/job-queue.ts';
import { validateConfig } from '../src/config/load.ts';
import type { ExtractJobData, ExtractJobResult } from '../src/daemon/extract-job.ts';
import type { FacesJobData, FacesJobResult } from '../src/daemon/faces-job.ts';
import { facesJobRunner } from '../src/daemon/faces-worker.ts';
import type { Job } from '../src/daemon/job.ts';
import { videoLayoutOf } from '../src/daemon/library-paths.ts';
import { remoteExtractStage } from '../src/daemon/remote-extract.ts';
import { remoteFacesStage } from '../src/daemon/remote-faces.ts';
import { ModelCache } from '../src/models/model-cache.ts';
import { facesStage } from '../src/stages/faces/faces-stage.ts';
import { keptFrames } from '../src/stages/kept-frames.ts';
import type { Stage, StagePorts } from '../src/stages/stage.ts';
import { makeClip } from '../test/fixtures/clips.ts';
import { RedisServer } from '../test/fixtures/redis-server.ts';
import { readJobs, runCli, startDaemon, stopDaemon, waitFor, writeConfig } from '../test/helpers.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const projectRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(projectRoot, 'bin', 'celforge.js');
const COUNTS = { framesDone: 1, kept: 1, duplicates: 0, scenes: 1, bytesWritten: 1, hwaccel: 'none' };
const FACES_BATCH_FRAMES = 32;
const FACES_BATCHES = 3;
const WORKER = { concurrency: 1, lockMs: 30_000, stalledMs: 30_000, maxStalled: 1, gpu: null, heartbeatMs: 10_000 };

const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const root = mkdtempSync(path.join(os.tmpdir(), 'celforge-bench-queue-'));
const redis = await RedisServer.launch();
const spawned: ChildProcess[] = [];
try {
  const clips = [await makeClip({ width: 320, height: 180, seconds: SECONDS }), await makeClip({ width: 320, height: 180, seconds: SECONDS, variant: 1 })];

  // (1) The queue's own cost.
  const queue = await openJobQueue<ExtractJobData, ExtractJobResult>(redis.url, 'bench-noop', { attempts: 1, backoffMs: 1000 });
  const worker = await startQueueWorker<ExtractJobData, ExtractJobResult>(redis.url, 'bench-noop', async () => ({ kind: 'done', extract: COUNTS }), WORKER, () => undefined);
  const raw: number[] = [];
  for (let i = 0; i < 100; i += 1) {
    const started = performance.now();
    await queue.enqueue(`noop-${i}`, {} as ExtractJobData);
    while ((await queue.find(`noop-${i}`))?.state !== 'completed') await new Promise((resolve) => setTimeout(resolve, 2));
    raw.push(performance.now() - started);
  }
  const staged: number[] = [];
  const config = validateConfig({ library: path.join(root, 'noop-library') }, 'bench', '/');
  for (let i = 0; i < 10; i += 1) {
    const job = { id: `noop${i}`, source: 'noop.m2ts', series: 'Noop', episode: String(i), probe: { frameCount: 1 }, timings: {} } as unknown as Job;
    const ports = { config: () => config, log: pino({ level: 'silent' }), signal: new AbortController().signal, save: async () => undefined } as Partial<StagePorts> as StagePorts;
    const started = performance.now();
    await remoteExtractStage(queue)(job, ports);
    staged.push(performance.now() - started);
  }
  await worker.close();
  await queue.close();

  // (2) and (3): the extract stage's time as the ledger records it.
  const extractSpan = (library: string) => {
    const timings = readJobs(library).map((job) => job.timings.extract!);
    const start = Math.min(...timings.map((t) => Date.parse(t.startedAt)));
    const end = Math.max(...timings.map((t) => Date.parse(t.finishedAt!)));
    return (end - start) / 1000;
  };
  const single = path.join(root, 'single');
  mkdirSync(path.join(single, 'inbox', 'Show'), { recursive: true });
  copyFileSync(clips[0]!, path.join(single, 'inbox', 'Show', 'Show 01.m2ts'));
  const singleConfig = writeConfig(single, { inbox: './inbox', library: './library', disk: { reserve: 0 }, notify: { desktop: false } });
  const processed = await runCli(['--config', singleConfig, 'process', path.join(single, 'inbox', 'Show', 'Show 01.m2ts')], { cwd: single, timeoutMs: 600_000 });
  if (processed.code !== 0) throw new Error(`process failed: ${processed.stderr}`);
  const singleSeconds = extractSpan(path.join(single, 'library'));

  // (4) Face detection of that clip's first kept frames, per batch, in process and through the queue.
  const faces = await (async () => {
    const library = path.join(single, 'library');
    const facesConfig = validateConfig({
      library, models: { dir: path.join(projectRoot, 'models') }, faces: { detector: 'faceboxes' }, queue: { batchFrames: FACES_BATCH_FRAMES },
    }, 'bench', '/');
    const extracted = readJobs(library)[0]!;
    const layout = videoLayoutOf(extracted, library);
    // The video as far as its first FACES_BATCHES batches of kept frames (the frame map ends after the last of them).
    const all = await keptFrames(layout);
    const last = all[Math.min(all.length, FACES_BATCHES * FACES_BATCH_FRAMES) - 1]!.frame;
    const map = (await readFile(layout.frameMap, 'utf8')).split('\n').filter(Boolean).slice(0, last + 1);
    await writeFile(layout.frameMap, `${map.join('\n')}\n`);
    const kept = (await keptFrames(layout)).length;
    const batchFrames = facesConfig.queue.batchFrames;
    const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
    const images = createImageWorkers(facesConfig.inference.workers);
    const facesQueue = await openJobQueue<FacesJobData, FacesJobResult>(redis.url, QUEUE_NAMES.faces, { attempts: 1, backoffMs: 1000 });
    const facesWorker = await startQueueWorker<FacesJobData, FacesJobResult>(redis.url, QUEUE_NAMES.faces, facesJobRunner({
      config: () => facesConfig, images, models: new ModelCache(), log: pino({ level: 'silent' }), onLibraryMissing: (error) => { throw error; },
    }), WORKER, () => undefined);
    const localModels = new ModelCache();
    // Each run detects every kept frame afresh: faces.jsonl removed, the job as the pipeline hands it to the stage.
    const run = async (stage: Stage): Promise<number> => {
      await rm(layout.faces, { force: true });
      const job: Job = { ...structuredClone(extracted), stage: 'faces', state: 'running' };
      delete job.faces;
      const ports = {
        config: () => facesConfig, catalog, images, models: localModels, log: pino({ level: 'silent' }), signal: new AbortController().signal,
        save: async (change: (target: Job) => void) => change(job),
      } as Partial<StagePorts> as StagePorts;
      const started = performance.now();
      const outcome = await stage(job, ports);
      if (outcome.kind !== 'done') throw new Error(`faces: ${JSON.stringify(outcome)}`);
      return performance.now() - started;
    };
    const remote = remoteFacesStage(facesQueue);
    try {
      await run(facesStage);
      await run(remote);
      const local: number[] = [];
      const queued: number[] = [];
      for (let i = 0; i < 3; i += 1) {
        local.push(await run(facesStage));
        queued.push(await run(remote));
      }
      return { kept, batchFrames, batches: Math.ceil(kept / batchFrames), local: median(local), queued: median(queued) };
    } finally {
      await facesWorker.close();
      await facesQueue.close();
      await images.close();
      catalog.close();
    }
  })();

  const viaQueue = async (name: string, clipCount: number, workerCount: number): Promise<number> => {
    const dir = path.join(root, name);
    mkdirSync(path.join(dir, 'inbox', 'Show'), { recursive: true });
    const configFile = writeConfig(dir, { inbox: './inbox', library: './library', disk: { reserve: 0 }, watch: { settleSeconds: 0.1 }, notify: { desktop: false }, queue: { redis: redis.url } });
    const workers = Array.from({ length: workerCount }, (_, i) => {
      const child = spawn(process.execPath, [cli, '--config', configFile, '--library', path.join(dir, `worker-${i}`), 'worker', '--redis', redis.url], { stdio: 'ignore' });
      spawned.push(child);
      return child;
    });
    const probe = await openJobQueue(redis.url, QUEUE_NAMES.extract, { attempts: 1, backoffMs: 1000 });
    await waitFor('the workers', async () => (await probe.workers()).length >= workerCount, 120_000);
    const daemon = startDaemon(configFile);
    try {
      for (let i = 0; i < clipCount; i += 1) copyFileSync(clips[i]!, path.join(dir, 'inbox', 'Show', `Show 0${i + 1}.m2ts`));
      await waitFor('the jobs ready', () => {
        const jobs = readJobs(path.join(dir, 'library'));
        if (jobs.some((job) => job.state === 'failed')) throw new Error(`failed: ${jobs.find((job) => job.state === 'failed')!.error?.message}`);
        return jobs.length === clipCount && jobs.every((job) => job.state === 'ready-for-review');
      }, 600_000, 200);
    } finally {
      await stopDaemon(daemon);
      for (const child of workers) child.kill('SIGTERM');
      await Promise.all(workers.map((child) => new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(null)))));
      // The next run's wait counts only its own workers.
      await waitFor('the workers gone', async () => (await probe.workers()).length === 0, 60_000);
      await probe.close();
    }
    return extractSpan(path.join(dir, 'library'));
  };
  const oneWorker = await viaQueue('one', 1, 1);
  const twoClipsOneWorker = await viaQueue('two-one', 2, 1);
  const twoClipsTwoWorkers = await viaQueue('two-two', 2, 2);

  const frames = Math.round(SECONDS * 24000 / 1001);
  console.log(`clips: ${SECONDS} s 320x180 (${frames} frames each); ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)}`);
  console.log('| measured | time | ratio |');
  console.log('|---|---|---|');
  console.log(`| no-op job round trip, raw (median of 100) | ${median(raw).toFixed(1)} ms | |`);
  console.log(`| no-op job through the coordinator's stage (median of 10, looks every 250 ms) | ${median(staged).toFixed(0)} ms | |`);
  console.log(`| extract stage, one clip, \`celforge process\` | ${singleSeconds.toFixed(1)} s | 1.00 |`);
  console.log(`| extract stage, one clip, coordinator + 1 worker | ${oneWorker.toFixed(1)} s | ${(oneWorker / singleSeconds).toFixed(2)} |`);
  console.log(`| two clips, 1 worker (first start to last finish) | ${twoClipsOneWorker.toFixed(1)} s | 1.00 |`);
  console.log(`| two clips, 2 workers | ${twoClipsTwoWorkers.toFixed(1)} s | ${(twoClipsTwoWorkers / twoClipsOneWorker).toFixed(2)} |`);
  const batches = `${faces.batches} batch${faces.batches === 1 ? '' : 'es'} of up to ${faces.batchFrames} of ${faces.kept} kept frames`;
  console.log(`| faces (FaceBoxes, CPU) per batch, local faces stage (${batches}) | ${(faces.local / faces.batches).toFixed(0)} ms | 1.00 |`);
  console.log(`| faces per batch, coordinator's remote stage + 1 worker in this process | ${(faces.queued / faces.batches).toFixed(0)} ms | ${(faces.queued / faces.local).toFixed(2)} |`);
  console.log(`| faces, queue overhead per batch (the difference; the coordinator looks every 250 ms) | ${((faces.queued - faces.local) / faces.batches).toFixed(0)} ms | |`);
} finally {
  for (const child of spawned) if (child.exitCode === null) child.kill('SIGKILL');
  await redis.close();
  rmSync(root, { recursive: true, force: true });
}
