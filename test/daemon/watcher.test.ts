import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
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
