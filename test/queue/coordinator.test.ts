/**
 * The coordinator's extract stage against a real redis-server, with workers
 * in this process: a job lost from the queue is queued again; a coordinator
 * stopped while the job waits finds the same queue job again; a result
 * delivered twice leaves the ledger's job as once; a worker that does not
 * see the library gives the job back untried; one that cannot find the
 * video fails the job after its attempts, with its error, and a later run
 * tries it afresh; Redis down while the coordinator waits.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { openJobQueue, QUEUE_NAMES, startQueueWorker, type QueueJobContext, type WorkerSettings } from '../../src/adapters/job-queue.ts';
import { validateConfig } from '../../src/config/load.ts';
import { extractQueueId, type ExtractJobData, type ExtractJobResult } from '../../src/daemon/extract-job.ts';
import { extractJobRunner } from '../../src/daemon/extract-worker.ts';
import type { Job } from '../../src/daemon/job.ts';
import { describeQueue } from '../../src/cli/queue-summary.ts';
import { readQueueStatus } from '../../src/daemon/queue-status.ts';
import { remoteExtractStage } from '../../src/daemon/remote-extract.ts';
import { CelforgeError } from '../../src/errors.ts';
import type { StagePorts } from '../../src/stages/stage.ts';
import { RedisServer } from '../fixtures/redis-server.ts';
import { tempDir, waitFor } from '../helpers.ts';

const silent = pino({ level: 'silent' });
const WORKER: WorkerSettings = { concurrency: 1, lockMs: 30_000, stalledMs: 30_000, maxStalled: 1, gpu: null, heartbeatMs: 1000 };
const COUNTS = { framesDone: 240, kept: 200, duplicates: 40, scenes: 3, bytesWritten: 123_456, hwaccel: 'none' };

function ledgerJob(library: string): Job {
  const now = new Date().toISOString();
  return {
    id: 'f00dfeed', source: path.join(path.dirname(library), 'inbox', 'Show', 'Show 01.m2ts'), seenAs: [], sizeBytes: 1, series: 'Show', episode: '01',
    stage: 'extract', state: 'running', progress: null, timings: {}, createdAt: now, updatedAt: now,
    probe: { frameCount: 240, fps: 23.976, frameRate: '24000/1001', durationSeconds: 10, width: 160, height: 90, codec: 'h264', streams: [] },
  };
}

/** The stage as the pipeline runs it, on a job held in memory: saves and `done`'s change applied to it. */
async function runStage(stage: ReturnType<typeof remoteExtractStage>, job: Job, library: string, signal = new AbortController().signal) {
  const config = validateConfig({ library }, 'test', '/');
  const ports = { config: () => config, log: silent, signal, save: async (change: (target: Job) => void) => change(job) } as Partial<StagePorts> as StagePorts;
  const outcome = await stage(structuredClone(job), ports);
  if (outcome.kind !== 'interrupted') outcome.change?.(job);
  return outcome;
}

test('a job lost from the queue is queued again; a coordinator stopped while it waits finds it again; a result recorded twice leaves the job as once', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const library = path.join(tempDir(t), 'library');
  const queue = await openJobQueue<ExtractJobData, ExtractJobResult>(redis.url, QUEUE_NAMES.extract, { attempts: 1, backoffMs: 100 });
  redis.beforeClose(() => queue.close());
  const stage = remoteExtractStage(queue, 50);
  const job = ledgerJob(library);
  const id = extractQueueId(job);

  const stop = new AbortController();
  const first = runStage(stage, job, library, stop.signal);
  await waitFor('the queued job', async () => (await queue.find(id))?.state === 'waiting');
  // Lost from the queue (a Redis without its AOF, or removed by hand): the ledger says unfinished, so it goes in again.
  await queue.remove(id);
  await waitFor('the job queued again', async () => (await queue.find(id))?.state === 'waiting');
  stop.abort();
  assert.equal((await first).kind, 'interrupted');
  assert.equal((await queue.find(id))?.state, 'waiting', 'the queue job outlives the coordinator');

  let deliveries = 0;
  const worker = await startQueueWorker<ExtractJobData, ExtractJobResult>(redis.url, QUEUE_NAMES.extract, async (queueJob) => {
    deliveries += 1;
    await queueJob.progress({ done: 120, total: 240 });
    return { kind: 'done', extract: COUNTS };
  }, WORKER, (error) => assert.fail(error));
  redis.beforeClose(() => worker.close());

  assert.equal((await runStage(stage, job, library)).kind, 'done');
  assert.equal(deliveries, 1, 'the restarted coordinator waited for the job it had queued, not a second one');
  assert.deepEqual(job.extract, { dir: path.join(library, 'Show', '01'), ...COUNTS, pid: null });
  assert.deepEqual(job.progress, { done: 240, total: 240 });
  assert.equal(await queue.find(id), null, 'recorded, then removed');
  const once = structuredClone(job);

  // As a coordinator that died between recording and removing: the result arrives again.
  assert.equal((await runStage(stage, job, library)).kind, 'done');
  assert.equal(deliveries, 2);
  assert.deepEqual(job, once);
});

test('a worker that does not see the library gives the job back untried and stops; a worker that sees it does the job', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const library = path.join(tempDir(t), 'not-mounted', 'library');
  const queue = await openJobQueue<ExtractJobData, ExtractJobResult>(redis.url, QUEUE_NAMES.extract, { attempts: 1, backoffMs: 100 });
  redis.beforeClose(() => queue.close());
  const workerConfig = validateConfig({}, 'worker', tempDir(t));
  const told: string[] = [];
  // As `celforge worker` does: told the library is missing, it stops taking jobs.
  let blind: Awaited<ReturnType<typeof startQueueWorker>> | null = null;
  const runner = extractJobRunner({
    config: () => workerConfig, media: null as never, disk: null as never, log: silent, signal: new AbortController().signal,
    onLibraryMissing: (error) => {
      told.push(error.message);
      void blind?.close();
    },
  });
  blind = await startQueueWorker<ExtractJobData, ExtractJobResult>(redis.url, QUEUE_NAMES.extract, runner, WORKER, (error) => assert.fail(error));
  redis.beforeClose(() => blind!.close());
  const job = ledgerJob(library);
  const running = runStage(remoteExtractStage(queue, 50), job, library);

  await waitFor('the blind worker giving up', () => told.length > 0);
  assert.match(told[0]!, /the library is not there on this machine \(the coordinator's .*\); mount it, or map .* in queue\.pathMap/);
  const back = await waitFor('the job back in the queue', async () => {
    const view = await queue.find(extractQueueId(job));
    return view?.state === 'waiting' ? view : undefined;
  });
  assert.equal(back.attemptsMade, 0, 'given back without using its one attempt');
  const seeing = await startQueueWorker<ExtractJobData, ExtractJobResult>(redis.url, QUEUE_NAMES.extract, async () => ({ kind: 'done', extract: COUNTS }), WORKER, (error) => assert.fail(error));
  redis.beforeClose(() => seeing.close());
  assert.equal((await running).kind, 'done');
  assert.equal(job.extract?.framesDone, 240);
});

test('a video a worker cannot find: retried, then the job fails with its error (failed set, status); run again, it is tried afresh', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const library = path.join(tempDir(t), 'library');
  mkdirSync(library);
  const queue = await openJobQueue<ExtractJobData, ExtractJobResult>(redis.url, QUEUE_NAMES.extract, { attempts: 2, backoffMs: 100 });
  redis.beforeClose(() => queue.close());
  const workerConfig = validateConfig({}, 'worker', tempDir(t));
  const runner = extractJobRunner({
    config: () => workerConfig, media: null as never, disk: null as never, log: silent, signal: new AbortController().signal, onLibraryMissing: (error) => assert.fail(error),
  });
  let handler: (job: QueueJobContext<ExtractJobData>) => Promise<ExtractJobResult> = runner;
  const worker = await startQueueWorker<ExtractJobData, ExtractJobResult>(redis.url, QUEUE_NAMES.extract, (job) => handler(job), WORKER, (error) => assert.fail(error));
  redis.beforeClose(() => worker.close());
  const stage = remoteExtractStage(queue, 50);
  const job = ledgerJob(library);

  await assert.rejects(runStage(stage, job, library), (error: unknown) => {
    assert.ok(error instanceof CelforgeError);
    assert.equal(error.code, 'EXTRACT_FAILED');
    assert.match(error.message, /after 2 tries/);
    assert.match(error.message, /the video is not there on this machine/);
    return true;
  });
  const [failed] = await queue.failed();
  assert.equal(failed?.id, extractQueueId(job), 'kept in the failed set for status');
  const status = describeQueue(await readQueueStatus(redis.url));
  assert.match(status[0]!, /: 0 waiting, 0 running, 0 waiting to retry, 1 failed; 1 worker$/);
  assert.ok(status.some((line) => line.startsWith(`  failed ${extractQueueId(job)} after 2 tries: `) && line.includes('the video is not there on this machine')), status.join('\n'));

  handler = async () => ({ kind: 'done', extract: COUNTS });
  assert.equal((await runStage(stage, job, library)).kind, 'done');
  assert.equal(job.extract?.framesDone, 240);
  assert.equal((await queue.depths()).failed, 0);
});

test('Redis down while the coordinator waits: it says so, waits, and records the result once Redis is back', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const library = path.join(tempDir(t), 'library');
  const queue = await openJobQueue<ExtractJobData, ExtractJobResult>(redis.url, QUEUE_NAMES.extract, { attempts: 1, backoffMs: 100 });
  redis.beforeClose(() => queue.close());
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  const job = ledgerJob(library);
  const config = validateConfig({ library }, 'test', '/');
  const ports = { config: () => config, log, signal: new AbortController().signal, save: async (change: (target: Job) => void) => change(job) } as Partial<StagePorts> as StagePorts;
  const running = remoteExtractStage(queue, 50)(structuredClone(job), ports);
  await waitFor('the queued job', async () => (await queue.find(extractQueueId(job)))?.state === 'waiting');

  await redis.kill();
  await waitFor('the coordinator noticing', () => lines.some((line) => line.includes('the job queue does not answer')), 60_000);
  await redis.start();
  const worker = await startQueueWorker<ExtractJobData, ExtractJobResult>(redis.url, QUEUE_NAMES.extract, async () => ({ kind: 'done', extract: COUNTS }), WORKER, () => undefined);
  redis.beforeClose(() => worker.close());
  const outcome = await running;
  assert.equal(outcome.kind, 'done');
  if (outcome.kind === 'done') outcome.change?.(job);
  assert.equal(job.extract?.framesDone, 240);
  assert.ok(lines.some((line) => line.includes('the job queue answers again')));
  assert.ok(!lines.some((line) => line.includes(redis.password)), 'the password is in no log line');
});
