import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Job } from '../../src/daemon/job.ts';
import { Ledger } from '../../src/daemon/ledger.ts';
import { CelforgeError } from '../../src/errors.ts';
import { tempDir } from '../helpers.ts';

function newJob(id: string): Job {
  const now = new Date().toISOString();
  return {
    id, source: `/inbox/${id}.m2ts`, seenAs: [`/inbox/${id}.m2ts`], sizeBytes: 1, series: 's', episode: '01',
    stage: 'probe', state: 'queued', progress: null, timings: {}, createdAt: now, updatedAt: now,
  };
}

test('jobs are written to the JSON file and read back by a new process', async (t) => {
  const file = path.join(tempDir(t), 'state', 'jobs.json');
  const ledger = await Ledger.open(file);
  await ledger.add(newJob('a'));
  await ledger.update('a', (job) => {
    job.state = 'running';
    job.progress = { done: 5, total: 10 };
  });
  const onDisk = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(onDisk.jobs[0].state, 'running');
  const reopened = await Ledger.read(file);
  assert.deepEqual(reopened[0]!.progress, { done: 5, total: 10 });
  assert.deepEqual(readdirSync(path.dirname(file)), ['jobs.json'], 'a temporary file was left behind');
});

test('a damaged ledger is refused with a clear message and kept, never reset', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'jobs.json');
  writeFileSync(file, '{"version":1,"jobs":[{"id":"a"');
  await assert.rejects(Ledger.open(file), (error: unknown) => {
    assert.ok(error instanceof CelforgeError);
    assert.equal(error.code, 'LEDGER_CORRUPT');
    assert.match(error.message, /jobs\.json: the job ledger is damaged/);
    assert.match(error.message, /A copy was kept at .*damaged-/);
    return true;
  });
  assert.equal(readFileSync(file, 'utf8'), '{"version":1,"jobs":[{"id":"a"', 'the damaged file was changed');
  const backups = readdirSync(dir).filter((name) => name.includes('damaged-'));
  assert.equal(backups.length, 1);
  assert.ok(existsSync(path.join(dir, backups[0]!)));
});
