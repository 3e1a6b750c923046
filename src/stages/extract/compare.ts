/**
 * Are two frames the same drawing? Reads block-mean differences, with
 * thresholds that scale with the title's noise (grain differs between
 * titles), so that grain and encoding noise never split a drawing while a
 * blink, a mouth flap, a small change of shade, a pan or a fade always does.
 *
 * The noise is never measured on the pair being judged: on two unrelated
 * pictures nearly every block differs, a noise read from that difference is
 * huge, and every threshold would scale past the difference it should catch.
 * It comes from the caller (`TitleNoise`: consecutive frames of the title, most
 * of them holds), capped at what grain can do to a block mean.
 */
import type { FrameFeatures } from './features.ts';

export interface DedupThresholds {
  /** Whole-frame mean luma difference that makes frames different (fades). */
  global: number;
  /** Smallest 8x8 block difference that counts, whatever the noise. */
  block: number;
  /** Smallest 24x24 area difference that counts (small changes of shade). */
  area: number;
  /** Smallest 16x16 chroma difference that counts (a change of hue). */
  chroma: number;
  /** How many noise standard deviations a change must stand above the noise. */
  sigmas: number;
}

// Floors measured on grainy 1080p at Blu-ray bitrates: the same drawing reached block 6.7, area 2.6, chroma 12.1
// (where the encoder copies blocks, the measured noise is near 0 and only the floors hold).
// At 320x180 the block means are at their limit: on bench/long-clip.bench.ts an arm of nearly the wall's
// luma, raised behind the head (224 pixels), moves no 8x8 luma block by more than 9.4 nor a 16x16 chroma
// block by more than 13, where encoding alone moves one drawing by up to 8.0 and 12.7; three such drawings
// are merged into the one before. 4x4-pixel luma blocks would part them (at least 41 against at most 16).
export const DEFAULT_THRESHOLDS: DedupThresholds = { global: 0.8, block: 10, area: 4, chroma: 16, sigmas: 8 };

/** Standard deviation of the block-mean difference between two frames of one drawing, in levels. */
export interface NoiseLevel {
  luma: number;
  chroma: number;
}

export const NO_NOISE: NoiseLevel = { luma: 0, chroma: 0 };

export interface Comparison {
  same: boolean;
  /** Why not the same, for logs and tuning. */
  reason: 'global' | 'block' | 'area' | 'chroma' | 'size' | null;
  globalDiff: number;
  maxBlockDiff: number;
  maxAreaDiff: number;
  maxChromaDiff: number;
  noise: number;
}

export function compareFrames(a: FrameFeatures, b: FrameFeatures, t: DedupThresholds = DEFAULT_THRESHOLDS, noise: NoiseLevel = NO_NOISE): Comparison {
  const result: Comparison = {
    same: false, reason: null, globalDiff: Math.abs(a.mean - b.mean), maxBlockDiff: 0, maxAreaDiff: 0, maxChromaDiff: 0, noise: noise.luma,
  };
  if (a.width !== b.width || a.height !== b.height) return { ...result, reason: 'size' };
  if (result.globalDiff > t.global) return { ...result, reason: 'global' };

  const diff = new Float32Array(a.luma.length);
  for (let i = 0; i < diff.length; i += 1) {
    const d = a.luma[i]! - b.luma[i]!;
    diff[i] = d;
    if (Math.abs(d) > result.maxBlockDiff) result.maxBlockDiff = Math.abs(d);
  }
  if (result.maxBlockDiff > Math.max(t.block, t.sigmas * result.noise)) return { ...result, reason: 'block' };

  result.maxAreaDiff = maxBoxMean(diff, a.lumaCols, a.lumaRows);
  if (result.maxAreaDiff > Math.max(t.area, (t.sigmas * result.noise) / 3)) return { ...result, reason: 'area' };

  for (let i = 0; i < a.chroma.length; i += 1) {
    const d = Math.abs(a.chroma[i]! - b.chroma[i]!);
    if (d > result.maxChromaDiff) result.maxChromaDiff = d;
  }
  if (result.maxChromaDiff > Math.max(t.chroma, t.sigmas * noise.chroma)) return { ...result, reason: 'chroma' };
  return { ...result, same: true };
}

/**
 * Noise between two frames: 1.4826 x the median absolute block difference
 * (the standard deviation of Gaussian noise; a change in a few blocks leaves
 * it alone). Only for frames next to each other, where most pairs are holds.
 */
export function pairNoise(a: FrameFeatures, b: FrameFeatures): NoiseLevel {
  const luma = new Float32Array(a.luma.length);
  for (let i = 0; i < luma.length; i += 1) luma[i] = a.luma[i]! - b.luma[i]!;
  const chroma = new Float32Array(a.chroma.length);
  for (let i = 0; i < chroma.length; i += 1) chroma[i] = a.chroma[i]! - b.chroma[i]!;
  return { luma: robustSigma(luma), chroma: robustSigma(chroma) };
}

function robustSigma(diff: Float32Array): number {
  const BIN = 0.05;
  const BINS = 1024;
  const histogram = new Uint32Array(BINS);
  for (let i = 0; i < diff.length; i += 1) histogram[Math.min(BINS - 1, Math.floor(Math.abs(diff[i]!) / BIN))]! += 1;
  let seen = 0;
  for (let bin = 0; bin < BINS; bin += 1) {
    seen += histogram[bin]!;
    if (seen * 2 >= diff.length) return 1.4826 * (bin + 0.5) * BIN;
  }
  return 1.4826 * BINS * BIN;
}

/** Largest |mean| of the difference over 3x3 neighbouring blocks. */
function maxBoxMean(diff: Float32Array, cols: number, rows: number): number {
  let best = 0;
  for (let row = 1; row < rows - 1; row += 1) {
    for (let col = 1; col < cols - 1; col += 1) {
      let sum = 0;
      for (let dy = -1; dy <= 1; dy += 1) {
        const base = (row + dy) * cols + col;
        sum += diff[base - 1]! + diff[base]! + diff[base + 1]!;
      }
      const mean = Math.abs(sum / 9);
      if (mean > best) best = mean;
    }
  }
  return best;
}
