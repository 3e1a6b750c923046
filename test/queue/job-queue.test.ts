/**
 * The job queue adapter against a real redis-server: enqueue under a stable
 * id is idempotent, progress and results come back, a failing job is retried
 * with backoff and ends in the failed set, a Redis crash keeps the queue
 * (AOF), a job whose lock another worker holds now is given up, and the
 * password shows in no error.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { openJobQueue, startQueueWorker, type WorkerSettings } from '../../src/adapters/job-queue.ts';
import { validateConfig } from '../../src/config/load.ts';
import { CelforgeError } from '../../src/errors.ts';
import { RedisServer } from '../fixtures/redis-server.ts';
import { projectRoot, tempDir, waitFor, writeConfig } from '../helpers.ts';

const WORKER: WorkerSettings = { concurrency: 1, lockMs: 30_000, stalledMs: 30_000, maxStalled: 1, gpu: 0, heartbeatMs: 1000 };

test('enqueue under a job id twice adds one job, which keeps the first data, and survives Redis killed and restarted', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const queue = await openJobQueue<{ video: string }, never>(redis.url, 'idempotent', { attempts: 1, backoffMs: 1000 });
  redis.beforeClose(() => queue.close());
  assert.equal(await queue.enqueue('extract-abc', { video: 'first.m2ts' }), true);
  assert.equal(await queue.enqueue('extract-abc', { video: 'second.m2ts' }), false);
  assert.equal((await queue.depths()).waiting, 1);
  assert.deepEqual((await queue.find('extract-abc'))?.data, { video: 'first.m2ts' });

  await redis.kill();
  await redis.start();
  // The producer reconnects by itself; a lookup during the reconnect may fail and is tried again.
  const found = await waitFor('the job after the restart', () => queue.find('extract-abc').catch(() => undefined), 30_000);
  assert.equal(found?.state, 'waiting');
  assert.deepEqual(found?.data, { video: 'first.m2ts' });
  await queue.remove('extract-abc');
  assert.equal(await queue.find('extract-abc'), null);
  assert.equal(await queue.enqueue('extract-abc', { video: 'third.m2ts' }), true, 'a removed job may be enqueued again');
});

test('a process taking jobs from two queues is one worker: it names the job either runs, and leaves when both close', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const first = await openJobQueue<{ n: number }, null>(redis.url, 'first', { attempts: 1, backoffMs: 1000 });
  const second = await openJobQueue<{ n: number }, null>(redis.url, 'second', { attempts: 1, backoffMs: 1000 });
  redis.beforeClose(() => first.close());
  redis.beforeClose(() => second.close());
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const idle = await startQueueWorker<{ n: number }, null>(redis.url, 'first', async () => null, WORKER, (error) => assert.fail(error));
  const busy = await startQueueWorker<{ n: number }, null>(redis.url, 'second', async () => {
    await released;
    return null;
  }, WORKER, (error) => assert.fail(error));
  redis.beforeClose(() => idle.close());
  redis.beforeClose(() => busy.close());
  await second.enqueue('job-2', { n: 2 });
  t.after(() => release());
  const info = await waitFor('the worker naming the second queue\'s job', async () => (await first.workers()).find((w) => w.job === 'job-2'));
  assert.equal((await first.workers()).length, 1, 'one announcement for the process');
  assert.equal(info.pid, process.pid);
  // The idle queue worker's heartbeat must not say the process is idle while the other runs a job.
  await new Promise((resolve) => setTimeout(resolve, WORKER.heartbeatMs * 3));
  assert.deepEqual((await first.workers()).map((w) => w.job), ['job-2']);
  release();
  assert.equal(await idle.close(), true);
  assert.equal((await first.workers()).length, 1, 'still announced while one of its queue workers runs');
  assert.equal(await busy.close(), true);
  assert.deepEqual(await first.workers(), [], 'gone once both closed');
});

test('a worker reports progress and itself while it runs, and its result is the job\'s', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const queue = await openJobQueue<{ n: number }, { doubled: number }>(redis.url, 'progress', { attempts: 1, backoffMs: 1000 });
  redis.beforeClose(() => queue.close());
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const worker = await startQueueWorker<{ n: number }, { doubled: number }>(redis.url, 'progress', async (job) => {
    await job.progress({ done: 1, total: 2 });
    await released;
    return { doubled: job.data.n * 2 };
  }, { ...WORKER, gpu: 1 }, (error) => assert.fail(error));
  redis.beforeClose(() => worker.close());

  await queue.enqueue('job-1', { n: 21 });
  const running = await waitFor('progress', async () => {
    const job = await queue.find('job-1');
    return job?.state === 'active' && (job.progress as { done?: number }).done === 1 ? job : undefined;
  });
  assert.deepEqual(running.progress, { done: 1, total: 2 });
  const info = await waitFor('the worker naming its job', async () => (await queue.workers()).find((w) => w.job === 'job-1'));
  assert.equal(info.id, worker.id);
  assert.equal(info.gpu, 1);
  assert.equal(info.pid, process.pid);
  assert.ok(Date.parse(info.lastSeen) > 0);

  release();
  const done = await waitFor('completion', async () => {
    const job = await queue.find('job-1');
    return job?.state === 'completed' ? job : undefined;
  });
  assert.deepEqual(done.result, { doubled: 42 });
  assert.equal((await queue.depths()).completed, 1);
  await worker.close();
  assert.deepEqual(await queue.workers(), [], 'a worker that closes leaves the list');

  // One that was killed stays, shown as last seen, until a day has passed.
  const raw = new Redis(redis.url);
  redis.beforeClose(() => raw.disconnect());
  const seen = (hoursAgo: number) => JSON.stringify({ id: `box:${hoursAgo}`, host: 'box', pid: hoursAgo, gpu: null, job: null, lastSeen: new Date(Date.now() - hoursAgo * 3600_000).toISOString() });
  await raw.hset('celforge:workers', 'box:1', seen(1), 'box:25', seen(25));
  assert.deepEqual((await queue.workers()).map((w) => w.id), ['box:1']);
  assert.deepEqual(await raw.hkeys('celforge:workers'), ['box:1']);
});

test('a job whose lock another worker holds now: its signal aborts once, saying why, and nothing the handler does after reaches the job', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const queue = await openJobQueue<{ n: number }, string>(redis.url, 'claimed', { attempts: 1, backoffMs: 1000 });
  redis.beforeClose(() => queue.close());
  const said: string[] = [];
  let ended!: (reason: unknown) => void;
  const endedWith = new Promise((resolve) => (ended = resolve));
  const worker = await startQueueWorker<{ n: number }, string>(redis.url, 'claimed', async (job) => {
    await new Promise((resolve) => job.signal.addEventListener('abort', resolve, { once: true }));
    await job.progress({ done: 1 });
    ended(job.signal.reason);
    return 'finished here';
  }, { ...WORKER, lockMs: 1000 }, (error) => said.push(error.message));
  redis.beforeClose(() => worker.close());
  await queue.enqueue('job-taken', { n: 1 });
  await waitFor('the job running', async () => (await queue.workers()).find((w) => w.job === 'job-taken'));

  // Another worker's takeover: the lock holds its token (BullMQ's key bull:<queue>:<id>:lock), so the next renewal is refused.
  const raw = new Redis(redis.url);
  redis.beforeClose(() => raw.disconnect());
  await raw.set('bull:claimed:job-taken:lock', 'another-worker', 'PX', 60_000);
  const reason = await endedWith;
  assert.ok(reason instanceof CelforgeError);
  assert.equal(reason.code, 'CLAIM_LOST');
  assert.match(reason.message, /^job job-taken: this worker no longer holds it: Redis refused to renew its lock .*this one stops it and writes nothing more for it$/);
  await waitFor('the handler ended', async () => (await queue.workers()).find((w) => w.job === null));
  const job = await queue.find('job-taken');
  assert.equal(job?.state, 'active', 'neither completed nor failed by this worker: the other one holds it');
  assert.equal(job?.result, null);
  assert.equal(job?.progress, 0, 'progress after the loss is not sent');
  assert.deepEqual(said, [reason.message], "said once; BullMQ's own word on the refused renewal is not repeated");
});

test('a job that keeps failing is tried `attempts` times, backing off, and ends in the failed set with its error', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const backoffMs = 300;
  const queue = await openJobQueue<{ n: number }, never>(redis.url, 'failing', { attempts: 3, backoffMs });
  redis.beforeClose(() => queue.close());
  const tries: number[] = [];
  const worker = await startQueueWorker<{ n: number }, never>(redis.url, 'failing', async (job) => {
    tries.push(Date.now());
    throw new Error(`boom on attempt ${job.attemptsMade + 1}`);
  }, WORKER, (error) => assert.fail(error));
  redis.beforeClose(() => worker.close());

  await queue.enqueue('job-bad', { n: 1 });
  const failed = await waitFor('the failed set', async () => (await queue.failed()).find((job) => job.id === 'job-bad'));
  assert.equal(tries.length, 3);
  assert.equal(failed.attemptsMade, 3);
  assert.equal(failed.error, 'boom on attempt 3');
  assert.equal((await queue.depths()).failed, 1);
  // Exponential: at least backoffMs before the second try, twice that before the third (a busy machine only adds).
  assert.ok(tries[1]! - tries[0]! >= backoffMs, `second try ${tries[1]! - tries[0]!} ms after the first`);
  assert.ok(tries[2]! - tries[1]! >= 2 * backoffMs, `third try ${tries[2]! - tries[1]!} ms after the second`);
});

test('a wrong password or address is one clear error that never shows the password; nor does a config refusal', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const wrong = `redis://:not-${redis.password}@127.0.0.1:${redis.port}`;
  await assert.rejects(openJobQueue(wrong, 'x', { attempts: 1, backoffMs: 1 }), (error: unknown) => {
    assert.ok(error instanceof CelforgeError);
    assert.equal(error.code, 'QUEUE_UNREACHABLE');
    assert.match(error.message, /redis:\/\/:\(hidden\)@127\.0\.0\.1:\d+/);
    assert.match(error.message, /WRONGPASS|invalid/i);
    assert.doesNotMatch(error.message, new RegExp(redis.password));
    return true;
  });
  await assert.rejects(startQueueWorker(`redis://:${redis.password}@127.0.0.1:1`, 'x', async () => null, WORKER, () => undefined), (error: unknown) => {
    assert.ok(error instanceof CelforgeError);
    assert.match(error.message, /ECONNREFUSED/);
    assert.doesNotMatch(error.message, new RegExp(redis.password));
    return true;
  });
  assert.throws(() => validateConfig({ queue: { redis: `http://:${redis.password}@nas.local` } }, 'daemon.config.ts', '/'), (error: unknown) => {
    assert.match((error as Error).message, /queue\.redis .*expected a redis:\/\/ or rediss:\/\//);
    assert.doesNotMatch((error as Error).message, new RegExp(redis.password));
    return true;
  });
  assert.equal(validateConfig({}, 'daemon.config.ts', '/').queue.redis, undefined, 'no Redis unless configured');
});

test("Redis settings that put queued jobs at risk are named: no AOF, a maxmemory-policy that evicts", async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const queue = await openJobQueue(redis.url, 'settings', { attempts: 1, backoffMs: 1 });
  redis.beforeClose(() => queue.close());
  assert.deepEqual(await queue.settingsAtRisk(), []);
  const raw = new Redis(redis.url);
  redis.beforeClose(() => raw.disconnect());
  await raw.call('CONFIG', 'SET', 'appendonly', 'no');
  await raw.call('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
  const risks = await queue.settingsAtRisk();
  assert.equal(risks.length, 2);
  assert.match(risks[0]!, /without appendonly \(AOF\).*set appendonly yes/);
  assert.match(risks[1]!, /maxmemory-policy is allkeys-lru.*set maxmemory-policy noeviction/);
});

test('rediss://: status reads the queue over TLS from a server whose certificate it trusts, and refuses one it does not', async (t) => {
  const redis = await RedisServer.open(t, { tls: true });
  if (!redis) return;
  const dir = tempDir(t);
  const configFile = writeConfig(dir, { library: './library', queue: { redis: redis.url } });
  const status = async (env: NodeJS.ProcessEnv) => {
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(projectRoot, 'bin', 'celforge.js'), '--config', configFile, 'status', '--json'], { env: { ...process.env, ...env } });
    assert.doesNotMatch(stdout, new RegExp(redis.password));
    return JSON.parse(stdout).queue;
  };
  const trusted = await status({ NODE_EXTRA_CA_CERTS: redis.certificate! });
  assert.equal(trusted.redis, `rediss://:(hidden)@localhost:${redis.port}`);
  assert.equal(trusted.error, undefined);
  assert.deepEqual(trusted.depths, { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 });
  const untrusted = await status({ NODE_EXTRA_CA_CERTS: '' });
  assert.match(untrusted.error, /cannot use the job queue's Redis \(self[- ]signed certificate/);
});

test('an ACL user in the address: its jobs go in; a wrong password for it is refused, the user named, the password not', async (t) => {
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const raw = new Redis(redis.url);
  redis.beforeClose(() => raw.disconnect());
  await raw.call('ACL', 'SETUSER', 'celforge', 'on', '>p@ss:word/1', '~*', '&*', '+@all');
  const url = `redis://celforge:${encodeURIComponent('p@ss:word/1')}@127.0.0.1:${redis.port}`;
  const queue = await openJobQueue(url, 'acl', { attempts: 1, backoffMs: 1 });
  redis.beforeClose(() => queue.close());
  assert.equal(await queue.enqueue('job-acl', { n: 1 }), true);
  assert.equal((await queue.depths()).waiting, 1);
  await assert.rejects(openJobQueue(`redis://celforge:not-it@127.0.0.1:${redis.port}`, 'acl', { attempts: 1, backoffMs: 1 }), (error: unknown) => {
    assert.match((error as Error).message, /^redis:\/\/celforge:\(hidden\)@127\.0\.0\.1:\d+: cannot use the job queue's Redis \(WRONGPASS/);
    assert.doesNotMatch((error as Error).message, /not-it/);
    return true;
  });
});
