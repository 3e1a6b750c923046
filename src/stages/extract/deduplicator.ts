/**
 * Decides, frame by frame in decode order, which scene a frame belongs to and
 * whether it repeats a drawing seen before anywhere in the video (not only
 * the previous frame: a shot that returns after a cut repeats its first
 * appearance). The first frame of every drawing is kept; every later frame of
 * it is a duplicate of that first frame.
 */
import { compareFrames, DEFAULT_THRESHOLDS, type Comparison, type DedupThresholds, type NoiseLevel } from './compare.ts';
import { CutDetector } from './cut-detector.ts';
import { coarseSignature, type FrameFeatures } from './features.ts';
import type { FeatureFile } from './feature-file.ts';
import { TitleNoise } from './title-noise.ts';

export interface FrameDecision {
  frame: number;
  status: 'kept' | 'duplicate';
  /** The kept frame this one repeats, or null when kept. */
  duplicateOf: number | null;
  /** 1-based shot number. */
  scene: number;
}

interface Drawing {
  frame: number;
  mean: number;
  coarse: Float32Array;
  record: number;
}

/** Coarse region means of the same drawing differ by grain averaged over ~50k pixels: a fraction of a level. */
const COARSE_TOLERANCE = 4;

export class Deduplicator {
  readonly #features: FeatureFile;
  readonly #thresholds: DedupThresholds;
  /** Kept drawings by rounded mean luma, for lookups after cuts. */
  readonly #byMean = new Map<number, Drawing[]>();
  readonly #byFrame = new Map<number, Drawing>();
  readonly #cuts = new CutDetector();
  readonly #noise = new TitleNoise();
  #previous: { features: FrameFeatures; drawing: Drawing } | null = null;
  #scene = 0;

  constructor(features: FeatureFile, thresholds: DedupThresholds = DEFAULT_THRESHOLDS) {
    this.#features = features;
    this.#thresholds = thresholds;
  }

  get drawings(): number {
    return this.#byFrame.size;
  }

  decide(frame: number, features: FrameFeatures): FrameDecision {
    const noise = this.#noise.level;
    if (this.#cuts.next(features, noise.luma)) this.#scene += 1;
    const match = this.#match(features, noise);
    const drawing = match ?? this.#remember(frame, features);
    this.#advance(features, drawing);
    return match
      ? { frame, status: 'duplicate', duplicateOf: match.frame, scene: this.#scene }
      : { frame, status: 'kept', duplicateOf: null, scene: this.#scene };
  }

  /**
   * Rebuilds the state of an earlier run from its recorded decision (resuming after a crash).
   * A frame a person rejected since was still the first of its drawing.
   */
  replay(recorded: Omit<FrameDecision, 'status'> & { status: FrameDecision['status'] | 'rejected' }, features: FrameFeatures): void {
    // The cut detector and the noise see every frame in order, as in an uninterrupted run.
    this.#cuts.next(features, this.#noise.level.luma);
    this.#scene = recorded.scene;
    const drawing = recorded.status !== 'duplicate'
      ? this.#remember(recorded.frame, features)
      : this.#byFrame.get(recorded.duplicateOf!) ?? this.#remember(recorded.frame, features);
    this.#advance(features, drawing);
  }

  #advance(features: FrameFeatures, drawing: Drawing): void {
    if (this.#previous) this.#noise.add(this.#previous.features, features);
    this.#previous = { features, drawing };
  }

  #match(features: FrameFeatures, noise: NoiseLevel): Drawing | null {
    const previous = this.#previous?.drawing;
    if (previous && this.#compare(previous, features, noise).same) return previous;
    const coarse = coarseSignature(features);
    const key = Math.round(features.mean);
    let best: { drawing: Drawing; comparison: Comparison } | null = null;
    for (const bucket of [key - 1, key, key + 1]) {
      for (const drawing of this.#byMean.get(bucket) ?? []) {
        if (drawing === previous || !closeCoarse(drawing.coarse, coarse)) continue;
        const comparison = this.#compare(drawing, features, noise);
        if (comparison.same && (!best || comparison.maxBlockDiff < best.comparison.maxBlockDiff)) best = { drawing, comparison };
      }
    }
    return best?.drawing ?? null;
  }

  #compare(drawing: Drawing, features: FrameFeatures, noise: NoiseLevel): Comparison {
    return compareFrames(this.#features.read(drawing.record, drawing.mean), features, this.#thresholds, noise);
  }

  #remember(frame: number, features: FrameFeatures): Drawing {
    const drawing: Drawing = { frame, mean: features.mean, coarse: coarseSignature(features), record: this.#features.append(features) };
    const key = Math.round(features.mean);
    const bucket = this.#byMean.get(key);
    if (bucket) bucket.push(drawing);
    else this.#byMean.set(key, [drawing]);
    this.#byFrame.set(frame, drawing);
    return drawing;
  }
}

function closeCoarse(a: Float32Array, b: Float32Array): boolean {
  for (let i = 0; i < a.length; i += 1) if (Math.abs(a[i]! - b[i]!) > COARSE_TOLERANCE) return false;
  return true;
}
