/**
 * An interrupted extraction resumes from its last resume point by seeking,
 * not by decoding the video from frame 0 (issue 15, item 3), on an .m2ts
 * whose timestamps start past 600 s and whose x264 stream has B-frames, and
 * ends with the same frame map and the same files, byte for byte, as an
 * uninterrupted run; the frame map has as many frames as ffprobe
 * -count_frames counts. A resume point that no longer fits falls back to
 * decoding from frame 0, with the same result.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import v8 from 'node:v8';
import { after, before, test } from 'node:test';
import { resolveFfmpegBinaries } from '../../src/adapters/ffmpeg-binaries.ts';
import { MediaRepository } from '../../src/adapters/media.ts';
import { tempDir as libraryTempDir } from '../../src/daemon/library-paths.ts';
import { frameGridOf } from '../../src/frames/frame-seeker.ts';
import { makeAnimeClip } from '../fixtures/anime-clip.ts';
import { frameMapOf, hashTree, readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig, type DaemonProcess } from '../helpers.ts';

const run = promisify(execFile);
const binaries = resolveFfmpegBinaries();
let video: string;
let frameCount: number;
let reference: Map<string, string>;
const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-test-seek-resume-'));
after(() => rmSync(dir, { recursive: true, force: true }));

before(async () => {
  // Small frames: what is tested is where the decode resumes, not the pictures.
  const clip = await makeAnimeClip({ width: 320, height: 180, scenario: 'full' });
  video = path.join(dir, 'late-start.m2ts');
  await run(binaries.ffmpeg, ['-v', 'error', '-y', '-i', clip.file, '-map', '0:v:0', '-c', 'copy', '-f', 'mpegts', '-output_ts_offset', '600', video]);
  const { stdout } = await run(binaries.ffprobe, ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'json', video]);
  frameCount = Number((JSON.parse(stdout) as { streams: { nb_read_frames: string }[] }).streams[0]!.nb_read_frames);
  const referenceDir = path.join(dir, 'reference');
  mkdirSync(path.join(referenceDir, 'Film'), { recursive: true });
  copyFileSync(video, path.join(referenceDir, 'Film', 'Film 01.m2ts'));
  const result = await runCli(['--config', writeConfig(referenceDir, { library: './library' }), 'process', path.join(referenceDir, 'Film', 'Film 01.m2ts')], { cwd: referenceDir });
  assert.equal(result.code, 0, result.stderr);
  const job = readJobs(path.join(referenceDir, 'library'))[0]!;
  assert.equal(frameMapOf(job).length, frameCount, 'the uninterrupted run recorded every frame ffprobe counts');
  reference = hashTree(job.extract!.dir);
});

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'inbox', 'Film'), { recursive: true });
  const configFile = writeConfig(dir, {
    inbox: './inbox',
    library: './library',
    watch: { settleSeconds: 0.2 },
    disk: { reserve: 0, recheckSeconds: 0.2, checkIntervalSeconds: 0.2 },
  });
  copyFileSync(video, path.join(dir, 'inbox', 'Film', 'Film 01.m2ts'));
  return { library: path.join(dir, 'library'), configFile };
}

const recorded = (library: string) => {
  const job = readJobs(library)[0];
  return job?.extract && existsSync(path.join(job.extract.dir, 'frame-map.jsonl')) ? frameMapOf(job).length : 0;
};

const resumeFiles = (library: string) => readdirSync(libraryTempDir(library)).filter((name) => /^(features|resume)-/.test(name));

function savedPoint(library: string): { file: string; bytes: Buffer; frame: number } | undefined {
  const file = resumeFiles(library).find((name) => name.startsWith('resume-'));
  if (!file) return undefined;
  const bytes = readFileSync(path.join(libraryTempDir(library), file));
  return { file: path.join(libraryTempDir(library), file), bytes, frame: (v8.deserialize(bytes) as { state: { frame: number } }).state.frame };
}

/** Stops the daemon's ffmpeg (no frame arrives after those in the pipe, however fast the machine) once `frames` are recorded. */
async function freezeAt(daemon: DaemonProcess, library: string, frames: number): Promise<number> {
  const job = await waitFor(`${frames} frames recorded`, () => {
    const found = readJobs(library)[0];
    return recorded(library) >= frames && found?.extract?.pid ? found : undefined;
  }, 180_000).catch((error: Error) => {
    throw new Error(`${error.message} (${recorded(library)} recorded); the daemon said:\n${daemon.output()}`);
  });
  process.kill(job.extract!.pid!, 'SIGSTOP');
  return job.extract!.pid!;
}

/** Waits for the resume point of the frames recorded while the decoder is frozen (saved on a timer). */
const pointAtMap = (library: string) => waitFor('a resume point at the end of the frame map', () => {
  const point = savedPoint(library);
  return point && point.frame === recorded(library) ? point : undefined;
}, 60_000);

function assertSameAsReference(library: string) {
  const job = readJobs(library)[0]!;
  const result = hashTree(job.extract!.dir);
  assert.deepEqual([...result.keys()], [...reference.keys()], 'the files differ from the uninterrupted run');
  for (const [name, hash] of reference) assert.equal(result.get(name), hash, `${name} differs from the uninterrupted run`);
  assert.equal(frameMapOf(job).length, frameCount);
}

const resumeLine = (library: string) => {
  const log = readFileSync(path.join(library, 'logs', 'celforge.log'), 'utf8');
  const line = log.split('\n').find((entry) => entry.includes('"msg":"resuming extraction"'));
  return line ? (JSON.parse(line) as { startFrame: number; decodeFrom: number }) : undefined;
};

test('SIGKILL between two resume points: the restart seeks to the older one, replays up to the frame map, and ends byte-identical', { timeout: 600_000 }, async (t) => {
  const grid = frameGridOf(await new MediaRepository(binaries).frameTiming(video));
  assert.ok(typeof grid !== 'string' && grid.origin > 600, `timestamps start at ${JSON.stringify(grid)}`);
  const { library, configFile } = setup(t);
  const first = startDaemon(configFile);
  t.after(() => stopDaemon(first));
  // Past the seek margin (3 s, 72 frames) and a GOP, so that the seek really skips frames.
  const ffmpeg = await freezeAt(first, library, 150);
  const older = await pointAtMap(library);
  process.kill(ffmpeg, 'SIGCONT');
  const later = older.frame + 60;
  assert.ok(later < frameCount - 20, `the clip is long enough (${frameCount} frames) to go on past ${later}`);
  await freezeAt(first, library, later);
  first.child.kill('SIGKILL');
  await first.exited;
  const killedAt = recorded(library);
  // As if the kill came before the timer saved the newer point.
  writeFileSync(older.file, older.bytes);

  const second = startDaemon(configFile);
  t.after(() => stopDaemon(second));
  await waitFor('the job to finish', () => readJobs(library).find((job) => job.state === 'ready-for-review'), 300_000);
  await stopDaemon(second);
  assert.deepEqual(resumeLine(library), { ...resumeLine(library), startFrame: killedAt, decodeFrom: older.frame }, 'resumed by seeking to the saved point');
  assertSameAsReference(library);
  assert.deepEqual(resumeFiles(library), [], 'the feature file and resume point are removed once the video is done');
});

test('a resume point whose feature file was cut short falls back to decoding from frame 0, and ends byte-identical', { timeout: 600_000 }, async (t) => {
  const { library, configFile } = setup(t);
  const first = startDaemon(configFile);
  t.after(() => stopDaemon(first));
  await freezeAt(first, library, 150);
  await pointAtMap(library);
  first.child.kill('SIGKILL');
  await first.exited;
  const features = resumeFiles(library).find((name) => name.startsWith('features-'))!;
  truncateSync(path.join(libraryTempDir(library), features), 100);

  const second = startDaemon(configFile);
  t.after(() => stopDaemon(second));
  await waitFor('the job to finish', () => readJobs(library).find((job) => job.state === 'ready-for-review'), 300_000);
  await stopDaemon(second);
  assert.equal(resumeLine(library)?.decodeFrom, 0);
  assert.match(readFileSync(path.join(library, 'logs', 'celforge.log'), 'utf8'), /"why":"the feature file holds fewer than \d+ drawings"[^\n]*resuming extraction by decoding from frame 0/);
  assertSameAsReference(library);
});
