/**
 * Restoring one frame near the end of a long clip (issue 15, item 3): the
 * old way, decoding every frame from 0 (`select=eq(n,N)`), against seeking
 * near it (src/frames/frame-seeker.ts), measured in the same run on the same
 * file, with the two frames checked byte for byte. The clip is an .m2ts
 * whose timestamps start past 600 s, as a Blu-ray's do, with x264 B-frames
 * and a 2 s GOP. BENCH_FRAMES sets its length (default 20000, 320x180).
 * Target: restoring a duplicate near the end of a film takes under 5 s.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveFfmpegBinaries } from '../src/adapters/ffmpeg-binaries.ts';
import { MediaRepository } from '../src/adapters/media.ts';
import { frameGridOf, seekFrame } from '../src/frames/frame-seeker.ts';

const FRAMES = Number(process.env.BENCH_FRAMES ?? 20_000);
const WIDTH = 320;
const HEIGHT = 180;
const binaries = resolveFfmpegBinaries();
const media = new MediaRepository(binaries);
const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-bench-restore-'));
try {
  const file = path.join(dir, 'long.m2ts');
  let started = performance.now();
  execFileSync(binaries.ffmpeg, ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${WIDTH}x${HEIGHT}:rate=24000/1001`, '-frames:v', String(FRAMES),
    '-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '3', '-g', '48', '-pix_fmt', 'yuv420p', '-f', 'mpegts', '-output_ts_offset', '600', file]);
  console.log(`clip: ${FRAMES} frames ${WIDTH}x${HEIGHT} .m2ts, encoded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const frame = FRAMES - 10;

  started = performance.now();
  const decoded = media.decodeFrames({ input: file, width: WIDTH, height: HEIGHT, hwaccel: 'none', onlyFrames: [frame] });
  let fromStart: Buffer | undefined;
  for await (const rgb of decoded.frames) fromStart ??= rgb;
  await decoded.done;
  const oldSeconds = (performance.now() - started) / 1000;

  started = performance.now();
  const grid = frameGridOf(await media.frameTiming(file));
  if (typeof grid === 'string') throw new Error(`seeking not trusted: ${grid}`);
  const found = await seekFrame(media, file, { width: WIDTH, height: HEIGHT }, grid, frame);
  const newSeconds = (performance.now() - started) / 1000;
  if (found.kind !== 'found') throw new Error(`seeking not trusted: ${found.why}`);
  if (!fromStart || !found.rgb.equals(fromStart)) throw new Error(`frame ${frame}: the seek gave other bytes than the decode from the start`);

  console.log('| restore of frame | decode from 0 (before) | seek (now) | frames decoded by the seek | ratio |');
  console.log('|---|---|---|---|---|');
  console.log(`| ${frame} of ${FRAMES} | ${oldSeconds.toFixed(2)} s | ${newSeconds.toFixed(2)} s | ${found.decoded} | ${(oldSeconds / newSeconds).toFixed(1)}x faster |`);
  console.log(`byte-identical: yes; at 170k frames (a 2-hour film) decoding from 0 would take about ${(oldSeconds * 170_000 / FRAMES).toFixed(0)} s here, the seek about the same as above`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
