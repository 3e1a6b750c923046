/**
 * The grain of a title, as dedup sees it: the noise between consecutive
 * frames, most of which are holds of one drawing in animation on 2s and 3s.
 * A low quantile of a recent window ignores the cuts, redraws and pans in
 * it; the cap is the most that grain does to a block mean, so that no run of
 * frames that all change (an action scene on 1s, a long pan) can loosen the
 * thresholds past a blink. The frame being judged never counts towards the
 * noise it is judged with.
 */
import { pairNoise, type NoiseLevel } from './compare.ts';
import type { FrameFeatures } from './features.ts';

/** Two seconds of frames. */
const WINDOW = 48;
/** At least a quarter of consecutive pairs are holds even in animation on 2s with a pan or a cut in the window. */
const QUANTILE = 0.25;
/**
 * Measured on the anime clip (test/fixtures/anime-clip.ts, x264 CRF 16): grain 10 gave 1.0-1.1
 * luma and 1.6-1.9 chroma at 640x360 and 1920x1080; grain 30, heavier than film grain on a
 * disc, 3.2 and 5.0, with holds differing by up to 15 (luma) and 30 (chroma) in a block, under
 * 8 sigmas of the cap. At the cap an 8x8-pixel spot of ink anywhere still moves some 3x3-block
 * area by more than the area threshold (8 x 3.5 / 3 = 9.3 levels): test/stages/dedup.test.ts.
 */
export const NOISE_CAP: NoiseLevel = { luma: 3.5, chroma: 5 };

/** The window of recent measurements (kept in a resume point). */
export interface TitleNoiseState {
  luma: number[];
  chroma: number[];
}

export class TitleNoise {
  #luma: number[] = [];
  #chroma: number[] = [];

  get state(): TitleNoiseState {
    return { luma: [...this.#luma], chroma: [...this.#chroma] };
  }

  /** Continues from a state an earlier run saved. */
  restore(state: TitleNoiseState): void {
    this.#luma = [...state.luma];
    this.#chroma = [...state.chroma];
  }

  /** Records the noise between a frame and the one before it. */
  add(previous: FrameFeatures, current: FrameFeatures): void {
    if (previous.luma.length !== current.luma.length) return;
    const { luma, chroma } = pairNoise(previous, current);
    this.#luma.push(luma);
    this.#chroma.push(chroma);
    if (this.#luma.length > WINDOW) {
      this.#luma.shift();
      this.#chroma.shift();
    }
  }

  /** No measurement yet is no noise: only the fixed floors of the thresholds hold. */
  get level(): NoiseLevel {
    return { luma: Math.min(NOISE_CAP.luma, quantile(this.#luma)), chroma: Math.min(NOISE_CAP.chroma, quantile(this.#chroma)) };
  }
}

function quantile(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(QUANTILE * (sorted.length - 1))]!;
}
