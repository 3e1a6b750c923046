/**
 * Dedup cannot merge unrelated pictures: the noise that scales its
 * thresholds is the title's (consecutive frames), never the difference being
 * judged. Checked on feature vectors of real pictures (crops of grid-36, all
 * brought to one mean brightness) and flat cels, and through real ffmpeg
 * encodes: grain and a re-encode with other grain still match.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { resolveFfmpegBinaries } from '../../src/adapters/ffmpeg-binaries.ts';
import { MediaRepository } from '../../src/adapters/media.ts';
import { compareFrames, DEFAULT_THRESHOLDS, type NoiseLevel } from '../../src/stages/extract/compare.ts';
import { Deduplicator } from '../../src/stages/extract/deduplicator.ts';
import { FeatureFile } from '../../src/stages/extract/feature-file.ts';
import { computeFeatures, type FrameFeatures } from '../../src/stages/extract/features.ts';
import { NOISE_CAP, TitleNoise } from '../../src/stages/extract/title-noise.ts';
import { encode, makeComposition, mulberry32, Renderer, still, withDefaults, gesture } from '../fixtures/anime-clip.ts';
import { gridCrops, meanLuma, withMeanLuma } from '../fixtures/grid-crops.ts';
import { tempDir } from '../helpers.ts';

const W = 320;
const H = 180;
const MEAN = 110;

/** Per-channel grain of about 6 levels (sum of uniforms), as grain 10 leaves it after encoding. */
function grainy(rgb: Buffer, seed: number, strength = 6): Buffer {
  const random = mulberry32(seed);
  const out = Buffer.allocUnsafe(rgb.length);
  for (let i = 0; i < rgb.length; i += 1) {
    const noise = (random() + random() + random() - 1.5) * 2 * strength;
    out[i] = Math.max(0, Math.min(255, Math.round(rgb[i]! + noise)));
  }
  return out;
}

/** Flat-colour shapes with ink outlines at random places: a cel's look, brought to mean luma MEAN. */
function randomCel(seed: number): Buffer {
  const random = mulberry32(seed);
  const rgb = Buffer.alloc(W * H * 3);
  const colour = () => [random() * 255, random() * 255, random() * 255].map(Math.round);
  const fill = (x0: number, y0: number, x1: number, y1: number, c: number[]) => {
    for (let y = Math.max(0, y0); y < Math.min(H, y1); y += 1) {
      for (let x = Math.max(0, x0); x < Math.min(W, x1); x += 1) rgb.set(c, (y * W + x) * 3);
    }
  };
  fill(0, 0, W, H, colour());
  for (let i = 0, n = 3 + Math.floor(random() * 6); i < n; i += 1) {
    const x0 = Math.floor(random() * W);
    const y0 = Math.floor(random() * H);
    const x1 = x0 + 10 + Math.floor(random() * W * 0.5);
    const y1 = y0 + 10 + Math.floor(random() * H * 0.5);
    fill(x0 - 2, y0 - 2, x1 + 2, y1 + 2, [34, 28, 40]);
    fill(x0, y0, x1, y1, colour());
  }
  return withMeanLuma(rgb, MEAN);
}

/** The picture with a `size` x `size` square at (x, y) painted in ink, or in white where the square is dark (a blink, a glint). */
function withSpot(rgb: Buffer, x: number, y: number, size: number): Buffer {
  const out = Buffer.from(rgb);
  let sum = 0;
  for (let yy = y; yy < y + size; yy += 1) sum += meanLuma(rgb.subarray((yy * W + x) * 3, (yy * W + x + size) * 3));
  const paint = sum / size >= 128 ? [34, 28, 40] : [240, 240, 240];
  for (let yy = y; yy < y + size; yy += 1) for (let xx = x; xx < x + size; xx += 1) out.set(paint, (yy * W + xx) * 3);
  return out;
}

const features = (rgb: Buffer) => computeFeatures(rgb, W, H);

/** The noise a title with this grain shows between two frames of a hold, as the deduplicator measures it. */
function holdNoise(clean: Buffer): NoiseLevel {
  const noise = new TitleNoise();
  for (let i = 1; i < 8; i += 1) noise.add(features(grainy(clean, 100 + i)), features(grainy(clean, 200 + i)));
  return noise.level;
}

test('unrelated pictures of one mean brightness never match, even at the largest noise a title can show', async () => {
  const pictures = [...(await gridCrops(60, W, H, { seed: 7, mean: MEAN })), ...Array.from({ length: 40 }, (_, i) => randomCel(1000 + i))];
  const all = pictures.map((rgb, i) => features(grainy(rgb, i)));
  let judged = 0;
  const merged: string[] = [];
  for (let i = 0; i < all.length; i += 1) {
    for (let j = i + 1; j < all.length; j += 1) {
      const comparison = compareFrames(all[i]!, all[j]!, DEFAULT_THRESHOLDS, NOISE_CAP);
      if (comparison.reason !== 'global') judged += 1;
      if (comparison.same) merged.push(`${i}~${j}`);
    }
  }
  // Equal brightness is what lets a pair past the whole-frame test: nearly all of them must reach the block tests.
  assert.ok(judged >= 0.9 * ((all.length * (all.length - 1)) / 2), `only ${judged} pairs got past the brightness test`);
  assert.deepEqual(merged, [], `${merged.length} unrelated pairs matched`);
});

test('the title noise comes from holds: a cut or redraw in the window does not raise it, and nothing raises it past the cap', async () => {
  const pictures = (await gridCrops(40, W, H, { seed: 19, mean: MEAN })).map((rgb, i) => features(grainy(rgb, i)));
  const noise = new TitleNoise();
  const hold = randomCel(7);
  // Animation on 3s: two holds, then a new picture.
  pictures.forEach((picture, i) => {
    noise.add(features(grainy(hold, 3 * i)), features(grainy(hold, 3 * i + 1)));
    noise.add(features(grainy(hold, 3 * i + 1)), features(grainy(hold, 3 * i + 2)));
    noise.add(features(grainy(hold, 3 * i + 2)), picture);
  });
  const measured = noise.level;
  const grain = holdNoise(hold);
  assert.ok(Math.abs(measured.luma - grain.luma) < 0.3 && Math.abs(measured.chroma - grain.chroma) < 0.3, `${JSON.stringify(measured)} vs ${JSON.stringify(grain)}`);
  // Nothing but unrelated pictures (an action scene on 1s): capped.
  const busy = new TitleNoise();
  pictures.forEach((picture, i) => i > 0 && busy.add(pictures[i - 1]!, picture));
  assert.ok(busy.level.luma <= NOISE_CAP.luma && busy.level.chroma <= NOISE_CAP.chroma);
});

test('a picture that differs only in one small spot never matches: 8x8 pixels at the noise cap, 6x6 at the noise of grain', async () => {
  const pictures = [...(await gridCrops(6, W, H, { seed: 11, mean: MEAN })), randomCel(1), randomCel(2)];
  const random = mulberry32(5);
  const missed: string[] = [];
  for (const [p, clean] of pictures.entries()) {
    const grain = holdNoise(clean);
    assert.ok(grain.luma > 0.5 && grain.luma < NOISE_CAP.luma, `grain noise ${grain.luma}`);
    const original = features(grainy(clean, 1));
    for (let k = 0; k < 12; k += 1) {
      // Any alignment with the 8x8 blocks: a spot that straddles four blocks moves each one least.
      const x = 8 + Math.floor(random() * (W - 24));
      const y = 8 + Math.floor(random() * (H - 24));
      if (compareFrames(original, features(grainy(withSpot(clean, x, y, 8), 2)), DEFAULT_THRESHOLDS, NOISE_CAP).same) missed.push(`picture ${p}: 8x8 at ${x},${y}`);
      if (compareFrames(original, features(grainy(withSpot(clean, x, y, 6), 3)), DEFAULT_THRESHOLDS, grain).same) missed.push(`picture ${p}: 6x6 at ${x},${y}`);
    }
  }
  assert.deepEqual(missed, []);
});

test('grain alone never splits a drawing, at the noise the title shows', async () => {
  const pictures = [...(await gridCrops(10, W, H, { seed: 13, mean: MEAN })), ...Array.from({ length: 10 }, (_, i) => randomCel(2000 + i))];
  const split: string[] = [];
  for (const [p, clean] of pictures.entries()) {
    const grain = holdNoise(clean);
    for (let k = 0; k < 5; k += 1) {
      const comparison = compareFrames(features(grainy(clean, 10 + k)), features(grainy(clean, 20 + k)), DEFAULT_THRESHOLDS, grain);
      if (!comparison.same) split.push(`picture ${p} (${comparison.reason})`);
    }
  }
  assert.deepEqual(split, []);
});

async function decodedFeatures(file: string, width: number, height: number): Promise<FrameFeatures[]> {
  const decoded = new MediaRepository(resolveFfmpegBinaries()).decodeFrames({ input: file, width, height, hwaccel: 'none' });
  const all: FrameFeatures[] = [];
  for await (const rgb of decoded.frames) all.push(computeFeatures(rgb, width, height));
  await decoded.done;
  return all;
}

test('through x264 at Blu-ray settings: held pictures of one brightness are told apart, and a re-encode with other grain repeats them', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const size = { width: 640, height: 360 };
  const renderer = new Renderer(size);
  const random = mulberry32(3);
  const cels = ['medium', 'two-shot', 'close-up', 'wide', 'table', 'medium'].map((framing, i) =>
    withMeanLuma(Buffer.from(renderer.render(still(makeComposition(random, i, framing as 'medium'), [gesture(i)]))), MEAN));
  const pictures = [...(await gridCrops(6, size.width, size.height, { seed: 17, mean: MEAN })), ...cels];
  const HOLD = 3;
  const held = pictures.flatMap((picture) => Array.from({ length: HOLD }, () => picture));
  const first = path.join(dir, 'first.m2ts');
  const second = path.join(dir, 'second.m2ts');
  await encode(held, withDefaults({ ...size, grain: 10, seed: 1 }), first);
  await encode(held, withDefaults({ ...size, grain: 10, seed: 2 }), second);
  const frames = [...(await decodedFeatures(first, size.width, size.height)), ...(await decodedFeatures(second, size.width, size.height))];
  assert.equal(frames.length, 2 * held.length);

  const featureFile = FeatureFile.create(path.join(dir, 'features.bin'), size.width, size.height);
  t.after(() => featureFile.close());
  const dedup = new Deduplicator(featureFile);
  const wrong: string[] = [];
  frames.forEach((frame, n) => {
    const decision = dedup.decide(n, frame);
    const picture = Math.floor((n % held.length) / HOLD);
    const expected = n % HOLD === 0 && n < held.length ? null : picture * HOLD;
    if (decision.duplicateOf !== expected) wrong.push(`frame ${n} (picture ${picture}): ${decision.status} of ${decision.duplicateOf}, expected ${expected ?? 'kept'}`);
  });
  assert.deepEqual(wrong, []);
});

test('a frame repeats the closest drawing that passes, not the previous one when that passes only near the thresholds', (t) => {
  // bench/long-clip.bench.ts at 320x180: in a shot that returns after a cut, the first frame of a drawing
  // (an arm moved: block means within the floors of the drawing before it) was linked to the drawing before it.
  const dir = tempDir(t);
  const base = features(randomCel(31));
  const block = base.lumaCols * 10 + 12;
  const moved = (levels: number) => {
    const luma = Float32Array.from(base.luma);
    luma[block]! += levels;
    return { ...base, luma };
  };
  const other = features(randomCel(32));
  // The drawing, the next one (12 levels in a block: told apart), a cut, then the two again: the next one
  // now 9 levels from the first (within the floor of 10), 3 from its own first appearance.
  const frames = [base, base, moved(12), moved(12), other, other, base, base, moved(9), moved(9)];
  const featureFile = FeatureFile.create(path.join(dir, 'features.bin'), W, H);
  t.after(() => featureFile.close());
  const dedup = new Deduplicator(featureFile);
  const links = frames.map((frame, n) => dedup.decide(n, frame).duplicateOf);
  assert.deepEqual(links, [null, 0, null, 2, null, 4, 0, 0, 2, 2]);
});
