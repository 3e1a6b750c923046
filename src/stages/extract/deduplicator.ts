/**
 * Decides, frame by frame in decode order, which scene a frame belongs to and
 * whether it repeats a drawing seen before anywhere in the video (not only
 * the previous frame: a shot that returns after a cut repeats its first
 * appearance). The first frame of every drawing is kept; every later frame of
 * it is a duplicate of that first frame.
 */
import { compareFrames, DEFAULT_THRESHOLDS, type Comparison, type DedupThresholds, type NoiseLevel } from './compare.ts';
import { CutDetector, type CutDetectorState } from './cut-detector.ts';
import { DrawingIndex } from './drawing-index.ts';
import { coarseSignature, type FrameFeatures } from './features.ts';
import type { DrawingHead, FeatureFile } from './feature-file.ts';
import { TitleNoise, type TitleNoiseState } from './title-noise.ts';

export interface FrameDecision {
  frame: number;
  status: 'kept' | 'duplicate';
  /** The kept frame this one repeats, or null when kept. */
  duplicateOf: number | null;
  /** 1-based shot number. */
  scene: number;
}

export interface IndexStats {
  /** Lookups in the index (frames that did not repeat the previous drawing). */
  lookups: number;
  /** Kept drawings whose coarse signature a lookup checked. */
  examined: number;
  /** Fine comparisons (compareFrames), the previous drawing's included. */
  comparisons: number;
}

/** Everything a run knows after deciding frames 0 to `frame - 1`, but the drawings (their features are in the feature file). */
export interface DedupState {
  /** The next frame to decide. */
  frame: number;
  /** Drawings remembered so far: the feature file's first records. */
  drawings: number;
  scene: number;
  cuts: CutDetectorState;
  noise: TitleNoiseState;
  previous: { features: FrameFeatures; drawingFrame: number } | null;
}

interface Drawing {
  frame: number;
  mean: number;
  coarse: Float32Array;
  record: number;
}

export class Deduplicator {
  readonly #features: FeatureFile;
  readonly #thresholds: DedupThresholds;
  /** Kept drawings by what a repeat shares with them, for lookups after cuts. */
  readonly #index = new DrawingIndex<Drawing>();
  readonly #byFrame = new Map<number, Drawing>();
  readonly #cuts = new CutDetector();
  readonly #noise = new TitleNoise();
  #previous: { features: FrameFeatures; drawing: Drawing } | null = null;
  #scene = 0;
  #stats = { lookups: 0, comparisons: 0 };

  constructor(features: FeatureFile, thresholds: DedupThresholds = DEFAULT_THRESHOLDS) {
    this.#features = features;
    this.#thresholds = thresholds;
  }

  /**
   * Continues where an earlier run's state left off, with its drawings as the feature file
   * (already cut back to `state.drawings` records) holds them: `heads` are its records' heads.
   */
  static resume(features: FeatureFile, heads: readonly DrawingHead[], state: DedupState, thresholds: DedupThresholds = DEFAULT_THRESHOLDS): Deduplicator {
    const dedup = new Deduplicator(features, thresholds);
    heads.forEach((head, record) => dedup.#file({ ...head, record }));
    dedup.#scene = state.scene;
    dedup.#cuts.restore(state.cuts);
    dedup.#noise.restore(state.noise);
    const previous = state.previous && dedup.#byFrame.get(state.previous.drawingFrame);
    if (state.previous && !previous) throw new Error(`the state's previous drawing (frame ${state.previous.drawingFrame}) is not among its drawings`);
    dedup.#previous = previous ? { features: state.previous!.features, drawing: previous } : null;
    return dedup;
  }

  get drawings(): number {
    return this.#byFrame.size;
  }

  /** The state after the frames decided so far; `frame` is the next one. */
  state(frame: number): DedupState {
    const previous = this.#previous && { features: this.#previous.features, drawingFrame: this.#previous.drawing.frame };
    return { frame, drawings: this.#byFrame.size, scene: this.#scene, cuts: this.#cuts.state, noise: this.#noise.state, previous };
  }

  /** Work done by lookups so far, to check it stays bounded as drawings pile up. */
  get stats(): IndexStats {
    return { ...this.#stats, examined: this.#index.examined };
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

  /**
   * The closest kept drawing that passes, the previous one first. A clear repeat of it needs no lookup; a
   * pass near the block threshold may be the next drawing of a shot that returns after a cut, and its own
   * first appearance, further back, is then closer (bench/long-clip.bench.ts: 6 of its wrong links).
   */
  #match(features: FrameFeatures, noise: NoiseLevel): Drawing | null {
    const previous = this.#previous?.drawing;
    let best: { drawing: Drawing; comparison: Comparison } | null = null;
    if (previous) {
      const comparison = this.#compare(previous, features, noise);
      if (comparison.same && comparison.maxBlockDiff <= clearRepeat(this.#thresholds, noise)) return previous;
      if (comparison.same) best = { drawing: previous, comparison };
    }
    const coarse = coarseSignature(features);
    this.#stats.lookups += 1;
    for (const drawing of this.#index.near(features.mean, coarse)) {
      if (drawing === previous) continue;
      const comparison = this.#compare(drawing, features, noise);
      if (comparison.same && (!best || closer(comparison, drawing, best))) best = { drawing, comparison };
    }
    return best?.drawing ?? null;
  }

  #compare(drawing: Drawing, features: FrameFeatures, noise: NoiseLevel): Comparison {
    this.#stats.comparisons += 1;
    return compareFrames(this.#features.read(drawing.record), features, this.#thresholds, noise);
  }

  #remember(frame: number, features: FrameFeatures): Drawing {
    const coarse = coarseSignature(features);
    return this.#file({ frame, mean: features.mean, coarse, record: this.#features.append(frame, features, coarse) });
  }

  #file(drawing: Drawing): Drawing {
    this.#index.add(drawing);
    this.#byFrame.set(drawing.frame, drawing);
    return drawing;
  }
}

/** Half the block threshold: a largest block difference under it leaves no room for a closer drawing to matter. */
function clearRepeat(t: DedupThresholds, noise: NoiseLevel): number {
  return Math.max(t.block, t.sigmas * noise.luma) / 2;
}

/** The smaller largest block difference wins; between equals, the earlier drawing (the order the index returns them in is not the film's). */
function closer(comparison: Comparison, drawing: Drawing, best: { drawing: Drawing; comparison: Comparison }): boolean {
  const a = comparison.maxBlockDiff;
  const b = best.comparison.maxBlockDiff;
  return a < b || (a === b && drawing.frame < best.drawing.frame);
}
