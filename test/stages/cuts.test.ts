import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareFrames, isJumpCut } from '../../src/stages/extract/compare.ts';
import { computeFeatures } from '../../src/stages/extract/features.ts';

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

test('a cut to another composition is a jump cut; a fade, a pan and grain are not', () => {
  const shot = picture({ rect: [40, 40, 160, 140], bg: 60, fg: 200 });
  assert.equal(isJumpCut(shot, picture({ rect: [180, 20, 300, 100], bg: 120, fg: 30 })), true);
  assert.equal(isJumpCut(shot, picture({ rect: [40, 40, 160, 140], bg: 60, fg: 200, brightness: 0.8 })), false, 'fade step');
  assert.equal(isJumpCut(shot, picture({ rect: [42, 40, 162, 140], bg: 60, fg: 200 })), false, 'pan step');
  assert.equal(isJumpCut(shot, picture({ rect: [40, 40, 160, 140], bg: 60, fg: 200, noise: 20, seed: 7 })), false, 'grain');
  const black = picture({ rect: [0, 0, 0, 0], bg: 2, fg: 2 });
  assert.equal(isJumpCut(black, shot), true, 'from black to a picture');
  assert.equal(isJumpCut(black, picture({ rect: [0, 0, 0, 0], bg: 4, fg: 4 })), false, 'the black end of a fade');
});

test('grain alone keeps a drawing; a small change of shade or a two-pixel shift does not', () => {
  const base = { rect: [40, 40, 160, 140] as [number, number, number, number], bg: 60, fg: 200, noise: 16 };
  const a = picture({ ...base, seed: 1 });
  assert.equal(compareFrames(a, picture({ ...base, seed: 2 })).same, true);
  assert.equal(compareFrames(a, picture({ ...base, fg: 190, seed: 3 })).same, false);
  assert.equal(compareFrames(a, picture({ ...base, rect: [42, 40, 162, 140], seed: 4 })).same, false);
});
