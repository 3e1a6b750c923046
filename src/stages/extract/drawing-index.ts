/**
 * Kept drawings, found by what a repeat must share with them: a mean luma
 * within a level and every coarse region within COARSE_TOLERANCE. A film has
 * tens of thousands of drawings, many of them dark scenes of the same
 * brightness, so a list per mean luma grows with the film and every lookup
 * would read all of it. Each drawing is filed instead under its rounded mean
 * and a few of its coarse regions quantised into steps of REGION_STEP; a
 * lookup opens only the cells its own values could reach within the
 * tolerance (one or two per region), so it reads the drawings that look
 * alike, however many others the film has, and never misses one that passes
 * the coarse test.
 */
import { COARSE_COLS, COARSE_ROWS } from './features.ts';

/** Coarse region means of the same drawing differ by grain averaged over ~50k pixels: a fraction of a level. */
export const COARSE_TOLERANCE = 4;

/** Regions of the 8x4 coarse grid used in the key: spread over the frame, background and middle. */
const KEY_REGIONS = [1 * COARSE_COLS + 1, 1 * COARSE_COLS + 3, 1 * COARSE_COLS + 5, 1 * COARSE_COLS + 7,
  2 * COARSE_COLS + 0, 2 * COARSE_COLS + 2, 2 * COARSE_COLS + 4, 2 * COARSE_COLS + 6];
/**
 * Twice the width of the tolerance window (8 levels): a value's window crosses a step
 * boundary half the time, so a lookup opens 1.5 cells per region on average.
 */
const REGION_STEP = 4 * COARSE_TOLERANCE;
const STEPS = Math.ceil(256 / REGION_STEP);

export interface IndexedDrawing {
  /** Frame number of its first appearance, the tie-break between equally close drawings. */
  frame: number;
  mean: number;
  /** `coarseSignature` of its features. */
  coarse: Float32Array;
}

export class DrawingIndex<D extends IndexedDrawing> {
  /**
   * By rounded mean and the first key region, then by the other seven: keys under 2^30 stay small
   * integers in V8, where larger ones are boxed doubles that are slow to hash.
   */
  readonly #cells = new Map<number, Map<number, number[]>>();
  /** Drawings in the order added; cells hold their positions here. */
  readonly #drawings: D[] = [];
  /** Their coarse signatures side by side, read without chasing one array per drawing. */
  #coarse = new Float32Array(1024 * COARSE_COLS * COARSE_ROWS);
  readonly #low = new Int32Array(KEY_REGIONS.length);
  readonly #high = new Int32Array(KEY_REGIONS.length);
  #size = 0;
  /** Drawings read by lookups so far. */
  examined = 0;

  static {
    if (KEY_REGIONS.some((region) => region >= COARSE_COLS * COARSE_ROWS)) throw new Error('KEY_REGIONS outside the coarse grid');
    if (STEPS ** (KEY_REGIONS.length - 1) >= 2 ** 30) throw new Error('inner key past the small-integer range');
  }

  get size(): number {
    return this.#size;
  }

  add(drawing: D): void {
    const outer = Math.round(drawing.mean) * STEPS + step(drawing.coarse[KEY_REGIONS[0]!]!);
    let key = 0;
    for (let i = 1; i < KEY_REGIONS.length; i += 1) key = key * STEPS + step(drawing.coarse[KEY_REGIONS[i]!]!);
    let inner = this.#cells.get(outer);
    if (!inner) this.#cells.set(outer, inner = new Map());
    const position = this.#drawings.length;
    const cell = inner.get(key);
    if (cell) cell.push(position);
    else inner.set(key, [position]);
    this.#drawings.push(drawing);
    const regions = COARSE_COLS * COARSE_ROWS;
    if ((position + 1) * regions > this.#coarse.length) {
      const grown = new Float32Array(this.#coarse.length * 2);
      grown.set(this.#coarse);
      this.#coarse = grown;
    }
    this.#coarse.set(drawing.coarse.subarray(0, regions), position * regions);
    this.#size += 1;
  }

  /** Every drawing whose rounded mean is within one of `mean`'s and whose coarse regions are all within the tolerance. */
  near(mean: number, coarse: Float32Array): D[] {
    for (let i = 0; i < KEY_REGIONS.length; i += 1) {
      this.#low[i] = step(coarse[KEY_REGIONS[i]!]! - COARSE_TOLERANCE);
      this.#high[i] = step(coarse[KEY_REGIONS[i]!]! + COARSE_TOLERANCE);
    }
    const found: D[] = [];
    const rounded = Math.round(mean);
    for (let m = rounded - 1; m <= rounded + 1; m += 1) {
      for (let s = this.#low[0]!; s <= this.#high[0]!; s += 1) {
        const inner = this.#cells.get(m * STEPS + s);
        if (inner) this.#walk(inner, 1, 0, coarse, found);
      }
    }
    return found;
  }

  #walk(inner: Map<number, number[]>, depth: number, key: number, coarse: Float32Array, found: D[]): void {
    if (depth === KEY_REGIONS.length) {
      const cell = inner.get(key);
      if (!cell) return;
      const regions = COARSE_COLS * COARSE_ROWS;
      for (const position of cell) {
        this.examined += 1;
        if (closeCoarse(this.#coarse, position * regions, coarse)) found.push(this.#drawings[position]!);
      }
      return;
    }
    for (let s = this.#low[depth]!; s <= this.#high[depth]!; s += 1) this.#walk(inner, depth + 1, key * STEPS + s, coarse, found);
  }
}

/** Monotonic in the value, so a value within the tolerance lands between the steps of the window's two ends. */
function step(value: number): number {
  return Math.min(STEPS - 1, Math.max(0, Math.floor(value / REGION_STEP)));
}

function closeCoarse(all: Float32Array, offset: number, b: Float32Array): boolean {
  for (let i = 0; i < b.length; i += 1) if (Math.abs(all[offset + i]! - b[i]!) > COARSE_TOLERANCE) return false;
  return true;
}
