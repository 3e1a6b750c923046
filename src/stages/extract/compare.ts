/**
 * Are two frames the same drawing? And is there a jump cut between two
 * consecutive frames? Both read block-mean differences, with thresholds that
 * scale with the noise measured in the pair itself (grain differs between
 * titles), so that grain and encoding noise never split a drawing while a
 * blink, a mouth flap, a small change of shade, a pan or a fade always does.
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
export const DEFAULT_THRESHOLDS: DedupThresholds = { global: 0.8, block: 10, area: 4, chroma: 16, sigmas: 8 };

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

export function compareFrames(a: FrameFeatures, b: FrameFeatures, t: DedupThresholds = DEFAULT_THRESHOLDS): Comparison {
  const result: Comparison = { same: false, reason: null, globalDiff: Math.abs(a.mean - b.mean), maxBlockDiff: 0, maxAreaDiff: 0, maxChromaDiff: 0, noise: 0 };
  if (a.width !== b.width || a.height !== b.height) return { ...result, reason: 'size' };
  if (result.globalDiff > t.global) return { ...result, reason: 'global' };

  const diff = new Float32Array(a.luma.length);
  for (let i = 0; i < diff.length; i += 1) {
    const d = a.luma[i]! - b.luma[i]!;
    diff[i] = d;
    if (Math.abs(d) > result.maxBlockDiff) result.maxBlockDiff = Math.abs(d);
  }
  result.noise = robustSigma(diff);
  if (result.maxBlockDiff > Math.max(t.block, t.sigmas * result.noise)) return { ...result, reason: 'block' };

  result.maxAreaDiff = maxBoxMean(diff, a.lumaCols, a.lumaRows);
  if (result.maxAreaDiff > Math.max(t.area, (t.sigmas * result.noise) / 3)) return { ...result, reason: 'area' };

  const chromaDiff = new Float32Array(a.chroma.length);
  for (let i = 0; i < chromaDiff.length; i += 1) {
    chromaDiff[i] = a.chroma[i]! - b.chroma[i]!;
    if (Math.abs(chromaDiff[i]!) > result.maxChromaDiff) result.maxChromaDiff = Math.abs(chromaDiff[i]!);
  }
  if (result.maxChromaDiff > Math.max(t.chroma, t.sigmas * robustSigma(chromaDiff))) return { ...result, reason: 'chroma' };
  return { ...result, same: true };
}

/**
 * A jump cut between consecutive frames: their block patterns, each
 * normalised to zero mean and unit spread, differ by more than motion within
 * a shot does (a fade only rescales the pattern, so it stays). Nearly flat
 * frames (the black end of a fade) have no pattern to compare: there a cut is
 * a jump in brightness or a textured frame after a flat one.
 */
export function isJumpCut(previous: FrameFeatures, current: FrameFeatures): boolean {
  if (previous.width !== current.width || previous.height !== current.height) return true;
  const a = previous.luma;
  const b = current.luma;
  const n = a.length;
  const meanA = previous.mean;
  const meanB = current.mean;
  let varA = 0;
  let varB = 0;
  for (let i = 0; i < n; i += 1) {
    varA += (a[i]! - meanA) ** 2;
    varB += (b[i]! - meanB) ** 2;
  }
  const spreadA = Math.sqrt(varA / n);
  const spreadB = Math.sqrt(varB / n);
  if (Math.min(spreadA, spreadB) < FLAT_SPREAD) {
    return Math.abs(meanA - meanB) > FLAT_CUT_JUMP || Math.max(spreadA, spreadB) > 2 * FLAT_SPREAD;
  }
  let normalisedDiff = 0;
  let absDiff = 0;
  for (let i = 0; i < n; i += 1) {
    normalisedDiff += Math.abs((a[i]! - meanA) / spreadA - (b[i]! - meanB) / spreadB);
    absDiff += Math.abs(a[i]! - b[i]!);
  }
  return normalisedDiff / n > CUT_PATTERN_CHANGE && absDiff / n > CUT_LEVEL_CHANGE;
}

/**
 * Measured on generated shots with grain: within a shot (holds, mouth flaps,
 * pans, fades) the normalised difference stays under 0.06; at cuts it is 0.3
 * or more, even between compositions of similar layout.
 */
const CUT_PATTERN_CHANGE = 0.2;
const CUT_LEVEL_CHANGE = 6;
/** Block means of a frame with less spread than this are mostly noise. */
const FLAT_SPREAD = 8;
const FLAT_CUT_JUMP = 20;

/** Noise of a difference map: 1.4826 x the median absolute value (a change in a few blocks leaves it alone). */
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
