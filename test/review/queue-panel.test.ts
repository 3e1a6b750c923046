/**
 * The dashboard's Workers panel in headless Chromium, against a real
 * redis-server and a coordinator daemon: the queue's depths, a worker with
 * its host, current job and live progress, a worker that stopped answering
 * marked so, a failed job with its error; host names and errors shown as
 * text, never as markup; the Redis password in neither the API nor the page.
 * Without queue.redis the panel stays hidden.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { openJobQueue, QUEUE_NAMES, startQueueWorker, type QueueJobContext } from '../../src/adapters/job-queue.ts';
import type { ExtractJobData, ExtractJobResult } from '../../src/daemon/extract-job.ts';
import type { Job } from '../../src/daemon/job.ts';
import { openPage } from '../fixtures/browser-page.ts';
import { RedisServer } from '../fixtures/redis-server.ts';
import { requireChromium } from '../fixtures/required-program.ts';
import { startDaemon, stopDaemon, tempDir, waitFor, writeConfig, type DaemonProcess } from '../helpers.ts';

const HOSTILE_HOST = '<img src=x onerror="window.pwned=1">box-b';
const HOSTILE_ERROR = '<script>window.pwned=2</script>decoder exploded';

function coordinator(t: Parameters<typeof tempDir>[0], queue: Record<string, unknown>): { daemon: DaemonProcess; url: Promise<string> } {
  const dir = tempDir(t);
  const daemon = startDaemon(writeConfig(dir, { inbox: './inbox', library: './library', disk: { reserve: 0 }, notify: { desktop: false }, queue }));
  const url = waitFor('the review page', () => /review page: (http:\/\/\S+\/)/.exec(daemon.output())?.[1], 30_000);
  return { daemon, url };
}

function queueData(id: string, source: string): ExtractJobData {
  return { library: '/library', job: { id, source } as Job, settings: {} as ExtractJobData['settings'] };
}

test('Workers panel: depths, workers with job and progress, a stopped worker, a failed job; hostile text stays text', async (t) => {
  if (!requireChromium(t)) return;
  const redis = await RedisServer.open(t);
  if (!redis) return;
  const { daemon, url: reviewUrl } = coordinator(t, { redis: redis.url });
  redis.beforeClose(() => stopDaemon(daemon));
  const url = await reviewUrl;

  const queue = await openJobQueue<ExtractJobData, ExtractJobResult>(redis.url, QUEUE_NAMES.extract, { attempts: 1, backoffMs: 100 });
  redis.beforeClose(() => queue.close());
  let progressNow!: (done: number) => Promise<void>;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const handler = async (job: QueueJobContext<ExtractJobData>): Promise<ExtractJobResult> => {
    if (job.id === 'extract-bad') throw new Error(HOSTILE_ERROR);
    progressNow = (done) => job.progress({ done, total: 48 });
    await progressNow(12);
    await finished;
    return job.putBack();
  };
  process.env.CELFORGE_HOST_NAME = HOSTILE_HOST;
  const worker = await startQueueWorker<ExtractJobData, ExtractJobResult>(redis.url, QUEUE_NAMES.extract, handler, {
    concurrency: 1, lockMs: 30_000, stalledMs: 30_000, maxStalled: 1, gpu: 1, heartbeatMs: 1000,
  }, () => undefined);
  delete process.env.CELFORGE_HOST_NAME;
  redis.beforeClose(() => worker.close(true));
  redis.beforeClose(finish);
  // A machine switched off a minute ago: its last announcement stays in the list (the adapter's registry hash).
  const raw = new Redis(redis.url);
  redis.beforeClose(() => raw.quit());
  await raw.hset('celforge:workers', 'old-box:77', JSON.stringify({ id: 'old-box:77', host: 'old-box', pid: 77, gpu: null, job: null, lastSeen: new Date(Date.now() - 60_000).toISOString() }));

  await queue.enqueue('extract-bad', queueData('bad', '/videos/<b>broken</b>.mkv'));
  await waitFor('the failed job', async () => (await queue.find('extract-bad'))?.state === 'failed');
  await queue.enqueue('extract-long', queueData('long', '/videos/Film 01.mkv'));
  await waitFor('the running job', async () => ((await queue.find('extract-long'))?.progress as { done?: number } | undefined)?.done === 12);

  const { page, errors } = await openPage(t);
  await page.goto(url);
  const panel = page.locator('#workers-panel');
  await panel.waitFor();
  await page.locator('#queue-summary', { hasText: '0 waiting, 1 running, 0 waiting to retry, 1 failed; 2 workers' }).waitFor();
  assert.match(await page.locator('#queue-summary').innerText(), /:\(hidden\)@127\.0\.0\.1:/, 'the address with its password hidden');
  assert.equal(await page.locator('#queue-kinds li[data-queue="extract"]').innerText(), 'extract: 0 waiting, 1 running, 0 waiting to retry, 1 failed');
  assert.equal(await page.locator('#queue-kinds li[data-queue="faces"]').innerText(), 'faces: 0 waiting, 0 running, 0 waiting to retry, 0 failed');

  const live = page.locator(`#workers tr[data-worker=${JSON.stringify(`${HOSTILE_HOST}:${process.pid}`)}]`);
  const cells = await live.locator('td').allInnerTexts();
  assert.equal(cells[0], `${HOSTILE_HOST} (pid ${process.pid})`, 'the host name as text');
  assert.equal(cells[1], '1', 'its GPU');
  assert.equal(cells[2], 'extract-long Film 01.mkv', 'its current job and video');
  assert.equal(await live.locator('progress').getAttribute('value'), '12');
  assert.equal(await live.locator('progress').getAttribute('max'), '48');
  assert.doesNotMatch(cells[4]!, /stopped/);
  assert.equal(await live.getAttribute('class'), null);

  const stale = page.locator('#workers tr[data-worker="old-box:77"]');
  assert.equal(await stale.getAttribute('class'), 'stopped');
  assert.match(await stale.locator('td.seen').innerText(), /^\d+ s ago \(stopped\?\)$/);
  assert.equal(await stale.locator('td').nth(2).innerText(), 'idle');

  const failed = page.locator('#failed-jobs tr[data-queue-job="extract-bad"]');
  assert.deepEqual(await failed.locator('td').allInnerTexts(), ['extract-bad', '/videos/<b>broken</b>.mkv', '1', HOSTILE_ERROR]);

  // Progress follows without a reload.
  await progressNow(30);
  await live.locator('progress[value="30"]').waitFor();

  assert.equal(await panel.locator('img, script, b').count(), 0, 'no markup made from the hostile strings');
  assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined);
  assert.ok(!(await page.content()).includes(redis.password), 'the password is not in the page');
  const body = await (await fetch(new URL('/api/status', url))).text();
  assert.ok(!body.includes(redis.password), 'the password is not in the API');
  const status = JSON.parse(body) as { queue: { redis: string; workers: { id: string; stopped: boolean; progress: unknown }[] } };
  assert.match(status.queue.redis, /^redis:\/\/:\(hidden\)@127\.0\.0\.1:\d+\/?$/);
  const stopped = Object.fromEntries(status.queue.workers.map((entry) => [entry.id, entry.stopped]));
  assert.deepEqual(stopped, { [`${HOSTILE_HOST}:${process.pid}`]: false, 'old-box:77': true });
  assert.deepEqual(errors, [], 'no script errors on the page');
});

test('Workers panel: hidden without queue.redis', async (t) => {
  if (!requireChromium(t)) return;
  const { daemon, url: reviewUrl } = coordinator(t, {});
  t.after(() => stopDaemon(daemon));
  const url = await reviewUrl;
  const status = (await (await fetch(new URL('/api/status', url))).json()) as { queue: unknown };
  assert.equal(status.queue, null);
  const { page, errors } = await openPage(t);
  await page.goto(url);
  await page.locator('#training', { hasText: 'Training is not configured' }).waitFor();
  assert.equal(await page.locator('#workers-panel').isHidden(), true);
  assert.deepEqual(errors, []);
});
