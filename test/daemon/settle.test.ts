import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { SettleTracker } from '../../src/daemon/settle.ts';
import { tempDir } from '../helpers.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('a file written slowly is taken only once it has not changed for the settle time', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'slow.m2ts');
  const settled: { file: string; at: number }[] = [];
  const tracker = new SettleTracker(400, (f) => settled.push({ file: f, at: Date.now() }));
  t.after(() => tracker.close());

  writeFileSync(file, 'a');
  await tracker.touch(file);
  let lastWrite = Date.now();
  for (let i = 0; i < 8; i += 1) {
    await sleep(150);
    appendFileSync(file, 'more bytes');
    lastWrite = Date.now();
    await tracker.touch(file);
    assert.equal(settled.length, 0, `taken while still being written (write ${i})`);
  }
  await sleep(1000);
  assert.equal(settled.length, 1);
  assert.equal(settled[0]!.file, file);
  assert.ok(settled[0]!.at - lastWrite >= 400, 'taken before the settle time had passed since the last write');
});

test('an unchanged file is reported once; a changed one again', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'a.m2ts');
  const settled: string[] = [];
  const tracker = new SettleTracker(50, (f) => settled.push(f));
  t.after(() => tracker.close());
  writeFileSync(file, 'one');
  await tracker.touch(file);
  await sleep(200);
  await tracker.touch(file);
  await sleep(200);
  assert.equal(settled.length, 1);
  writeFileSync(file, 'two, longer');
  await tracker.touch(file);
  await sleep(200);
  assert.equal(settled.length, 2);
});

test('a file deleted before it settles is dropped', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'gone.m2ts');
  const settled: string[] = [];
  const tracker = new SettleTracker(100, (f) => settled.push(f));
  t.after(() => tracker.close());
  writeFileSync(file, 'x');
  await tracker.touch(file);
  const { rmSync } = await import('node:fs');
  rmSync(file);
  await sleep(300);
  assert.equal(settled.length, 0);
  assert.equal(tracker.pendingCount, 0);
});
