/**
 * Extraction that is interrupted (the daemon SIGKILLed, the disk under its
 * reserve) ends with every frame exactly once, byte-identical to an
 * uninterrupted run, and nothing partial left behind.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { countDecodedFrames, makeClip } from '../fixtures/clips.ts';
import { frameMapOf, hashTree, readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

let clip: string;
let reference: Map<string, string>;

before(async () => {
  clip = await makeClip({ width: 1920, height: 1080, seconds: 8 });
});

/** `celforge process` on a 1080p clip: the uninterrupted run the others are compared with. */
test('celforge process writes exactly as many frames as ffprobe counts, named by series, episode and frame', async (t) => {
  const dir = tempDir(t);
  const video = path.join(dir, 'Reference', 'Reference 01.m2ts');
  mkdirSync(path.dirname(video));
  copyFileSync(clip, video);
  const result = await runCli(['--library', path.join(dir, 'library'), 'process', video], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  const job = readJobs(path.join(dir, 'library'))[0]!;
  assert.equal(job.state, 'done');
  const decoded = await countDecodedFrames(clip);
  assert.equal(job.probe!.frameCount, decoded);
  const map = frameMapOf(job);
  assert.deepEqual(map.map((record) => record.frame), Array.from({ length: decoded }, (_, n) => n));
  // testsrc2 changes every frame: each one is a new drawing, written in full.
  const written = readdirSync(path.join(job.extract!.dir, 'frames', 'scene-0001')).sort();
  assert.deepEqual(written, Array.from({ length: decoded }, (_, n) => `Reference_01_${String(n).padStart(6, '0')}.png`));
  assert.match(result.stdout, new RegExp(`${decoded} frames, ${decoded} kept, 0 duplicates, 1 scenes`));
  reference = hashTree(job.extract!.dir);
});

function daemonSetup(t: Parameters<typeof tempDir>[0], disk: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  const inbox = path.join(dir, 'inbox');
  mkdirSync(path.join(inbox, 'Reference'), { recursive: true });
  const config = {
    inbox: './inbox',
    library: './library',
    watch: { settleSeconds: 0.2 },
    disk: { reserve: 0, recheckSeconds: 0.2, checkIntervalSeconds: 0.2, ...disk },
  };
  const configFile = writeConfig(dir, config);
  copyFileSync(clip, path.join(inbox, 'Reference', 'Reference 01.m2ts'));
  return { dir, library: path.join(dir, 'library'), configFile, config };
}

/** Files in the video's output folder (frames, previews, temporary files), by relative path. */
const filesOnDisk = (library: string): string[] => {
  const job = readJobs(library)[0];
  if (!job?.extract || !existsSync(job.extract.dir)) return [];
  return readdirSync(job.extract.dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(job.extract!.dir, path.join(entry.parentPath, entry.name)));
};
const framesOnDisk = (library: string) => filesOnDisk(library).filter((name) => name.endsWith('.png'));

test('the daemon killed with SIGKILL mid-extraction and restarted ends with every frame exactly once, byte-identical', async (t) => {
  assert.ok(reference, 'the reference run must pass first');
  const { library, configFile } = daemonSetup(t);
  const first = startDaemon(configFile);
  t.after(() => stopDaemon(first));
  await waitFor('extraction to be under way', () => framesOnDisk(library).length >= 40);
  first.child.kill('SIGKILL');
  await first.exited;
  const interrupted = readJobs(library)[0]!;
  assert.equal(interrupted.state, 'running');
  assert.ok(interrupted.stage === 'extract');

  const second = startDaemon(configFile);
  t.after(() => stopDaemon(second));
  const job = await waitFor('the job to finish after the restart', () => readJobs(library).find((j) => j.state === 'done'), 120_000);
  await stopDaemon(second);
  const log = readFileSync(path.join(library, 'logs', 'celforge.log'), 'utf8');
  const resumedAt = /"startFrame":(\d+)[^\n]*resuming extraction/.exec(log);
  assert.ok(resumedAt && Number(resumedAt[1]) > 0, 'the second daemon did not resume from the frames already written');

  const result = hashTree(job.extract!.dir);
  assert.deepEqual([...result.keys()], [...reference.keys()], 'the files differ from the uninterrupted run');
  for (const [name, hash] of reference) assert.equal(result.get(name), hash, `${name} differs from the uninterrupted run`);
  assert.equal(job.extract!.framesDone, job.probe!.frameCount);
});

test('extraction pauses when free space falls under the reserve, keeps nothing partial, and resumes when space returns', async (t) => {
  assert.ok(reference, 'the reference run must pass first');
  const { dir, library, configFile, config } = daemonSetup(t);
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  await waitFor('extraction to be under way', () => framesOnDisk(library).length >= 20);

  // The volume "fills": the reserve now exceeds what is free.
  writeConfig(dir, { ...config, disk: { ...config.disk, reserve: '4000 TiB' } });
  daemon.child.kill('SIGHUP');
  await waitFor('extraction to pause', () => readJobs(library).find((j) => j.state === 'paused-disk-low'));
  await new Promise((resolve) => setTimeout(resolve, 600));
  const paused = framesOnDisk(library);
  assert.ok(paused.length < readJobs(library)[0]!.probe!.frameCount, 'extraction finished instead of pausing');
  assert.deepEqual(filesOnDisk(library).filter((name) => name.endsWith('.tmp')), [], 'a partial file was kept while paused');
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.equal(framesOnDisk(library).length, paused.length, 'frames were still written while paused');
  assert.equal(readJobs(library)[0]!.state, 'paused-disk-low');

  writeConfig(dir, config);
  daemon.child.kill('SIGHUP');
  const job = await waitFor('the job to finish', () => readJobs(library).find((j) => j.state === 'done'), 120_000);
  assert.deepEqual([...hashTree(job.extract!.dir).entries()], [...reference.entries()]);
  assert.match(readFileSync(path.join(library, 'logs', 'celforge.log'), 'utf8'), /paused-disk-low: .* under the 4000\.0 TiB reserve/);
});
