import assert from 'node:assert/strict';
import { copyFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { validateConfig } from '../../src/config/load.ts';
import { intakeVideo } from '../../src/daemon/intake.ts';
import { Ledger } from '../../src/daemon/ledger.ts';
import { tempDir } from '../helpers.ts';

const log = pino({ level: 'silent' });

async function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const config = validateConfig({}, 'test', dir);
  const ledger = await Ledger.open(path.join(dir, 'jobs.json'));
  return { dir, config, ledger };
}

test('the same content under two names is one job; different content is another', async (t) => {
  const { dir, config, ledger } = await setup(t);
  const a = path.join(dir, 'a.m2ts');
  writeFileSync(a, Buffer.alloc(3 * 1024 * 1024, 7));
  const b = path.join(dir, 'b.m2ts');
  copyFileSync(a, b);
  const first = await intakeVideo(a, ledger, config, log);
  const second = await intakeVideo(b, ledger, config, log);
  assert.equal(first.isNew, true);
  assert.equal(second.isNew, false);
  assert.equal(second.job.id, first.job.id);
  assert.deepEqual(second.job.seenAs, [a, b]);
  assert.equal(second.job.source, a, 'the original is still there, so it stays the source');

  const c = path.join(dir, 'c.m2ts');
  const changed = Buffer.alloc(3 * 1024 * 1024, 7);
  changed[changed.length - 1] = 8; // differs only in the last byte: the tail hash sees it
  writeFileSync(c, changed);
  assert.equal((await intakeVideo(c, ledger, config, log)).isNew, true);
  assert.equal(ledger.jobs().length, 2);
});

test('a video renamed before it was processed keeps its job, which follows the new path', async (t) => {
  const { dir, config, ledger } = await setup(t);
  const before = path.join(dir, 'Show 01.m2ts');
  writeFileSync(before, Buffer.alloc(4096, 1));
  const { job } = await intakeVideo(before, ledger, config, log);
  const after = path.join(dir, 'Show - 01 (renamed).m2ts');
  renameSync(before, after);
  const again = await intakeVideo(after, ledger, config, log);
  assert.equal(again.isNew, false);
  assert.equal(again.job.id, job.id);
  assert.equal(ledger.get(job.id)!.source, after);
});
