/**
 * Extraction through the job queue, end to end against a real redis-server:
 * `celforge start` with queue.redis as the coordinator, `celforge worker`
 * processes (seeing the library under another path, through queue.pathMap)
 * doing the extraction, two videos at once with two workers. The frames and the frame map are byte for byte those
 * of `celforge process` on the same clip, also when the worker running the
 * job is SIGKILLed midway and a second worker takes the stalled job over, and
 * when the worker is cut off from Redis for longer than its lock (it stops,
 * writing nothing more, and the job is resumed once Redis is back).
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { openJobQueue, QUEUE_NAMES } from '../../src/adapters/job-queue.ts';
import type { ExtractJobData, ExtractJobResult } from '../../src/daemon/extract-job.ts';
import type { Job } from '../../src/daemon/job.ts';
import { makeClip } from '../fixtures/clips.ts';
import { RedisServer } from '../fixtures/redis-server.ts';
import { startWorkerProcess, stopWorkerProcess, type WorkerProcess } from '../fixtures/worker-process.ts';
import { hashTree, readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

const clip = await makeClip({ width: 160, height: 90, seconds: 10 });
const secondClip = await makeClip({ width: 160, height: 90, seconds: 10, variant: 1 });
const VIDEO = path.join('Show', 'Show 01.m2ts');
const SECOND_VIDEO = path.join('Show', 'Show 02.m2ts');
/** Short, so that a killed worker's job is taken over within seconds; long enough that a busy machine keeps its locks. */
const QUEUE_TIMING = { lockSeconds: 4, stalledSeconds: 2 };

interface Reference {
  frameMap: string;
  files: Map<string, string>;
}
let reference: Reference | undefined;
let secondReference: Reference | undefined;

function outputOf(library: string, episode = '01'): Reference {
  const dir = path.join(library, 'Show', episode);
  return { frameMap: readFileSync(path.join(dir, 'frame-map.jsonl'), 'utf8'), files: hashTree(dir) };
}

/** A coordinator's folder (inbox, library, config) and a second path to it, as another machine would mount it. */
function coordinatorFolder(t: TestContext, redisUrl: string, queue: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'inbox', 'Show'), { recursive: true });
  const configFile = writeConfig(dir, {
    inbox: './inbox', library: './library', disk: { reserve: 0 }, watch: { settleSeconds: 0.1 }, notify: { desktop: false },
    queue: { redis: redisUrl, ...QUEUE_TIMING, ...queue },
  });
  const mount = path.join(tempDir(t), 'nas');
  symlinkSync(dir, mount);
  return { dir, configFile, library: path.join(dir, 'library'), mount };
}

/** A redis-server and a coordinator daemon on a fresh coordinator folder, stopped before Redis; undefined without redis-server (the test is skipped). */
async function coordinatorRunning(t: TestContext, queue: Record<string, unknown> = {}) {
  const redis = await RedisServer.open(t);
  if (!redis) return undefined;
  const coordinator = coordinatorFolder(t, redis.url, queue);
  const daemon = startDaemon(coordinator.configFile);
  redis.beforeClose(() => stopDaemon(daemon));
  return { redis, coordinator, daemon };
}

function startWorker(t: TestContext, redis: RedisServer, coordinator: { dir: string; mount: string }): WorkerProcess {
  const home = tempDir(t);
  const configFile = writeConfig(home, { library: './worker-library', queue: { pathMap: { [coordinator.dir]: coordinator.mount }, ...QUEUE_TIMING } });
  return startWorkerProcess(redis, configFile);
}

function readyJob(library: string, count = 1) {
  const jobs = readJobs(library);
  const failed = jobs.find((job) => job.state === 'failed');
  if (failed) throw new Error(`the job failed: ${failed.error?.message}`);
  return jobs.length === count && jobs.every((job) => job.state === 'ready-for-review') ? jobs[0] : undefined;
}

test('reference: `celforge process` on the clips, in one process', async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'inbox', 'Show'), { recursive: true });
  copyFileSync(clip, path.join(dir, 'inbox', VIDEO));
  copyFileSync(secondClip, path.join(dir, 'inbox', SECOND_VIDEO));
  const configFile = writeConfig(dir, { inbox: './inbox', library: './library', disk: { reserve: 0 }, notify: { desktop: false } });
  const result = await runCli(['--config', configFile, 'process', path.join(dir, 'inbox', VIDEO), path.join(dir, 'inbox', SECOND_VIDEO)], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  reference = outputOf(path.join(dir, 'library'));
  secondReference = outputOf(path.join(dir, 'library'), '02');
  assert.ok(reference.frameMap.split('\n').filter(Boolean).length > 100);
  assert.notDeepEqual(secondReference.files, reference.files);
});

test('a coordinator and two workers, two clips: the workers extract through the queue, the coordinator records it, the same frames as `process`', async (t) => {
  assert.ok(reference && secondReference, 'the reference run must pass first');
  const running = await coordinatorRunning(t);
  if (!running) return;
  const { redis, coordinator, daemon } = running;
  const workerProcesses = [startWorker(t, redis, coordinator), startWorker(t, redis, coordinator)];
  copyFileSync(clip, path.join(coordinator.dir, 'inbox', VIDEO));
  copyFileSync(secondClip, path.join(coordinator.dir, 'inbox', SECOND_VIDEO));

  await waitFor('both jobs ready for review', () => readyJob(coordinator.library, 2), 120_000, 200);
  const job = readJobs(coordinator.library).find((each) => each.episode === '01')!;
  assert.deepEqual(outputOf(coordinator.library), reference);
  assert.deepEqual(outputOf(coordinator.library, '02'), secondReference);
  assert.equal(job.extract!.dir, path.join(coordinator.library, 'Show', '01'), "the ledger names the coordinator's folder, not the worker's");
  assert.equal(job.extract!.framesDone, reference.frameMap.split('\n').filter(Boolean).length);
  assert.equal(job.extract!.pid, null);
  const workerLogs = workerProcesses.map((worker) => worker.output()).join('');
  assert.equal(workerLogs.match(/: extracting/g)?.length, 2, 'each video extracted once');
  assert.equal(daemon.output().match(/extraction queued for the workers/g)?.length, 2);
  assert.doesNotMatch(workerLogs + daemon.output(), new RegExp(redis.password), 'the password is in no log');

  const queue = await openJobQueue(redis.url, QUEUE_NAMES.extract, { attempts: 1, backoffMs: 1 });
  redis.beforeClose(() => queue.close());
  assert.equal(await queue.find(`extract-${job.id}`), null, 'a recorded result leaves the queue');
  const workers = await queue.workers();
  assert.equal(workers.length, 2);
  assert.ok(workers.every((worker) => worker.job === null));

  const status = await runCli(['--config', coordinator.configFile, 'status', '--json']);
  assert.equal(status.code, 0, status.stderr);
  const shown = JSON.parse(status.stdout).queue;
  assert.equal(shown.redis, `redis://:(hidden)@127.0.0.1:${redis.port}`);
  assert.deepEqual(shown.depths, { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 });
  assert.deepEqual(shown.workers.map((w: { id: string }) => w.id), workers.map((w) => w.id));
  const text = await runCli(['--config', coordinator.configFile, 'status']);
  assert.match(text.stdout, /job queue redis:\/\/:\(hidden\)@127\.0\.0\.1:\d+: 0 waiting, 0 running, 0 waiting to retry, 0 failed; 2 workers\n {2}worker \S+: idle, seen \d+ s ago\n {2}worker \S+: idle, seen \d+ s ago\n/);
  assert.doesNotMatch(status.stdout + text.stdout, new RegExp(redis.password));
});

/** The frames in the coordinator's frame map of the clip. */
const recordedFrames = (library: string) => {
  const frameMap = path.join(library, 'Show', '01', 'frame-map.jsonl');
  return existsSync(frameMap) ? readFileSync(frameMap, 'utf8').split('\n').filter(Boolean).length : 0;
};

/** Waits until some frames of the clip, fewer than half, are in the coordinator's frame map; how many. */
function partlyExtracted(library: string, what: string): Promise<number> {
  const total = reference!.frameMap.split('\n').filter(Boolean).length;
  return waitFor(what, () => {
    const done = recordedFrames(library);
    return done > 0 && done < total / 2 ? done : undefined;
  }, 90_000, 20);
}

test('a worker SIGKILLed mid-extraction: a second worker takes the stalled job over, and the frames are byte-identical', async (t) => {
  assert.ok(reference, 'the reference run must pass first');
  const running = await coordinatorRunning(t);
  if (!running) return;
  const { redis, coordinator, daemon } = running;
  const first = startWorker(t, redis, coordinator);
  copyFileSync(clip, path.join(coordinator.dir, 'inbox', VIDEO));

  const total = reference.frameMap.split('\n').filter(Boolean).length;
  const killedAt = await partlyExtracted(coordinator.library, 'frames recorded by the first worker');
  first.child.kill('SIGKILL');
  await first.exited;
  assert.ok(recordedFrames(coordinator.library) < total, `killed midway (${killedAt} of ${total} frames when the kill was sent)`);

  const second = startWorker(t, redis, coordinator);
  await waitFor('the job ready for review', () => readyJob(coordinator.library), 120_000, 200);
  assert.deepEqual(outputOf(coordinator.library), reference);
  assert.match(second.output(), /extracting/);
  assert.match(second.output(), /resuming extraction/, 'the second worker resumed from what the first recorded');
});

/** The programs (comm) of the processes whose parent is `pid`, from /proc (Linux). */
function childrenOf(pid: number): string[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).flatMap((name) => {
    const stat = (() => {
      try {
        return readFileSync(`/proc/${name}/stat`, 'utf8');
      } catch {
        return ''; // gone meanwhile
      }
    })();
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after its last ')'.
    const close = stat.lastIndexOf(')');
    return close > 0 && Number(stat.slice(close + 2).split(' ')[1]) === pid ? [stat.slice(stat.indexOf('(') + 1, close)] : [];
  });
}

test('a worker stalled longer than its lock, Redis out of reach when it wakes: it stops extracting, writes nothing more, and the job resumes byte-identical', async (t) => {
  assert.ok(reference, 'the reference run must pass first');
  const running = await coordinatorRunning(t);
  if (!running) return;
  const { redis, coordinator, daemon } = running;
  const worker = startWorker(t, redis, coordinator);
  redis.beforeClose(() => void worker.child.kill('SIGCONT'));
  const raw = new Redis(redis.url);
  redis.beforeClose(() => raw.disconnect());
  copyFileSync(clip, path.join(coordinator.dir, 'inbox', VIDEO));

  // Frozen while most of the clip is still to come, until Redis has let its job's lock run out (BullMQ's key
  // bull:<queue>:<job id>:lock); then it wakes to a Redis that answers nothing, its connections open.
  await waitFor('the first frames recorded', () => recordedFrames(coordinator.library) > 0, 90_000, 20);
  worker.child.kill('SIGSTOP');
  await waitFor("the job's lock run out", async () => (await raw.keys(`bull:${QUEUE_NAMES.extract}:*:lock`)).length === 0, 60_000);
  redis.pause();
  worker.child.kill('SIGCONT');
  await waitFor('the worker stopping its job', () => /stopped extracting; this worker writes nothing more/.test(worker.output()), 60_000);
  assert.match(worker.output(), new RegExp(`job extract-\\S+: this worker no longer holds it: no renewal of its ${QUEUE_TIMING.lockSeconds} s lock was confirmed in time`));
  assert.equal(worker.output().match(/no longer holds it/g)?.length, 1, 'the loss is said once');
  await waitFor("the worker's ffmpeg gone", () => !childrenOf(worker.child.pid!).includes('ffmpeg'), 30_000);
  const stopped = outputOf(coordinator.library);
  const total = reference.frameMap.split('\n').filter(Boolean).length;
  assert.ok(stopped.frameMap.split('\n').filter(Boolean).length < total, 'stopped before the end of the clip');
  assert.ok(reference.frameMap.startsWith(stopped.frameMap), 'what it recorded is the start of the frame map, nothing torn');
  assert.deepEqual(outputOf(coordinator.library), stopped, 'nothing written since it stopped');

  redis.resume();
  await waitFor('the job ready for review', () => readyJob(coordinator.library), 120_000, 200);
  assert.deepEqual(outputOf(coordinator.library), reference);
  assert.match(worker.output(), /resuming extraction/, 'the job was taken again (here by the same worker) and resumed from what was recorded');
});

test('Redis killed and restarted mid-extraction: the job survives in its AOF and completes, the frames byte-identical', async (t) => {
  assert.ok(reference, 'the reference run must pass first');
  const running = await coordinatorRunning(t);
  if (!running) return;
  const { redis, coordinator, daemon } = running;
  startWorker(t, redis, coordinator);
  copyFileSync(clip, path.join(coordinator.dir, 'inbox', VIDEO));

  await partlyExtracted(coordinator.library, 'frames recorded by the worker');
  await redis.kill();
  await new Promise((resolve) => setTimeout(resolve, 500));
  await redis.start();

  await waitFor('the job ready for review', () => readyJob(coordinator.library), 120_000, 200);
  assert.deepEqual(outputOf(coordinator.library), reference);
});

test('a worker stopped (SIGTERM) mid-extraction gives its job back untried: with one attempt allowed, the next worker finishes it', async (t) => {
  assert.ok(reference, 'the reference run must pass first');
  const running = await coordinatorRunning(t, { attempts: 1 });
  if (!running) return;
  const { redis, coordinator, daemon } = running;
  const first = startWorker(t, redis, coordinator);
  copyFileSync(clip, path.join(coordinator.dir, 'inbox', VIDEO));

  await partlyExtracted(coordinator.library, 'frames recorded by the first worker');
  await stopWorkerProcess(first);
  assert.equal(first.child.exitCode, 0, first.output());
  assert.match(first.output(), /the job goes back to the queue/);

  const second = startWorker(t, redis, coordinator);
  await waitFor('the job ready for review', () => readyJob(coordinator.library), 120_000, 200);
  assert.deepEqual(outputOf(coordinator.library), reference);
  assert.match(second.output(), /resuming extraction/);
});

test('celforge worker refuses a missing or wrong Redis address, never printing its password (an unreachable one: job-queue.test.ts)', async () => {
  const missing = await runCli(['worker']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no job queue; give --redis/);
  const wrong = await runCli(['worker', '--redis', 'http://:sw0rdfish-secret@nas.local:6379']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /--redis http:\/\/:\(hidden\)@nas\.local:6379\/?: expected a redis:\/\/ or rediss:\/\/ \(TLS\) address/);
  assert.doesNotMatch(wrong.stderr, /sw0rdfish/);
});

test('a worker stopped while Redis is down does not wait for it: it drops its connections and exits', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const coordinator = coordinatorFolder(t, redis.url);
  const worker = startWorker(t, redis, coordinator);
  await waitFor('the worker started', () => /taking extraction jobs/.test(worker.output()), 60_000);
  await redis.kill();
  worker.child.kill('SIGTERM');
  await worker.exited;
  assert.equal(worker.child.exitCode, 0, worker.output());
  // BullMQ's close usually waits for Redis then; where it does not, the worker stops cleanly. Either way it ends.
  assert.match(worker.output(), /worker stopped/);
  assert.doesNotMatch(worker.output(), new RegExp(redis.password));
});

test('celforge worker on a machine that does not see the library gives the job back untried and exits with 1', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const coordinator = coordinatorFolder(t, redis.url);
  const queue = await openJobQueue<ExtractJobData, ExtractJobResult>(redis.url, QUEUE_NAMES.extract, { attempts: 1, backoffMs: 1 });
  redis.beforeClose(() => queue.close());
  const elsewhere = path.join(coordinator.dir, 'not-mounted');
  const job = { id: 'cafe01', source: path.join(elsewhere, 'inbox', VIDEO) } as Job;
  await queue.enqueue('extract-cafe01', { library: path.join(elsewhere, 'library'), job, settings: { dedup: {} as never, pngCompression: 'fast' } });
  const worker = startWorker(t, redis, coordinator);
  await worker.exited;
  assert.equal(worker.child.exitCode, 1, worker.output());
  assert.match(worker.output(), /not-mounted\/library: the library is not there on this machine .* this worker stops, its job goes back to the queue/);
  const back = await queue.find('extract-cafe01');
  assert.equal(back?.state, 'waiting');
  assert.equal(back?.attemptsMade, 0);
});
