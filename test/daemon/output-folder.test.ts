/**
 * One output folder per source: different videos under one series and
 * episode name (the same file name in two inbox folders, a longer re-rip)
 * each get their own folder, frames and frame map, and never resume from
 * another's; a ledger from an older version where two jobs shared a folder is
 * separated; a folder marked by another source is refused.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { fingerprintFile } from '../../src/adapters/fingerprint.ts';
import type { Job } from '../../src/daemon/job.ts';
import { ledgerPath } from '../../src/daemon/library-paths.ts';
import { binaries, countDecodedFrames } from '../fixtures/clips.ts';
import { frameMapOf, hashTree, readJobs, runCli, tempDir, writeConfig } from '../helpers.ts';

const run = promisify(execFile);

interface HeldClip { width: number; height: number; seconds: number; hue: number }

/** A clip drawn on 3s (8 drawings a second at 23.976 fps), so it has duplicates to restore. */
async function makeHeldClip(file: string, clip: HeldClip): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  await run(binaries.ffmpeg, [
    '-v', 'error', '-y', '-f', 'lavfi',
    '-i', `testsrc2=size=${clip.width}x${clip.height}:rate=8:duration=${clip.seconds},hue=h=${clip.hue},fps=24000/1001`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '24', '-pix_fmt', 'yuv420p', '-f', 'mpegts', '-mpegts_m2ts_mode', '1', file,
  ]);
}

/** Frame `n` of a video as ffmpeg decodes it, rgb24. */
async function decodeFrame(file: string, n: number, width: number, height: number): Promise<Buffer> {
  const { stdout } = await run(binaries.ffmpeg, [
    '-v', 'error', '-i', file, '-map', '0:v:0', '-vf', `select=eq(n\\,${n})`, '-vsync', 'passthrough', '-frames:v', '1',
    '-pix_fmt', 'rgb24', '-f', 'rawvideo', '-',
  ], { encoding: 'buffer', maxBuffer: width * height * 3 + 1024 });
  return stdout;
}

function meanDifference(a: Buffer, b: Buffer): number {
  assert.equal(a.length, b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

let clips: { short1: string; short2: string; long: string };
const clipDir = mkdtempSync(path.join(os.tmpdir(), 'celforge-held-clips-'));
after(() => rmSync(clipDir, { recursive: true, force: true }));

before(async () => {
  clips = { short1: path.join(clipDir, 'a.m2ts'), short2: path.join(clipDir, 'b.m2ts'), long: path.join(clipDir, 'c.m2ts') };
  await makeHeldClip(clips.short1, { width: 320, height: 180, seconds: 1, hue: 0 });
  await makeHeldClip(clips.short2, { width: 320, height: 180, seconds: 1, hue: 180 });
  await makeHeldClip(clips.long, { width: 480, height: 270, seconds: 2, hue: 90 });
});

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const inboxes = ['first', 'second', 'third'].map((name) => path.join(dir, 'inbox', name));
  for (const inbox of inboxes) mkdirSync(inbox, { recursive: true });
  const configFile = writeConfig(dir, { inbox: inboxes, library: './library', disk: { reserve: 0 } });
  const videos = [clips.short1, clips.short2, clips.long].map((clip, i) => {
    const video = path.join(inboxes[i]!, 'Show - 03.m2ts');
    copyFileSync(clip, video);
    return video;
  });
  return { dir, library: path.join(dir, 'library'), videos, cli: (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir, timeoutMs: 300_000 }) };
}

const jobOf = (library: string, video: string): Job => readJobs(library).find((job) => job.source === video)!;

test('three videos named "Show - 03.m2ts": three folders, each with its own frames, a note on the later two, restore decodes the right source', async (t) => {
  const { library, videos, cli } = setup(t);
  for (const [i, video] of videos.entries()) {
    const result = await cli('process', video);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    if (i > 0) assert.match(result.stderr, /Show episode 03 is already held by another video .* has its own folder Show\/03-[0-9a-f]{8}/, 'no log line');
  }
  const jobs = videos.map((video) => jobOf(library, video));
  assert.deepEqual(jobs.map((job) => [job.series, job.episode]), [['Show', '03'], ['Show', '03'], ['Show', '03']]);
  const dirs = jobs.map((job) => job.extract!.dir);
  assert.equal(new Set(dirs).size, 3, `folders shared: ${dirs.join(', ')}`);
  assert.equal(dirs[0], path.join(library, 'Show', '03'), 'the first video keeps the plain name');
  for (const [i, job] of jobs.entries()) {
    assert.equal(dirs[i], path.join(library, 'Show', job.folder!));
    const map = frameMapOf(job);
    assert.equal(map.length, await countDecodedFrames(job.source), `${job.source}: its frame map does not cover its own frames`);
    assert.equal(job.extract!.framesDone, map.length);
    assert.deepEqual(map.map((record) => record.frame), map.map((_, frame) => frame));
    const owner = JSON.parse(readFileSync(path.join(dirs[i]!, '.owner.json'), 'utf8')) as { fingerprint: string; source: string };
    assert.deepEqual(owner, { fingerprint: job.id, source: job.source });
    const { width, height } = await sharp(path.join(library, map.find((record) => record.file)!.file!)).metadata();
    assert.deepEqual([width, height], [job.probe!.width, job.probe!.height], 'a frame of another resolution in this folder');
    assert.ok(map.every((record) => (record.file ?? record.preview)!.startsWith(path.join('Show', job.folder!) + path.sep)));
  }
  assert.equal(jobs[0]!.notes, undefined);
  for (const job of jobs.slice(1)) {
    assert.equal(job.notes?.length, 1);
    assert.match(job.notes![0]!.message, new RegExp(`already held by another video \\(${videos[0]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)`));
  }
  const status = await cli('status');
  assert.equal(status.code, 0, status.stderr);
  assert.equal(status.stdout.match(/note: Show episode 03 is already held by another video/g)?.length, 2, status.stdout);

  for (const [i, job] of jobs.entries()) {
    const duplicate = frameMapOf(job).find((record) => record.status === 'duplicate');
    assert.ok(duplicate, `${job.source}: no duplicate to restore`);
    const result = await cli('restore', job.source, String(duplicate.frame));
    assert.equal(result.code, 0, result.stderr);
    const restored = frameMapOf(job)[duplicate.frame]!;
    assert.equal(restored.status, 'kept');
    const { width, height } = job.probe!;
    const pixels = await sharp(path.join(library, restored.file!)).removeAlpha().raw().toBuffer();
    assert.equal(meanDifference(pixels, await decodeFrame(job.source, duplicate.frame, width, height)), 0, 'not the frame of its own source');
    const other = jobs[(i + 1) % 2]!; // the other 320x180 clip
    if (other.probe!.width === width) {
      assert.ok(meanDifference(pixels, await decodeFrame(other.source, duplicate.frame, width, height)) > 10, 'the two clips are too alike to tell apart');
    }
  }
});

test('a ledger of an older version with two jobs in one folder: the first keeps it, the other extracts again into its own', async (t) => {
  const { library, videos, cli } = setup(t);
  assert.equal((await cli('process', videos[0]!)).code, 0);
  const first = jobOf(library, videos[0]!);
  const reference = hashTree(first.extract!.dir);
  // What the older version left: no folder recorded, no owner marker, and the second video "resumed" at the first one's last frame.
  const { id, sizeBytes } = await fingerprintFile(videos[1]!);
  const later = new Date(Date.parse(first.createdAt) + 1000).toISOString();
  const { folder: _folder, ...legacyFirst } = first;
  const second: Job = { ...structuredClone(legacyFirst), id, sizeBytes, source: videos[1]!, seenAs: [videos[1]!], createdAt: later, updatedAt: later };
  writeFileSync(ledgerPath(library), JSON.stringify({ version: 1, jobs: [legacyFirst, second] }));
  rmSync(path.join(first.extract!.dir, '.owner.json'));

  const result = await cli('process', videos[1]!);
  assert.equal(result.code, 0, result.stderr);
  const [firstAfter, secondAfter] = [jobOf(library, videos[0]!), jobOf(library, videos[1]!)];
  assert.equal(firstAfter.extract!.dir, first.extract!.dir);
  assert.deepEqual(hashTree(first.extract!.dir), reference, 'the first video\'s frames changed');
  assert.equal(existsSync(path.join(first.extract!.dir, '.owner.json')), false, 'the other job wrote into the first one\'s folder');
  assert.notEqual(secondAfter.extract!.dir, first.extract!.dir);
  assert.equal(frameMapOf(secondAfter).length, await countDecodedFrames(videos[1]!));
  assert.match(secondAfter.notes?.[0]?.message ?? '', /already held by another video/);
});

test('extraction refuses a folder whose owner marker names another source, and leaves it as it is', async (t) => {
  const { library, videos, cli } = setup(t);
  assert.equal((await cli('process', videos[0]!)).code, 0);
  assert.equal((await cli('process', videos[1]!)).code, 0);
  const first = jobOf(library, videos[0]!);
  const reference = hashTree(first.extract!.dir);
  // A hand-edited ledger, without the first job, points the second at the first one's folder: only the marker knows whose it is.
  const ledger = JSON.parse(readFileSync(ledgerPath(library), 'utf8')) as { jobs: Job[] };
  const second = ledger.jobs.find((job) => job.source === videos[1])!;
  Object.assign(second, { folder: first.folder, stage: 'extract', state: 'queued' });
  delete second.extract;
  writeFileSync(ledgerPath(library), JSON.stringify({ ...ledger, jobs: [second] }));

  const result = await cli('process', videos[1]!);
  assert.equal(result.code, 1);
  assert.match(result.stdout + result.stderr, new RegExp(`holds the frames of another video \\(${videos[0]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.equal(jobOf(library, videos[1]!).error?.code, 'OUTPUT_FOLDER_TAKEN');
  assert.deepEqual(hashTree(first.extract!.dir), reference);
});
