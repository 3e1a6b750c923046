/**
 * computeFeatures gives exactly what a plain pixel-by-pixel reading gives
 * (the dedup's decisions and the feature file depend on every bit), on sizes
 * that are and are not multiples of the blocks, read as words or as bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHROMA_BLOCK, computeFeatures, LUMA_BLOCK } from '../../src/stages/extract/features.ts';
import { mulberry32 } from '../fixtures/anime-clip.ts';

/** Sums every pixel into its blocks one at a time, then divides as the features do. */
function reference(rgb: Uint8Array, width: number, height: number) {
  const lumaCols = Math.ceil(width / LUMA_BLOCK);
  const chromaCols = Math.ceil(width / CHROMA_BLOCK);
  const luma = new Array<number>(lumaCols * Math.ceil(height / LUMA_BLOCK)).fill(0);
  const lumaPixels = [...luma];
  const chroma = new Array<number>(chromaCols * Math.ceil(height / CHROMA_BLOCK) * 2).fill(0);
  const chromaPixels = new Array<number>(chroma.length / 2).fill(0);
  let total = 0;
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const [r, g, b] = [rgb[(y * width + x) * 3]!, rgb[(y * width + x) * 3 + 1]!, rgb[(y * width + x) * 3 + 2]!];
      const y256 = 77 * r + 150 * g + 29 * b;
      const l = Math.floor(y / LUMA_BLOCK) * lumaCols + Math.floor(x / LUMA_BLOCK);
      luma[l] += y256;
      lumaPixels[l] += 1;
      const c = Math.floor(y / CHROMA_BLOCK) * chromaCols + Math.floor(x / CHROMA_BLOCK);
      chroma[c * 2] += b * 256 - y256;
      chroma[c * 2 + 1] += r * 256 - y256;
      chromaPixels[c] += 1;
      total += y256;
    }
  }
  return {
    luma: Float32Array.from(luma, (sum, i) => sum / 256 / lumaPixels[i]!),
    chroma: Float32Array.from(chroma, (sum, i) => sum / 256 / chromaPixels[i >> 1]!),
    mean: total / 256 / (width * height),
  };
}

// Rows on 32-bit words (read word by word) or not, a last block narrower than 8 pixels, a frame
// that does not start on a word (a Buffer cut from a larger one).
for (const [width, height, start] of [[64, 32, 0], [36, 20, 0], [50, 30, 0], [7, 5, 0], [64, 32, 1], [1920, 1080, 0]] as const) {
  test(`${width}x${height}${start ? `, ${start} byte into its memory` : ''}: the block sums equal a pixel-by-pixel reading, bit for bit`, () => {
    const random = mulberry32(width * 31 + height);
    const rgb = new Uint8Array(width * height * 3 + start).subarray(start);
    // Flat areas with grain and a few saturated pixels, as decoded frames have.
    for (let i = 0; i < rgb.length; i += 1) rgb[i] = random() < 0.01 ? 255 * Math.round(random()) : Math.min(255, Math.max(0, 120 + ((i / 3) % 97) + Math.round((random() - 0.5) * 20)));
    const features = computeFeatures(rgb, width, height);
    const expected = reference(rgb, width, height);
    assert.deepEqual(features.luma, expected.luma);
    assert.deepEqual(features.chroma, expected.chroma);
    assert.equal(features.mean, expected.mean);
    assert.equal(features.lumaCols * features.lumaRows, expected.luma.length);
  });
}

test('a white frame and a black one: every block at 255 and 0 (no sum overflows its lane)', () => {
  for (const level of [255, 0]) {
    const features = computeFeatures(new Uint8Array(64 * 32 * 3).fill(level), 64, 32);
    assert.ok(features.luma.every((value) => value === level), `luma at ${level}`);
    assert.ok(features.chroma.every((value) => value === 0), `chroma at ${level}`);
    assert.equal(features.mean, level);
  }
});
