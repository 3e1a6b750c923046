/**
 * Where the camera cuts. A cut is a change of the whole composition,
 * background included, so a shot continues through:
 *  - a fade or a flash that washes the picture towards black or white (the
 *    block pattern, normalised to zero mean and unit spread, is unchanged;
 *    light only adds, so during a flash no block gets darker),
 *  - a pan or camera shake (one shift of the whole picture explains it),
 *  - a character redrawn anywhere over a still background (much of what has
 *    structure, the background's edges, is unchanged in place).
 * Nearly flat frames (the black end of a fade, a white flash) have no
 * pattern: the next picture is compared with the last one before them.
 *
 * Frames arrive in order; `next` says whether a frame starts a new shot.
 */
import type { FrameFeatures } from './features.ts';

/**
 * Measured on generated shots with grain at 640x360 and 1920x1080 (test/fixtures/cut-shots.ts
 * and anime-clip.ts): within a shot the normalised difference reached 0.06 for holds, mouth
 * flaps and fades; redraws, pans and shake reach 0.2 to 0.5, like cuts (0.3 or more), so
 * above PATTERN_CHANGE the two tests below decide.
 */
const PATTERN_CHANGE = 0.2;
const LEVEL_CHANGE = 6;
/**
 * After the best shift of the whole picture, pans and shake left at most 4% of the blocks
 * outside the range of the shifted picture's 3x3 neighbourhood (sub-block shifts blend
 * neighbours); cuts left 13% or more (a cut between compositions of one palette, 15%).
 */
const MOVED_UNEXPLAINED = 0.08;
/** A block outside its neighbourhood's range by more than this (in spreads) is unexplained. */
const MOVED_TOLERANCE = 0.15;
/** Largest camera move searched between consecutive frames, as a fraction of the width and height. */
const MAX_MOVE = 0.08;
/**
 * Of the edges in either frame, a big character redrawn at random places over a still
 * background left 10% to 35% unchanged in place (the background's edges); cuts, even between
 * compositions of one palette and framing, at most 0.3% (their walls and floors agree, but not
 * where their edges are).
 */
const STILL_EDGES = 0.05;
/** An edge: a block that differs from its right or lower neighbour by this many spreads. */
const EDGE_STEP = 0.5;
/** A block has structure when its 3x3 neighbourhood spans this many spreads. */
const STRUCTURE_RANGE = 0.5;
/** Unchanged means within this many levels of the previous frame, or 3 noise sigmas where the grain is heavier. */
const STILL_TOLERANCE = 4;
/** Block means of a frame with less spread than this are mostly noise. */
const FLAT_SPREAD = 8;
const FLAT_CUT_JUMP = 20;
/**
 * A nearly flat frame still has a pattern to compare when its spread is this many levels,
 * and this many title noise sigmas (the noise of a block-mean difference; grain alone gives a
 * single frame about 0.7 of it). Measured on the grainy film clip (test/fixtures/grainy-film.ts)
 * at 640x360: the first frame of a fade in at 15% light, cut to from a lit shot, spread 5.8;
 * the last frames of a fade out to 15%, 6.5 and 8.1, each the same shot as the frame before.
 */
const DIM_PATTERN_SPREAD = 4;
const DIM_PATTERN_NOISES = 3;
/** A flash brightens the picture by this much on average, and darkens at most this share of blocks. */
const FLASH_RISE = 10;
const FLASH_DARKER_SHARE = 0.02;
/** A glow is smooth: most edges of a flashed picture are edges of the picture before it. */
const FLASH_INHERITED_EDGES = 0.8;
/** A brightening that lasts longer than this is a new shot (found late), not a flash. */
const MAX_FLASH_FRAMES = 6;

/** What the detector remembers between frames (kept in a resume point). */
export interface CutDetectorState {
  reference: FrameFeatures | null;
  previous: FrameFeatures | null;
  flashFrames: number;
}

export class CutDetector {
  /** The last textured, unflashed frame of the current shot. */
  #reference: FrameFeatures | null = null;
  #previous: FrameFeatures | null = null;
  #flashFrames = 0;

  get state(): CutDetectorState {
    return { reference: this.#reference, previous: this.#previous, flashFrames: this.#flashFrames };
  }

  /** Continues from a state an earlier run saved. */
  restore(state: CutDetectorState): void {
    this.#reference = state.reference;
    this.#previous = state.previous;
    this.#flashFrames = state.flashFrames;
  }

  /** True when `current` starts a new shot (always for the first frame). `noise`: the title's block noise sigma. */
  next(current: FrameFeatures, noise = 0): boolean {
    const cut = this.#isCut(current, noise);
    this.#previous = current;
    return cut;
  }

  #isCut(current: FrameFeatures, noise: number): boolean {
    const previous = this.#previous;
    if (!previous) {
      this.#reference = isFlat(current) ? null : current;
      return true;
    }
    if (previous.width !== current.width || previous.height !== current.height) {
      this.#reference = isFlat(current) ? null : current;
      this.#flashFrames = 0;
      return true;
    }
    const reference = this.#reference;
    // A dim picture is compared with the frame before it; after black or a flash, with the shot's last lit picture.
    const after = (isFlat(previous) && !hasPattern(previous, noise)) || this.#flashFrames > 0 ? reference : previous;
    if (isFlat(current)) {
      // A fade's black end or a white flash belongs to the shot before it; two different flat frames are two shots.
      if (isFlat(previous)) return Math.abs(previous.mean - current.mean) > FLAT_CUT_JUMP;
      // But a picture dimmed nearly to black still shows its pattern above the grain: another shot's is a cut (to a fade in).
      if (!after || !hasPattern(current, noise) || sameShot(after, current, noise)) return false;
      this.#reference = current;
      this.#flashFrames = 0;
      return true;
    }
    if (after && sameShot(after, current, noise)) {
      this.#reference = current;
      this.#flashFrames = 0;
      return false;
    }
    // A flash starts from a lit picture: after black, a brighter picture is the next shot.
    if (reference && !isFlat(previous) && this.#flashFrames < MAX_FLASH_FRAMES && isFlash(reference, current, noise)) {
      this.#flashFrames += 1;
      return false;
    }
    // Also the first picture after black frames that began the video: nothing before it to continue.
    this.#reference = current;
    this.#flashFrames = 0;
    return true;
  }
}

function isFlat(features: FrameFeatures): boolean {
  return spreadOf(features) < FLAT_SPREAD;
}

/** A frame whose block pattern stands above the grain (its spread over DIM_PATTERN_NOISES title noise sigmas). */
function hasPattern(features: FrameFeatures, noise: number): boolean {
  return spreadOf(features) >= Math.max(DIM_PATTERN_SPREAD, DIM_PATTERN_NOISES * noise);
}

/** Each frame is asked several times (as current, then as previous). */
const spreads = new WeakMap<FrameFeatures, number>();

function spreadOf(features: FrameFeatures): number {
  let spread = spreads.get(features);
  if (spread === undefined) {
    const { luma, mean } = features;
    let sum = 0;
    for (let i = 0; i < luma.length; i += 1) sum += (luma[i]! - mean) ** 2;
    spread = Math.sqrt(sum / luma.length);
    spreads.set(features, spread);
  }
  return spread;
}

function normalised(features: FrameFeatures): Float32Array {
  const { luma, mean } = features;
  const spread = spreadOf(features);
  const values = new Float32Array(luma.length);
  for (let i = 0; i < luma.length; i += 1) values[i] = (luma[i]! - mean) / spread;
  return values;
}

/** Pairwise: do these two textured frames of the same size belong to one shot? */
export function sameShot(a: FrameFeatures, b: FrameFeatures, noise = 0): boolean {
  const na = normalised(a);
  const nb = normalised(b);
  const n = na.length;
  let patternChange = 0;
  let levelChange = 0;
  for (let i = 0; i < n; i += 1) {
    patternChange += Math.abs(na[i]! - nb[i]!);
    levelChange += Math.abs(a.luma[i]! - b.luma[i]!);
  }
  if (patternChange / n <= PATTERN_CHANGE || levelChange / n <= LEVEL_CHANGE) return true;
  if (stillEdges(a, b, na, nb, noise) >= STILL_EDGES) return true;
  return unexplainedAfterMove(na, nb, neighbourhoodRange(na, a.lumaCols, a.lumaRows), a.lumaCols, a.lumaRows) <= MOVED_UNEXPLAINED;
}

/** Share of the edges in either frame that are unchanged in place: the block and its right and lower neighbours keep their levels. */
function stillEdges(a: FrameFeatures, b: FrameFeatures, na: Float32Array, nb: Float32Array, noise: number): number {
  const tolerance = Math.max(STILL_TOLERANCE, 3 * noise);
  const cols = a.lumaCols;
  const n = na.length;
  const isEdge = (values: Float32Array, i: number, right: boolean, below: boolean) =>
    (right && Math.abs(values[i]! - values[i + 1]!) > EDGE_STEP) || (below && Math.abs(values[i]! - values[i + cols]!) > EDGE_STEP);
  const kept = (i: number) => Math.abs(a.luma[i]! - b.luma[i]!) <= tolerance;
  let edges = 0;
  let unchanged = 0;
  for (let i = 0; i < n; i += 1) {
    const right = (i + 1) % cols !== 0;
    const below = i + cols < n;
    if (!isEdge(na, i, right, below) && !isEdge(nb, i, right, below)) continue;
    edges += 1;
    if (kept(i) && (!right || kept(i + 1)) && (!below || kept(i + cols))) unchanged += 1;
  }
  return edges === 0 ? 1 : unchanged / edges;
}

/**
 * Share of b's blocks that lie outside the range of a's 3x3 neighbourhood
 * after the one shift of a that best explains b (a camera move); blocks that
 * moved in from outside the frame are left out.
 */
function unexplainedAfterMove(na: Float32Array, nb: Float32Array, rangeA: Range, cols: number, rows: number): number {
  const { dx, dy } = bestShift(na, nb, cols, rows);
  let counted = 0;
  let unexplained = 0;
  for (let row = Math.max(0, dy); row < Math.min(rows, rows + dy); row += 1) {
    for (let col = Math.max(0, dx); col < Math.min(cols, cols + dx); col += 1) {
      const from = (row - dy) * cols + (col - dx);
      const value = nb[row * cols + col]!;
      counted += 1;
      if (value > rangeA.high[from]! + MOVED_TOLERANCE || value < rangeA.low[from]! - MOVED_TOLERANCE) unexplained += 1;
    }
  }
  return counted === 0 ? 1 : unexplained / counted;
}

/** The shift (in blocks) of a that best matches b: searched on 4x4-block cells first, then refined on blocks. */
function bestShift(na: Float32Array, nb: Float32Array, cols: number, rows: number): { dx: number; dy: number } {
  const CELL = 4;
  const cellCols = Math.floor(cols / CELL);
  const cellRows = Math.floor(rows / CELL);
  const ca = cellMeans(na, cols, cellCols, cellRows, CELL);
  const cb = cellMeans(nb, cols, cellCols, cellRows, CELL);
  const reachX = Math.ceil((MAX_MOVE * cols) / CELL);
  const reachY = Math.ceil((MAX_MOVE * rows) / CELL);
  const coarse = searchShift(ca, cb, cellCols, cellRows, 0, 0, reachX, reachY, 1);
  return searchShift(na, nb, cols, rows, coarse.dx * CELL, coarse.dy * CELL, CELL, CELL, 2);
}

function cellMeans(values: Float32Array, cols: number, cellCols: number, cellRows: number, cell: number): Float32Array {
  const means = new Float32Array(cellCols * cellRows);
  for (let row = 0; row < cellRows * cell; row += 1) {
    for (let col = 0; col < cellCols * cell; col += 1) {
      means[Math.floor(row / cell) * cellCols + Math.floor(col / cell)]! += values[row * cols + col]! / (cell * cell);
    }
  }
  return means;
}

/** Mean |b - shifted a| over the overlap, for shifts around (cx, cy); `step` samples every step-th row and column. */
function searchShift(a: Float32Array, b: Float32Array, cols: number, rows: number, cx: number, cy: number, reachX: number, reachY: number, step: number) {
  let best = { dx: 0, dy: 0, error: Infinity };
  for (let dy = cy - reachY; dy <= cy + reachY; dy += 1) {
    for (let dx = cx - reachX; dx <= cx + reachX; dx += 1) {
      if (Math.abs(dx) >= cols / 2 || Math.abs(dy) >= rows / 2) continue;
      let error = 0;
      let count = 0;
      for (let row = Math.max(0, dy); row < Math.min(rows, rows + dy); row += step) {
        for (let col = Math.max(0, dx); col < Math.min(cols, cols + dx); col += step) {
          error += Math.abs(b[row * cols + col]! - a[(row - dy) * cols + (col - dx)]!);
          count += 1;
        }
      }
      // Ties go to the smaller move: a still picture stays unshifted.
      if (count > 0 && error / count < best.error - 1e-6) best = { dx, dy, error: error / count };
    }
  }
  return best;
}

/**
 * A flash over the reference: brighter on average; light only adds, so
 * (grain aside) no block is darker than in the reference; and a glow is
 * smooth, so the edges of the flashed picture are the reference's own.
 */
function isFlash(reference: FrameFeatures, current: FrameFeatures, noise: number): boolean {
  if (current.mean - reference.mean < FLASH_RISE) return false;
  const tolerance = Math.max(STILL_TOLERANCE, 3 * noise);
  let darker = 0;
  for (let i = 0; i < current.luma.length; i += 1) if (reference.luma[i]! - current.luma[i]! > tolerance) darker += 1;
  if (darker > FLASH_DARKER_SHARE * current.luma.length) return false;
  const { lumaCols: cols, lumaRows: rows } = current;
  const rangeReference = neighbourhoodRange(normalised(reference), cols, rows);
  const rangeCurrent = neighbourhoodRange(normalised(current), cols, rows);
  let edges = 0;
  let inherited = 0;
  for (let i = 0; i < current.luma.length; i += 1) {
    if (rangeCurrent.high[i]! - rangeCurrent.low[i]! <= STRUCTURE_RANGE) continue;
    edges += 1;
    if (rangeReference.high[i]! - rangeReference.low[i]! > STRUCTURE_RANGE) inherited += 1;
  }
  return edges === 0 || inherited >= FLASH_INHERITED_EDGES * edges;
}

interface Range {
  low: Float32Array;
  high: Float32Array;
}

/** Minimum and maximum over each block's 3x3 neighbourhood. */
function neighbourhoodRange(values: Float32Array, cols: number, rows: number): Range {
  const low = new Float32Array(values.length);
  const high = new Float32Array(values.length);
  for (let row = 0; row < rows; row += 1) {
    for (let col = 0; col < cols; col += 1) {
      let min = Infinity;
      let max = -Infinity;
      for (let r = Math.max(0, row - 1); r <= Math.min(rows - 1, row + 1); r += 1) {
        for (let c = Math.max(0, col - 1); c <= Math.min(cols - 1, col + 1); c += 1) {
          const value = values[r * cols + c]!;
          if (value < min) min = value;
          if (value > max) max = value;
        }
      }
      low[row * cols + col] = min;
      high[row * cols + col] = max;
    }
  }
  return { low, high };
}
