/**
 * Shots and cuts: a cut is a change of the whole composition. Pairs of
 * generated pictures, and a real grainy .m2ts (test/fixtures/cut-shots.ts) of
 * shots that must stay whole (redraws on 2s over one background, a fast pan,
 * camera shake, a flash, a fade) and cuts that must be found (between two
 * compositions of one palette and framing), decoded by the real ffmpeg and
 * decided by the deduplicator as the extract stage does.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { resolveFfmpegBinaries } from '../../src/adapters/ffmpeg-binaries.ts';
import { MediaRepository } from '../../src/adapters/media.ts';
import { compareFrames } from '../../src/stages/extract/compare.ts';
import { CutDetector, sameShot } from '../../src/stages/extract/cut-detector.ts';
import { Deduplicator } from '../../src/stages/extract/deduplicator.ts';
import { FeatureFile } from '../../src/stages/extract/feature-file.ts';
import { computeFeatures } from '../../src/stages/extract/features.ts';
import { makeCutShots } from '../fixtures/cut-shots.ts';
import { tempDir } from '../helpers.ts';

const W = 320;
const H = 180;

/** A flat-colour picture: a background and a rectangle, scaled by `brightness`, with optional noise. */
function picture(options: { rect: [number, number, number, number]; bg: number; fg: number; brightness?: number; noise?: number; seed?: number }) {
  const rgb = new Uint8Array(W * H * 3);
  let seed = options.seed ?? 1;
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff - 0.5) * 2;
  const [x0, y0, x1, y1] = options.rect;
  for (let y = 0; y < H; y += 1) {
    for (let x = 0; x < W; x += 1) {
      const inside = x >= x0 && x < x1 && y >= y0 && y < y1;
      const value = (inside ? options.fg : options.bg) * (options.brightness ?? 1) + (options.noise ?? 0) * random();
      rgb.fill(Math.max(0, Math.min(255, Math.round(value))), (y * W + x) * 3, (y * W + x) * 3 + 3);
    }
  }
  return computeFeatures(rgb, W, H);
}

test('a cut to another composition is a new shot; a fade, a pan and grain are not', () => {
  const shot = picture({ rect: [40, 40, 160, 140], bg: 60, fg: 200 });
  assert.equal(sameShot(shot, picture({ rect: [180, 20, 300, 100], bg: 120, fg: 30 })), false);
  assert.equal(sameShot(shot, picture({ rect: [40, 40, 160, 140], bg: 60, fg: 200, brightness: 0.8 })), true, 'fade step');
  assert.equal(sameShot(shot, picture({ rect: [42, 40, 162, 140], bg: 60, fg: 200 })), true, 'pan step');
  assert.equal(sameShot(shot, picture({ rect: [40, 40, 160, 140], bg: 60, fg: 200, noise: 20, seed: 7 })), true, 'grain');
  const black = picture({ rect: [0, 0, 0, 0], bg: 2, fg: 2 });
  const cuts = (...frames: ReturnType<typeof picture>[]) => {
    const detector = new CutDetector();
    return frames.map((frame) => detector.next(frame));
  };
  assert.deepEqual(cuts(black, shot), [true, true], 'from black to a picture');
  assert.deepEqual(cuts(shot, black, picture({ rect: [0, 0, 0, 0], bg: 4, fg: 4 })), [true, false, false], 'the black end of a fade');
  assert.deepEqual(cuts(shot, black, shot), [true, false, false], 'black frames inside a shot');
  assert.deepEqual(cuts(shot, black, picture({ rect: [180, 20, 300, 100], bg: 120, fg: 30 })), [true, false, true], 'a cut after black frames');
});

test('grain alone keeps a drawing; a small change of shade or a two-pixel shift does not', () => {
  const base = { rect: [40, 40, 160, 140] as [number, number, number, number], bg: 60, fg: 200, noise: 16 };
  const a = picture({ ...base, seed: 1 });
  assert.equal(compareFrames(a, picture({ ...base, seed: 2 })).same, true);
  assert.equal(compareFrames(a, picture({ ...base, fg: 190, seed: 3 })).same, false);
  assert.equal(compareFrames(a, picture({ ...base, rect: [42, 40, 162, 140], seed: 4 })).same, false);
});

test('on a grainy .m2ts: redraws over one background, a fast pan, shake, a flash and a fade stay in their shots; cuts between look-alike compositions are found', { timeout: 120_000 }, async (t) => {
  const clip = await makeCutShots({ width: 640, height: 360 });
  const dir = tempDir(t);
  const features = FeatureFile.create(path.join(dir, 'features.bin'), clip.width, clip.height);
  t.after(() => features.close());
  const dedup = new Deduplicator(features);
  const decoded = new MediaRepository(resolveFfmpegBinaries()).decodeFrames({ input: clip.file, width: clip.width, height: clip.height, hwaccel: 'none' });
  const starts: number[] = [];
  let frame = 0;
  let scene = 0;
  for await (const rgb of decoded.frames) {
    const decision = dedup.decide(frame, computeFeatures(rgb, clip.width, clip.height));
    if (decision.scene !== scene) starts.push(frame);
    scene = decision.scene;
    frame += 1;
  }
  await decoded.done;
  assert.equal(frame, clip.frameCount);
  const shotAt = (n: number) => clip.kinds[clip.shots.filter((first) => first <= n).length - 1];
  const extra = starts.filter((n) => !clip.shots.includes(n)).map((n) => `${n} (in the ${shotAt(n)} shot)`);
  const missed = clip.shots.filter((n) => !starts.includes(n)).map((n) => `${n} (into the ${shotAt(n)} shot)`);
  assert.deepEqual({ extra, missed }, { extra: [], missed: [] });
});
