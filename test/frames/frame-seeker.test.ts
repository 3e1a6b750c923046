/**
 * Restoring by seeking gives exactly the frame a full decode numbers n, on
 * a stream with B-frames (x264's default reorders frames) and on an .m2ts
 * whose timestamps start at 600 s, and decodes far fewer frames than n.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { before, test } from 'node:test';
import { resolveFfmpegBinaries } from '../../src/adapters/ffmpeg-binaries.ts';
import { MediaRepository } from '../../src/adapters/media.ts';
import { decodeFromFrame, frameGridOf, seekFrame } from '../../src/frames/frame-seeker.ts';
import { tempDir } from '../helpers.ts';

const run = promisify(execFile);
const WIDTH = 160;
const HEIGHT = 90;
const FRAMES = 400;
const binaries = resolveFfmpegBinaries();
const media = new MediaRepository(binaries);
const streams: Record<string, { file: string; frames: Buffer[] }> = {};

async function fullDecode(file: string): Promise<Buffer[]> {
  const frames: Buffer[] = [];
  const decoded = media.decodeFrames({ input: file, width: WIDTH, height: HEIGHT, hwaccel: 'none' });
  for await (const frame of decoded.frames) frames.push(frame);
  await decoded.done;
  return frames;
}

async function countFrames(file: string): Promise<number> {
  const { stdout } = await run(binaries.ffprobe, ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'json', file]);
  // An .m2ts lists its streams under its program as well; the top-level list has the one stream selected.
  return Number((JSON.parse(stdout) as { streams: { nb_read_frames: string }[] }).streams[0]!.nb_read_frames);
}

before(async () => {
  const dir = tempDir({ after: (fn) => process.on('exit', fn) });
  const mp4 = path.join(dir, 'bframes.mp4');
  // testsrc2 changes every frame; -bf 3 with a 2 s GOP gives reordered B-frames and keyframes to seek to.
  await run(binaries.ffmpeg, ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${WIDTH}x${HEIGHT}:rate=24000/1001`, '-frames:v', String(FRAMES),
    '-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '3', '-g', '48', '-pix_fmt', 'yuv420p', mp4]);
  const m2ts = path.join(dir, 'offset.m2ts');
  await run(binaries.ffmpeg, ['-v', 'error', '-y', '-i', mp4, '-c', 'copy', '-f', 'mpegts', '-output_ts_offset', '600', m2ts]);
  for (const [name, file] of [['mp4', mp4], ['m2ts', m2ts]] as const) streams[name] = { file, frames: await fullDecode(file) };
});

for (const name of ['mp4', 'm2ts']) {
  test(`${name}: frames near the start, middle and end restored by seeking equal the full decode's, byte for byte`, { timeout: 300_000 }, async () => {
    const { file, frames } = streams[name]!;
    assert.equal(frames.length, await countFrames(file), 'the full decode gives every frame ffprobe -count_frames counts');
    const grid = frameGridOf(await media.frameTiming(file));
    assert.ok(typeof grid !== 'string', String(grid));
    if (name === 'm2ts') assert.ok(grid.origin > 600, `timestamps start at ${grid.origin} s`);
    for (const frame of [0, 1, 2, 47, 48, 49, 200, 201, 300, FRAMES - 2, FRAMES - 1]) {
      const found = await seekFrame(media, file, { width: WIDTH, height: HEIGHT }, grid, frame);
      assert.equal(found.kind, 'found', found.kind === 'untrusted' ? found.why : '');
      assert.ok(found.kind === 'found' && found.rgb.equals(frames[frame]!), `frame ${frame} differs from the full decode's frame ${frame}`);
    }
  });

  test(`${name}: a frame near the end is found by decoding far fewer frames than its number`, { timeout: 300_000 }, async () => {
    const { file } = streams[name]!;
    const grid = frameGridOf(await media.frameTiming(file));
    assert.ok(typeof grid !== 'string');
    const found = await seekFrame(media, file, { width: WIDTH, height: HEIGHT }, grid, FRAMES - 1);
    assert.equal(found.kind, 'found');
    assert.ok(found.kind === 'found' && found.decoded < (FRAMES - 1) / 2, `decoded ${found.kind === 'found' ? found.decoded : '?'} frames to reach frame ${FRAMES - 1}`);
  });
}

for (const name of ['mp4', 'm2ts']) {
  test(`${name}: a decode resumed by seeking from frame n gives frames n to the end, each equal to the full decode's`, { timeout: 300_000 }, async () => {
    const { file, frames } = streams[name]!;
    const grid = frameGridOf(await media.frameTiming(file));
    assert.ok(typeof grid !== 'string');
    for (const frame of [0, 1, 47, 48, 201, FRAMES - 1]) {
      const found = await decodeFromFrame(media, { input: file, width: WIDTH, height: HEIGHT, hwaccel: 'none' }, grid, frame);
      assert.equal(found.kind, 'found', found.kind === 'untrusted' ? found.why : '');
      assert.ok(found.kind === 'found');
      assert.ok(found.skipped <= frame && (frame < FRAMES - 1 || found.skipped < frame / 2), `${found.skipped} frames decoded before frame ${frame}`);
      let n = frame;
      for await (const rgb of found.decoded.frames) {
        assert.ok(rgb.equals(frames[n]!), `frame ${n} (resumed at ${frame}) differs from the full decode's`);
        n += 1;
      }
      await found.decoded.done;
      assert.equal(n, frames.length, `resumed at ${frame}, the decode ended at frame ${n}`);
    }
  });
}

test('a variable frame rate or a missing frame 0 is not trusted for seeking, and says why', () => {
  assert.match(String(frameGridOf({ frameRate: '30/1', averageFrameRate: '24/1', firstPts: 0 })), /frame rate varies \(nominal 30\/1, average 24\/1\)/);
  assert.match(String(frameGridOf({ frameRate: '0/0', averageFrameRate: '0/0', firstPts: 0 })), /no frame rate/);
  assert.match(String(frameGridOf({ frameRate: '24/1', averageFrameRate: '24/1', firstPts: null })), /frame 0 has no timestamp/);
  assert.deepEqual(frameGridOf({ frameRate: '24000/1001', averageFrameRate: '24000/1001', firstPts: 1.4 }), { fps: 24000 / 1001, origin: 1.4 });
});

test('a stream whose rate changes (24 then 30 fps, joined without re-encoding) is found exactly before the change and not trusted after it', { timeout: 300_000 }, async (t) => {
  const dir = tempDir(t);
  const parts = [];
  for (const [rate, count] of [[24, 48], [30, 72]] as const) {
    const part = path.join(dir, `part-${rate}.mp4`);
    await run(binaries.ffmpeg, ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${WIDTH}x${HEIGHT}:rate=${rate}`, '-frames:v', String(count),
      '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', part]);
    parts.push(`file '${part}'\n`);
  }
  const list = path.join(dir, 'parts.txt');
  writeFileSync(list, parts.join(''));
  const file = path.join(dir, 'vfr.mkv');
  await run(binaries.ffmpeg, ['-v', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', file]);
  const frames = await fullDecode(file);
  assert.equal(frames.length, 120);
  const grid = frameGridOf(await media.frameTiming(file));
  // Matroska states one rate for the whole stream: the rates agree, and only the pts can tell.
  assert.ok(typeof grid !== 'string', String(grid));
  const early = await seekFrame(media, file, { width: WIDTH, height: HEIGHT }, grid, 20);
  assert.ok(early.kind === 'found' && early.rgb.equals(frames[20]!));
  const late = await seekFrame(media, file, { width: WIDTH, height: HEIGHT }, grid, 100);
  assert.equal(late.kind, 'untrusted');
  assert.match(late.kind === 'untrusted' ? late.why : '', /off the 24 fps grid|skip from frame/);
});
