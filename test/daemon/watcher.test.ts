import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { makeClip } from '../fixtures/clips.ts';
import { readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

test('the periodic rescan finds a video the watcher did not report (polling too slow to notice it)', async (t) => {
  const clip = await makeClip({ width: 320, height: 180, seconds: 1 });
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'inbox', 'nested', 'deeper'), { recursive: true });
  const configFile = writeConfig(dir, {
    watch: { settleSeconds: 0.2, polling: true, pollIntervalSeconds: 3600, rescanMinutes: 0.02 },
    disk: { reserve: 0 },
  });
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  await waitFor('the daemon to watch', () => daemon.output().includes('watching the inbox'));
  copyFileSync(clip, path.join(dir, 'inbox', 'nested', 'deeper', 'Late 02.m2ts'));
  const job = await waitFor('the rescan to find the video', () => readJobs(path.join(dir, 'library')).find((j) => j.state === 'ready-for-review'));
  assert.equal(job.episode, '02');
});

test('hardware decoding that cannot load falls back to software with a log line', async (t) => {
  const clip = await makeClip({ width: 320, height: 180, seconds: 1 });
  const dir = tempDir(t);
  const configFile = writeConfig(dir, { extract: { hwaccel: 'cuda' }, disk: { reserve: 0 } });
  const result = await runCli(['--config', configFile, 'process', clip], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  const job = readJobs(path.join(dir, 'library'))[0]!;
  assert.equal(job.state, 'ready-for-review');
  if (job.extract!.hwaccel === 'cuda') return; // a machine where CUDA decoding works: nothing to fall back from
  assert.equal(job.extract!.hwaccel, 'none');
  assert.match(result.stderr, /hardware decoding \(cuda\) is not available here; decoding in software/);
});

test('a second writer on the same library is refused with a message naming the holder', async (t) => {
  const dir = tempDir(t);
  const configFile = writeConfig(dir, { disk: { reserve: 0 } });
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  await waitFor('the daemon to watch', () => daemon.output().includes('watching the inbox'));
  const clip = await makeClip({ width: 320, height: 180, seconds: 1 });
  const result = await runCli(['--config', configFile, 'process', clip], { cwd: dir });
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`library is in use by celforge start \\(pid ${daemon.child.pid}\\)`));
});

test('an inbox on a network share is waited for until mounted: an empty mount point is not read, nothing is created there', async (t) => {
  const clip = await makeClip({ width: 320, height: 180, seconds: 1 });
  const dir = tempDir(t);
  // The share: a folder on another file system than / (a tmpfs); unmounted, it is simply not there.
  assert.ok(existsSync('/dev/shm') && statSync('/dev/shm').dev !== statSync('/').dev, 'this test needs /dev/shm on its own file system');
  const share = mkdtempSync('/dev/shm/celforge-share-');
  t.after(() => rmSync(share, { recursive: true, force: true }));
  const inbox = path.join(share, 'anime');
  // An unmounted share's mount point: an empty folder on the root file system, with a video beside it that must not count.
  const mountPoint = path.join(dir, 'mnt', 'anime');
  mkdirSync(mountPoint, { recursive: true });
  const configFile = writeConfig(dir, { inbox: [inbox, mountPoint], watch: { settleSeconds: 0.2, waitForMount: true, pollIntervalSeconds: 0.2 }, disk: { reserve: 0 } });
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  await waitFor('the wait to be logged', () => daemon.output().includes('the inbox is not mounted; waiting for it'));
  assert.equal(existsSync(inbox), false, 'nothing is created where the share should be');
  assert.equal(daemon.output().match(/not mounted; waiting/g)!.length, 2, 'each inbox logged once');
  assert.ok(!daemon.output().includes('watching the inbox'));

  // The share appears, but the other inbox is still an unmounted mount point: keep waiting.
  mkdirSync(inbox);
  copyFileSync(clip, path.join(inbox, 'Show 01.m2ts'));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.deepEqual(readJobs(path.join(dir, 'library')), []);
  assert.equal(await (await runCli(['--config', configFile, 'status'], { cwd: dir })).code, 0);

  // With only the mounted share as the inbox (a new configuration and a restart), the video is taken.
  writeConfig(dir, { inbox: [inbox], watch: { settleSeconds: 0.2, waitForMount: true, pollIntervalSeconds: 0.2 }, disk: { reserve: 0 } });
  await stopDaemon(daemon);
  const again = startDaemon(configFile);
  t.after(() => stopDaemon(again));
  const job = await waitFor('the video on the share to be taken', () => readJobs(path.join(dir, 'library')).find((j) => j.state === 'ready-for-review'), 60_000);
  assert.equal(job.episode, '01');
});
