/**
 * The daemon as users run it: `celforge start` in a child process, videos
 * dropped into a real inbox, real ffmpeg, the ledger and frames on disk.
 */
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Job } from '../../src/daemon/job.ts';
import { countDecodedFrames, makeClip } from '../fixtures/clips.ts';
import { frameMapOf, readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

function setup(t: Parameters<typeof tempDir>[0], extra: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  const inbox = path.join(dir, 'inbox');
  const library = path.join(dir, 'library');
  mkdirSync(inbox, { recursive: true });
  const config = {
    inbox: './inbox',
    library: './library',
    watch: { settleSeconds: 0.5, rescanMinutes: 0.05 },
    disk: { reserve: 0, recheckSeconds: 0.2, checkIntervalSeconds: 0.2 },
    ...extra,
  };
  return { dir, inbox, library, configFile: writeConfig(dir, config), config };
}

const jobDone = (library: string) => () => readJobs(library).find((job) => job.state === 'ready-for-review');

test('a video present at start-up is picked up and every frame extracted; a second copy makes no second job; hidden and partial files are ignored', async (t) => {
  const clip = await makeClip({ width: 320, height: 180, seconds: 2 });
  const { inbox, library, configFile } = setup(t);
  mkdirSync(path.join(inbox, 'My Show'));
  copyFileSync(clip, path.join(inbox, 'My Show', 'My Show - 04.m2ts'));
  copyFileSync(clip, path.join(inbox, '.hidden.m2ts'));
  copyFileSync(clip, path.join(inbox, 'copying.m2ts.part'));
  writeFileSync(path.join(inbox, 'notes.txt'), 'not a video');

  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  const job = await waitFor('the first job to finish', jobDone(library));
  assert.equal(job.series, 'My-Show');
  assert.equal(job.episode, '04');
  const map = frameMapOf(job);
  assert.equal(map.length, await countDecodedFrames(clip));
  assert.equal(map[0]!.file, path.join('My-Show', '04', 'frames', 'scene-0001', 'My-Show_04_000000.png'));

  copyFileSync(clip, path.join(inbox, 'renamed copy.m2ts'));
  await waitFor('the copy to be recognised', () => readJobs(library)[0]!.seenAs.length === 2);
  const jobs = readJobs(library);
  assert.equal(jobs.length, 1, `expected one job, got ${jobs.map((j) => j.source).join(', ')}`);
  assert.ok(jobs[0]!.seenAs.some((seen) => seen.endsWith('renamed copy.m2ts')));
  await stopDaemon(daemon);
  assert.equal(await daemon.exited, 0);
  assert.equal(readJobs(library).length, 1, 'a hidden, partial or non-video file became a job');
});

test('a file being written slowly is not taken before it settles', async (t) => {
  const clip = await makeClip({ width: 320, height: 180, seconds: 2 });
  const { inbox, library, configFile } = setup(t, { watch: { settleSeconds: 1.5, rescanMinutes: 0.02 } });
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  await waitFor('the daemon to watch', () => daemon.output().includes('watching the inbox'));

  const bytes = readFileSync(clip);
  const target = path.join(inbox, 'slow copy.m2ts');
  const chunk = Math.ceil(bytes.length / 10);
  for (let offset = 0; offset < bytes.length; offset += chunk) {
    appendFileSync(target, bytes.subarray(offset, offset + chunk));
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(readJobs(library).length, 0, 'the file was taken while it was still being written');
  }
  const job = await waitFor('the finished copy to be processed', jobDone(library));
  assert.equal(frameMapOf(job).length, await countDecodedFrames(clip));
});

test('a truncated file fails its job with a clear message and is left in place', async (t) => {
  const clip = await makeClip({ width: 320, height: 180, seconds: 3 });
  const { inbox, library, configFile } = setup(t);
  const bytes = readFileSync(clip).subarray(0, 50_000);
  writeFileSync(path.join(inbox, 'broken.m2ts'), bytes);
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  const job = await waitFor('the job to fail', () => readJobs(library).find((j) => j.state === 'failed'));
  assert.equal(job.stage, 'probe');
  assert.match(job.error!.message, /broken\.m2ts: .*truncated/);
  assert.ok(readFileSync(path.join(inbox, 'broken.m2ts')).equals(bytes));
  const status = await runCli(['--config', configFile, 'status']);
  assert.match(status.stdout, /probe\/failed .*error: .*broken\.m2ts/);
});

test('the disk gate holds a job while the reserve exceeds free space, and releases it when the reserve is lowered', async (t) => {
  const clip = await makeClip({ width: 320, height: 180, seconds: 2 });
  const setupResult = setup(t, { disk: { reserve: '4000 TiB', recheckSeconds: 0.2, checkIntervalSeconds: 0.2 } });
  const { inbox, library, configFile, config } = setupResult;
  copyFileSync(clip, path.join(inbox, 'gated.m2ts'));
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));

  const waiting = await waitFor('the job to wait for disk', () => readJobs(library).find((j) => j.state === 'waiting-for-disk'));
  assert.equal(waiting.stage, 'diskgate');
  assert.ok(waiting.disk!.neededBytes > 0);
  assert.equal(waiting.disk!.reserveBytes, 4000 * 2 ** 40);
  const status = await runCli(['--config', configFile, 'status', '--json']);
  const shown = (JSON.parse(status.stdout) as { jobs: Job[] }).jobs[0]!;
  assert.equal(shown.state, 'waiting-for-disk');
  assert.ok(shown.disk!.freeBytes > 0 && shown.disk!.neededBytes > 0);
  const text = await runCli(['--config', configFile, 'status']);
  assert.match(text.stdout, /diskgate\/waiting-for-disk .*needs .* \+ 4000\.0 TiB reserve, .* free/);

  await new Promise((resolve) => setTimeout(resolve, 1500)); // several re-checks
  const logLines = readFileSync(path.join(library, 'logs', 'celforge.log'), 'utf8').split('\n').filter((line) => line.includes('waiting-for-disk'));
  assert.equal(logLines.length, 1, 'waiting for disk should be logged once');

  writeConfig(setupResult.dir, { ...config, disk: { ...config.disk, reserve: 0 } });
  daemon.child.kill('SIGHUP');
  const done = await waitFor('the job to be released', jobDone(library));
  assert.equal(frameMapOf(done).length, await countDecodedFrames(clip));
});
