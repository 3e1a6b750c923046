/**
 * Twenty rips dropped at once: each becomes a job, they run one at a time
 * in the order they arrived, and all finish. (Memory over a long run is
 * measured by bench/load.bench.ts, not asserted here.)
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { makeClip } from '../fixtures/clips.ts';
import { readJobs, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

const RIPS = 20;

test('20 rips dropped at once are queued and processed one at a time, in arrival order', async (t) => {
  // Twenty different contents (the same content twice would rightly be one job).
  const clips = await Promise.all(Array.from({ length: RIPS }, (_, i) => makeClip({ width: 320 + 16 * i, height: 180, seconds: 1 })));
  const dir = tempDir(t);
  const inbox = path.join(dir, 'inbox', 'Load');
  mkdirSync(inbox, { recursive: true });
  const configFile = writeConfig(dir, { inbox: './inbox', library: './library', watch: { settleSeconds: 0.5 }, disk: { reserve: 0 }, notify: { desktop: false } });
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  await waitFor('the daemon to watch', () => daemon.output().includes('watching the inbox'));
  clips.forEach((clip, i) => copyFileSync(clip, path.join(inbox, `Load ${String(i + 1).padStart(2, '0')}.m2ts`)));
  const library = path.join(dir, 'library');
  const jobs = await waitFor('every rip to be processed', () => {
    const all = readJobs(library);
    return all.length === RIPS && all.every((job) => job.state === 'ready-for-review') ? all : false;
  }, 240_000);
  await stopDaemon(daemon);

  assert.equal(new Set(jobs.map((job) => job.episode)).size, RIPS, 'one job per rip');
  const byArrival = [...jobs].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  const runs = byArrival.map((job) => ({ start: Date.parse(job.timings.probe!.startedAt), end: Date.parse(job.timings.catalog!.finishedAt!) }));
  for (let i = 1; i < runs.length; i += 1) {
    assert.ok(runs[i]!.start >= runs[i - 1]!.end, `job ${i} started before job ${i - 1} finished: one at a time, in arrival order`);
  }
});
