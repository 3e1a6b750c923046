/**
 * Dedup and cuts on the grainy film clip (test/fixtures/grainy-film.ts, made
 * independently of the anime clip), at 640x360, decoded by the real ffmpeg
 * and decided by the deduplicator as the extract stage does; and the case
 * that clip showed: a cut to a shot that fades in from near black.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { resolveFfmpegBinaries } from '../../src/adapters/ffmpeg-binaries.ts';
import { MediaRepository } from '../../src/adapters/media.ts';
import { CutDetector } from '../../src/stages/extract/cut-detector.ts';
import { Deduplicator, type FrameDecision } from '../../src/stages/extract/deduplicator.ts';
import { FeatureFile } from '../../src/stages/extract/feature-file.ts';
import { framesWithFeatures } from '../../src/stages/extract/feature-pipeline.ts';
import { computeFeatures } from '../../src/stages/extract/features.ts';
import { makeGrainyFilm } from '../fixtures/grainy-film.ts';
import { mulberry32 } from '../fixtures/anime-clip.ts';
import { tempDir } from '../helpers.ts';

const W = 320;
const H = 180;

/** Two rectangles on a background, dimmed by `light`, with grain. */
function picture(rects: [number, number, number, number, number][], background: number, light: number, seed: number) {
  const random = mulberry32(seed);
  const rgb = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y += 1) {
    for (let x = 0; x < W; x += 1) {
      const inside = rects.find(([x0, y0, x1, y1]) => x >= x0 && x < x1 && y >= y0 && y < y1);
      const value = (inside ? inside[4] : background) * light + (random() - 0.5) * 10;
      rgb.fill(Math.max(0, Math.min(255, Math.round(value))), (y * W + x) * 3, (y * W + x) * 3 + 3);
    }
  }
  return computeFeatures(rgb, W, H);
}

const room = (light: number, seed: number) => picture([[40, 40, 160, 140, 210], [200, 90, 300, 170, 30]], 80, light, seed);
const beach = (light: number, seed: number) => picture([[0, 100, 320, 180, 150], [230, 20, 290, 70, 200]], 90, light, seed);

test('a cut to a shot that fades in from near black is found on its first, dim frame; a fade out to the same dimness is no cut', () => {
  const detector = new CutDetector();
  const lights = [0.15, 0.25, 0.4, 0.6, 0.8, 1];
  const cutIn = [room(1, 1), room(1, 2), ...lights.map((light, i) => beach(light, 10 + i))].map((frame) => detector.next(frame, 1));
  assert.deepEqual(cutIn, [true, false, true, false, false, false, false, false]);
  const fadeOut = new CutDetector();
  const out = [room(1, 1), ...[0.1, ...lights].reverse().map((light, i) => room(light, 20 + i)), beach(1, 30)].map((frame) => fadeOut.next(frame, 1));
  assert.deepEqual(out, [true, false, false, false, false, false, false, false, true], 'the dim end of a fade out stays in its shot; the next lit shot is a cut');
});

test('on the grainy film clip at 640x360: every cut at its frame and none inside a shot (redraws on 2s, a pan, a flash, fades); no link across shots', { timeout: 600_000 }, async (t) => {
  const film = await makeGrainyFilm({ width: 640, height: 360 });
  const media = new MediaRepository(resolveFfmpegBinaries());
  const decoded = media.decodeFrames({ input: film.file, width: film.width, height: film.height, hwaccel: 'none' });
  const features = FeatureFile.create(path.join(tempDir(t), 'features.bin'), film.width, film.height);
  t.after(() => features.close());
  const dedup = new Deduplicator(features);
  const decisions: FrameDecision[] = [];
  for await (const frame of framesWithFeatures(decoded.frames, film.width, film.height, 1)) decisions.push(dedup.decide(decisions.length, frame.features));
  await decoded.done;
  assert.equal(decisions.length, film.frameCount);
  const starts = decisions.filter((d, i) => i > 0 && d.scene !== decisions[i - 1]!.scene).map((d) => d.frame);
  assert.deepEqual(starts, film.shots.slice(1));
  // At this size a mouth flap or a blink changes fewer than 10 pixels, under what x264 moves at an edge
  // (they are told apart at 1080p: bench/grainy-film.bench.ts); a link between different pictures, never.
  const unrelated = decisions.filter((d) => d.status === 'duplicate' && film.layouts[d.duplicateOf!] !== film.layouts[d.frame]);
  assert.deepEqual(unrelated.map((d) => `${d.frame}->${d.duplicateOf}`), []);
});
