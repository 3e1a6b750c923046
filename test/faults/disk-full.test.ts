/**
 * The disk really fills during extraction: the library is a small tmpfs
 * (needs permission to mount; skipped, with the reason, where there is
 * none). Extraction pauses on "no space left on device", keeps nothing
 * half-written, and when the volume grows it resumes and ends with the same
 * frames as a run on a roomy disk.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { makeClip } from '../fixtures/clips.ts';
import { hashTree, readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

test('a full library volume pauses extraction, keeps nothing partial, and resumes when it grows', async (t) => {
  const clip = await makeClip({ width: 1280, height: 720, seconds: 3 });
  // Not tempDir(): the volume must be unmounted before its folder is removed.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-test-full-'));
  const library = path.join(dir, 'library');
  mkdirSync(library);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', library], { encoding: 'utf8' });
  t.after(() => {
    if (mounted.status === 0) spawnSync('umount', ['-l', library]);
    rmSync(dir, { recursive: true, force: true });
  });
  if (mounted.status !== 0) {
    t.skip(`cannot mount a size-limited tmpfs here (${(mounted.stderr || String(mounted.error)).trim()})`);
    return;
  }

  const reference = tempDir(t);
  const referenceConfig = writeConfig(reference, { library: './library', disk: { reserve: 0 } });
  // The same name, so that frames and the frame map are named alike.
  const referenceVideo = path.join(reference, 'Full 01.m2ts');
  execFileSync('cp', [clip, referenceVideo]);
  assert.equal((await runCli(['--config', referenceConfig, 'process', referenceVideo], { cwd: reference })).code, 0);
  const referenceDir = readJobs(path.join(reference, 'library'))[0]!.extract!.dir;

  // The estimate is told most frames repeat, so the gate lets the job start; the real frames then fill the volume.
  // The video arrives whole (renamed into the inbox), so a short settle time is safe: with the default 30 s, the
  // test spent most of its time waiting for the job to be created.
  const configFile = writeConfig(dir, {
    library: './library', watch: { settleSeconds: 0.2 },
    disk: { reserve: 0, expectedKeptFraction: 0.01, recheckSeconds: 0.5, checkIntervalSeconds: 0.5 }, notify: { desktop: false },
  });
  mkdirSync(path.join(dir, 'inbox'));
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  await waitFor('the daemon to watch', () => daemon.output().includes('watching the inbox'), 120_000);
  execFileSync('cp', [clip, path.join(dir, 'Full 01.m2ts')]);
  renameSync(path.join(dir, 'Full 01.m2ts'), path.join(dir, 'inbox', 'Full 01.m2ts'));
  const paused = await waitFor('extraction to pause on a full disk', () => readJobs(library).find((job) => job.state === 'paused-disk-low'), 120_000);
  // The ledger is saved before the line is logged, and the log reaches this process later still.
  await waitFor('the pause to be logged', () => /paused-disk-low: the library volume is full \(no space left on device\)/.test(daemon.output()), 30_000);
  const partial = readdirSync(paused.extract!.dir, { recursive: true }).map(String).filter((name) => name.endsWith('.tmp') || name.endsWith('.partial'));
  assert.deepEqual(partial, [], 'nothing half-written is kept');

  execFileSync('mount', ['-o', 'remount,size=200m', library]);
  const done = await waitFor('the job to finish once the volume grew', () => readJobs(library).find((job) => job.state === 'ready-for-review'), 120_000);
  await stopDaemon(daemon);
  const [result, expected] = [hashTree(done.extract!.dir), hashTree(referenceDir)];
  assert.deepEqual([...result.keys()], [...expected.keys()]);
  for (const [name, hash] of expected) assert.equal(result.get(name), hash, name);
});
