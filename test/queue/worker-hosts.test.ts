/**
 * Extraction handed between machines, against a real redis-server, with a
 * coordinator and `celforge worker` processes on two 'hosts'
 * (CELFORGE_HOST_NAME): the worker on host-a SIGKILLed mid-extraction leaves
 * its lock on the video's frames, which host-b cannot judge by its pid; the
 * worker on host-b, handed the stalled job by the queue, takes that lock over
 * and finishes the video. Both workers are configured for another hardware
 * decoder (vaapi) than the coordinator (cuda): they decode as the job says.
 * What else the job carries over the worker's own configuration.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { validateConfig } from '../../src/config/load.ts';
import { extractSettingsOf, workerConfigFor } from '../../src/daemon/extract-job.ts';
import { makeClip } from '../fixtures/clips.ts';
import { RedisServer } from '../fixtures/redis-server.ts';
import { startWorkerProcess, type WorkerProcess } from '../fixtures/worker-process.ts';
import { readJobs, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

const clip = await makeClip({ width: 160, height: 90, seconds: 10 });
/** Short, so that a killed worker's job is taken over within seconds; long enough that a busy machine keeps its locks. */
const QUEUE_TIMING = { lockSeconds: 4, stalledSeconds: 2 };

/** `celforge worker` as `host`, its own configuration (hardware decoding: vaapi) and folder; stopped before Redis. */
function startWorker(t: TestContext, redis: RedisServer, host: string): WorkerProcess {
  const configFile = writeConfig(tempDir(t), { library: './worker-library', extract: { hwaccel: 'vaapi' }, queue: QUEUE_TIMING });
  return startWorkerProcess(redis, configFile, { CELFORGE_HOST_NAME: host });
}

test("a worker on another host killed mid-extraction: the worker handed its stalled job takes over its lock and finishes; both decode as the job says", async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'inbox', 'Show'), { recursive: true });
  const configFile = writeConfig(dir, {
    inbox: './inbox', library: './library', disk: { reserve: 0 }, watch: { settleSeconds: 0.1 }, notify: { desktop: false },
    extract: { hwaccel: 'cuda' }, queue: { redis: redis.url, ...QUEUE_TIMING },
  });
  const library = path.join(dir, 'library');
  const daemon = startDaemon(configFile);
  redis.beforeClose(() => stopDaemon(daemon));
  const first = startWorker(t, redis, 'host-a');
  copyFileSync(clip, path.join(dir, 'inbox', 'Show', 'Show 01.m2ts'));

  const videoDir = path.join(library, 'Show', '01');
  const frameMap = path.join(videoDir, 'frame-map.jsonl');
  const recorded = () => (existsSync(frameMap) ? readFileSync(frameMap, 'utf8').split('\n').filter(Boolean).length : 0);
  await waitFor('frames recorded by the worker on host-a', () => {
    const total = readJobs(library)[0]?.probe?.frameCount ?? 0;
    return recorded() > 0 && recorded() < total / 2;
  }, 90_000, 20);
  first.child.kill('SIGKILL');
  await first.exited;
  const left = JSON.parse(readFileSync(path.join(videoDir, '.lock'), 'utf8')) as { host: string; pid: number; command: string };
  assert.deepEqual([left.host, left.pid, left.command], ['host-a', first.child.pid, 'extract'], "host-a's lock is left on the frames");

  const second = startWorker(t, redis, 'host-b');
  const job = await waitFor('the job ready for review', () => {
    const [entry] = readJobs(library);
    if (entry?.state === 'failed') throw new Error(`the job failed: ${entry.error?.message}\n${second.output()}`);
    return entry?.state === 'ready-for-review' ? entry : undefined;
  }, 120_000, 200);
  assert.match(second.output(), new RegExp(`took over the frames' lock of the worker on host-a \\(pid ${first.child.pid}\\)`));
  assert.match(second.output(), /resuming extraction/, 'host-b resumed from what host-a recorded');
  assert.equal(job.extract!.framesDone, job.probe!.frameCount);
  assert.equal(recorded(), job.probe!.frameCount);
  assert.ok(!existsSync(path.join(videoDir, '.lock')), 'the lock released');

  // Configured for vaapi, each worker tried the job's cuda: here it falls back to software and says so; where CUDA works, it is used.
  for (const [host, output] of [['host-a', first.output()], ['host-b', second.output()]] as const) {
    assert.doesNotMatch(output, /vaapi/, `${host} did not use its own setting`);
  }
  if (job.extract!.hwaccel !== 'cuda') assert.match(second.output(), /hardware decoding \(cuda\) is not available here/);
  assert.doesNotMatch(first.output() + second.output() + daemon.output(), new RegExp(redis.password));
});

test("a job's settings over the worker's own configuration: the coordinator's decoding, output and reserve, the worker's machine", () => {
  const coordinator = validateConfig({
    library: '/coordinator/library', extract: { hwaccel: 'cuda', pngCompression: 'small', threads: 1 }, disk: { reserve: 12345 },
    dedup: { policy: 'move', previewWidth: 64, thresholds: { global: 9 } },
  }, 'coordinator', '/');
  const worker = validateConfig({
    library: '/worker/library', extract: { hwaccel: 'vaapi', threads: 3 }, disk: { reserve: 99 }, ffmpeg: { ffmpegPath: '/opt/ffmpeg' },
    queue: { pathMap: { '/coordinator': '/mnt/nas' } },
  }, 'worker', '/');
  const config = workerConfigFor(worker, '/mnt/nas/library', extractSettingsOf(coordinator));
  assert.equal(config.library, '/mnt/nas/library');
  assert.deepEqual(config.extract, { hwaccel: 'cuda', pngCompression: 'small', threads: 3 });
  assert.deepEqual(config.dedup, coordinator.dedup);
  assert.equal(config.disk.reserve, 12345);
  assert.equal(config.disk.checkIntervalSeconds, worker.disk.checkIntervalSeconds);
  assert.deepEqual([config.ffmpeg, config.queue], [worker.ffmpeg, worker.queue]);
  // A job queued by an older coordinator carries neither: the worker's own apply.
  const { dedup, pngCompression } = extractSettingsOf(coordinator);
  const older = workerConfigFor(worker, '/mnt/nas/library', { dedup, pngCompression });
  assert.deepEqual([older.extract.hwaccel, older.disk.reserve], ['vaapi', 99]);
});
