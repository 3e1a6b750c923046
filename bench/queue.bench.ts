/**
 * Extraction through the job queue (queue.redis, issue 18) against one
 * process, on a real redis-server: (1) the queue's own cost per job, a no-op
 * job's round trip through BullMQ, raw and through the coordinator's extract
 * stage (which looks every 250 ms); (2) the extract stage of one clip in
 * `celforge process` against a coordinator with one worker (the ledger's
 * stage timings; worker start-up not counted); (3) two clips with one worker
 * against two. BENCH_SECONDS sets the clips' length (default 20 s, 320x180).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { openJobQueue, QUEUE_NAMES, startQueueWorker } from '../src/adapters/job-queue.ts';
import { validateConfig } from '../src/config/load.ts';
import type { ExtractJobData, ExtractJobResult } from '../src/daemon/extract-job.ts';
import type { Job } from '../src/daemon/job.ts';
import { remoteExtractStage } from '../src/daemon/remote-extract.ts';
import type { StagePorts } from '../src/stages/stage.ts';
import { makeClip } from '../test/fixtures/clips.ts';
import { RedisServer } from '../test/fixtures/redis-server.ts';
import { readJobs, runCli, startDaemon, stopDaemon, waitFor, writeConfig } from '../test/helpers.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'celforge.js');
const COUNTS = { framesDone: 1, kept: 1, duplicates: 0, scenes: 1, bytesWritten: 1, hwaccel: 'none' };
const WORKER = { concurrency: 1, lockMs: 30_000, stalledMs: 30_000, maxStalled: 1, gpu: null, heartbeatMs: 10_000 };

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

  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
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
} finally {
  for (const child of spawned) if (child.exitCode === null) child.kill('SIGKILL');
  await redis.close();
  rmSync(root, { recursive: true, force: true });
}
