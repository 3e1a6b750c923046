/**
 * Kept drawings, found by what a repeat must share with them: a rounded mean
 * luma within one level and every coarse region within COARSE_TOLERANCE.
 *
 * A film has tens of thousands of drawings, many of them dark scenes of the
 * same brightness. A fixed grid of cells filled up as the film went on (46
 * drawings read per lookup at 50k drawings and growing with the film), so the
 * index is a tree that splits wherever drawings crowd: each branch cuts one
 * value (the mean or a region) between the drawings beneath it, and a lookup
 * enters only the sides its own value could reach within the tolerance. A
 * leaf holds a few drawings however many the film has, and a lookup's work
 * grows only as fast as the tolerance windows straddle cuts: 1.9 times from
 * 6k to 50k drawings (test/stages/drawing-index.test.ts), where the grid's
 * grew 8 times.
 *
 * The tree works on fixed-point levels: each drawing's values clamped to
 * 0..255 and floored to a 256th of a level, two bytes each, kept side by side
 * in its leaf, so a lookup reads a leaf in one sweep instead of a cache miss
 * per drawing, and the index holds no copy of the exact values. Flooring
 * moves a value by less than a step, so every window is widened by one step
 * and no drawing that passes the coarse test is lost; the few within the
 * widened window are checked on their exact values.
 */
import { COARSE_COLS, COARSE_ROWS } from './features.ts';

/** Coarse region means of the same drawing differ by grain averaged over ~50k pixels: a fraction of a level. */
export const COARSE_TOLERANCE = 4;

const REGIONS = COARSE_COLS * COARSE_ROWS;
/** Value 0 is the rounded mean, values 1..32 the coarse regions. */
const VALUES = 1 + REGIONS;
/** Steps of a level in the tree's fixed-point values: flooring widens each window by a step, a 256th of a level, not a whole level (which made lookups read a third more). */
const STEP = 256;
/** How far a repeat's value may lie from the drawing's, in steps: the rounded means within one level. */
const TOLERANCE = Float64Array.from({ length: VALUES }, (_, value) => (value === 0 ? 1 : COARSE_TOLERANCE) * STEP);
/** Drawings in a leaf before it is split, and slots in one block of a leaf: 2 to 16 took about the same time per lookup at 50k drawings, smaller leaves reading fewer drawings and entering more nodes. */
const LEAF = 8;
const NONE = -1;

export interface IndexedDrawing {
  /** Frame number of its first appearance, the tie-break between equally close drawings. */
  frame: number;
  mean: number;
  /** `coarseSignature` of its features. */
  coarse: Float32Array;
}

export class DrawingIndex<D extends IndexedDrawing> {
  readonly #drawings: D[] = [];
  readonly #tree = new Tree();
  readonly #levels = new Uint16Array(VALUES);
  /** The query's values clamped to the levels' range, in steps, not floored. */
  readonly #query = new Float64Array(VALUES);
  readonly #stack: number[] = [];
  /** Drawings read by lookups so far. */
  examined = 0;
  /** Tree nodes entered by lookups so far. */
  visited = 0;

  get size(): number {
    return this.#drawings.length;
  }

  add(drawing: D): void {
    levelsOf(drawing.mean, drawing.coarse, this.#levels, 0);
    this.#drawings.push(drawing);
    this.#tree.insert(this.#drawings.length - 1, this.#levels);
  }

  /** Every drawing whose rounded mean is within one of `mean`'s and whose coarse regions are all within the tolerance. */
  near(mean: number, coarse: Float32Array): D[] {
    const query = this.#query;
    query[0] = clamp(Math.round(mean)) * STEP;
    for (let i = 0; i < REGIONS; i += 1) query[i + 1] = clamp(coarse[i]!) * STEP;
    const found: D[] = [];
    if (this.#drawings.length === 0) return found;
    const tree = this.#tree;
    const stack = this.#stack;
    stack.push(0);
    while (stack.length > 0) {
      const node = stack.pop()!;
      this.visited += 1;
      const value = tree.value[node]!;
      if (value !== NONE) {
        // A drawing within the tolerance has its level within (query - tolerance - 1, query + tolerance + 1);
        // levels below the cut go left, the others right.
        const cut = tree.cut[node]!;
        if (query[value]! - TOLERANCE[value]! < cut) stack.push(tree.low[node]!);
        if (query[value]! + TOLERANCE[value]! + 1 > cut) stack.push(tree.high[node]!);
        continue;
      }
      const count = tree.count[node]!;
      let block = tree.low[node]!;
      for (let i = 0; i < count; i += 1) {
        if (i > 0 && i % LEAF === 0) block = tree.next[block]!;
        const slot = block * LEAF + (i % LEAF);
        this.examined += 1;
        if (!closeLevels(tree.levels, slot * VALUES, query)) continue;
        const drawing = this.#drawings[tree.slots[slot]!]!;
        if (close(drawing, mean, coarse)) found.push(drawing);
      }
    }
    return found;
  }
}

/**
 * The tree as columns indexed by node. A branch has `value` (which value it
 * cuts), `cut` (a level), and its children in `low` (levels below the cut)
 * and `high`; a leaf has `value` NONE and its drawings in a chain of
 * LEAF-slot blocks from `low` to `high`, each slot a drawing's position and
 * its VALUES levels. `built` is a node's count when it was last built: a
 * subtree is built again only after it has doubled since, so drawings that
 * keep landing on one side (values drifting through a fade or a pan) cannot
 * grow a long chain of branches, and levels that cannot be cut (equal
 * drawings) are not retried at every add.
 */
class Tree {
  value = new Int8Array(64);
  cut = new Uint16Array(64);
  low = new Int32Array(64);
  high = new Int32Array(64);
  count = new Int32Array(64);
  built = new Int32Array(64);
  nodes = 0;
  readonly freeNodes: number[] = [];
  slots = new Int32Array(64 * LEAF);
  levels = new Uint16Array(64 * LEAF * VALUES);
  next = new Int32Array(64);
  blocks = 0;
  readonly freeBlocks: number[] = [];
  readonly #path: number[] = [];
  /** Kept for splitting leaves and building small subtrees; a larger one gets its own for the time it is built. */
  readonly #scratch = scratch(SCRATCH);

  constructor() {
    this.#leaf(this.#node());
  }

  insert(position: number, levels: Uint16Array): void {
    const path = this.#path;
    path.length = 0;
    let node = 0;
    while (this.value[node] !== NONE) {
      path.push(node);
      this.count[node] += 1;
      node = levels[this.value[node]!]! < this.cut[node]! ? this.low[node]! : this.high[node]!;
    }
    this.#append(node, position, levels, 0);
    if (this.count[node]! > LEAF && this.count[node]! >= 2 * this.built[node]!) {
      this.#rebuild(node);
      return;
    }
    for (const branch of path) {
      const count = this.count[branch]!;
      const heavier = Math.max(this.count[this.low[branch]!]!, this.count[this.high[branch]!]!);
      if (count >= 2 * this.built[branch]! && 4 * heavier > 3 * count) {
        this.#rebuild(branch);
        return;
      }
    }
  }

  /** Builds the subtree at `node` again from its drawings, its nodes and blocks freed first. */
  #rebuild(node: number): void {
    const n = this.count[node]!;
    const space = n <= SCRATCH ? this.#scratch : scratch(n);
    const { positions, rows, order } = space;
    let filled = 0;
    const stack = this.#path;
    stack.length = 0;
    stack.push(node);
    while (stack.length > 0) {
      const at = stack.pop()!;
      if (this.value[at] !== NONE) {
        stack.push(this.low[at]!, this.high[at]!);
      } else {
        let block = this.low[at]!;
        for (let i = 0; i < this.count[at]!; i += 1) {
          if (i > 0 && i % LEAF === 0) block = this.next[block]!;
          const slot = block * LEAF + (i % LEAF);
          positions[filled] = this.slots[slot]!;
          for (let v = 0; v < VALUES; v += 1) rows[filled * VALUES + v] = this.levels[slot * VALUES + v]!;
          filled += 1;
        }
        for (let b = this.low[at]!; b !== NONE; b = this.next[b]!) this.freeBlocks.push(b);
      }
      if (at !== node) this.freeNodes.push(at);
    }
    for (let row = 0; row < n; row += 1) order[row] = row;
    this.#build(node, 0, n, space);
  }

  /** Makes `node` a balanced subtree over the drawings that order[from..to] picks out of `space` (reordering them in place by the cuts). */
  #build(node: number, from: number, to: number, space: Scratch): void {
    const { order, rows, positions } = space;
    const split = to - from > LEAF ? chooseCut(order, from, to, rows) : null;
    if (!split) {
      this.#leaf(node);
      for (let i = from; i < to; i += 1) this.#append(node, positions[order[i]!]!, rows, order[i]! * VALUES);
      this.built[node] = to - from;
      return;
    }
    const middle = partition(order, from, to, rows, split.value, split.cut);
    const low = this.#node();
    const high = this.#node();
    this.value[node] = split.value;
    this.cut[node] = split.cut;
    this.low[node] = low;
    this.high[node] = high;
    this.count[node] = this.built[node] = to - from;
    this.#build(low, from, middle, space);
    this.#build(high, middle, to, space);
  }

  #append(leaf: number, position: number, rows: Uint16Array, offset: number): void {
    const count = this.count[leaf]!;
    if (count > 0 && count % LEAF === 0) {
      const block = this.#block();
      this.next[this.high[leaf]!] = block;
      this.high[leaf] = block;
    }
    const slot = this.high[leaf]! * LEAF + (count % LEAF);
    this.slots[slot] = position;
    for (let i = 0; i < VALUES; i += 1) this.levels[slot * VALUES + i] = rows[offset + i]!;
    this.count[leaf] = count + 1;
  }

  #node(): number {
    let node = this.freeNodes.pop();
    if (node === undefined) {
      node = this.nodes++;
      if (node >= this.value.length) {
        const size = Math.ceil(this.value.length * GROWTH);
        this.value = grow(this.value, size);
        this.cut = grow(this.cut, size);
        this.low = grow(this.low, size);
        this.high = grow(this.high, size);
        this.count = grow(this.count, size);
        this.built = grow(this.built, size);
      }
    }
    return node;
  }

  /** Makes `node` an empty leaf with one block. */
  #leaf(node: number): void {
    this.value[node] = NONE;
    this.count[node] = 0;
    this.built[node] = 0;
    this.low[node] = this.high[node] = this.#block();
  }

  #block(): number {
    let block = this.freeBlocks.pop();
    if (block === undefined) {
      block = this.blocks++;
      if (block >= this.next.length) {
        this.next = grow(this.next, Math.ceil(this.next.length * GROWTH));
        this.slots = grow(this.slots, this.next.length * LEAF);
        this.levels = grow(this.levels, this.next.length * LEAF * VALUES);
      }
    }
    this.next[block] = NONE;
    return block;
  }
}

/** A subtree's drawings while it is built: positions and levels as collected from its leaves, and the order the cuts sort them into. */
interface Scratch {
  positions: Int32Array;
  rows: Uint16Array;
  order: Int32Array;
}

/** Drawings a tree's own scratch space holds (about 75 kB). */
const SCRATCH = 1024;

function scratch(drawings: number): Scratch {
  return { positions: new Int32Array(drawings), rows: new Uint16Array(drawings * VALUES), order: new Int32Array(drawings) };
}

/** Values of the widest spread whose cuts are compared. */
const CANDIDATES = 3;
/** How a subtree's work grows with its drawings: about N^0.3 (1.9 times the work per lookup from 6k to 50k drawings in test/stages/drawing-index.test.ts). */
const SIDE_COST = 0.3;
/** Cuts tried along a large subtree being built; a leaf splitting tries all. */
const CUTS_TRIED = 32;

/**
 * Which value to cut and where, leaving between a quarter and three quarters
 * of the drawings on each side. A lookup for one of these drawings (or a
 * repeat of it) enters its own side, and the other side too when its value
 * lies within the tolerance of the cut. The values spread widest against
 * their tolerance are the candidates; of their cuts, the one chosen costs the
 * least on average, taking a side's cost as its drawings plus the straddlers
 * entering it, times its size to the power SIDE_COST. Null when no candidate
 * can be cut so (most of the drawings have equal levels): they stay in one
 * leaf until it has doubled.
 */
function chooseCut(order: Int32Array, from: number, to: number, rows: Uint16Array): { value: number; cut: number } | null {
  const n = to - from;
  // The CANDIDATES widest values, widest first.
  const candidates = [NONE, NONE, NONE];
  const widths = [0, 0, 0];
  for (let value = 0; value < VALUES; value += 1) {
    let low = Infinity;
    let high = -Infinity;
    for (let i = from; i < to; i += 1) {
      const level = rows[order[i]! * VALUES + value]!;
      if (level < low) low = level;
      if (level > high) high = level;
    }
    const width = (high - low) / TOLERANCE[value]!;
    let at = CANDIDATES;
    for (; at > 0 && width > widths[at - 1]!; at -= 1) {
      if (at < CANDIDATES) {
        candidates[at] = candidates[at - 1]!;
        widths[at] = widths[at - 1]!;
      }
    }
    if (at < CANDIDATES) {
      candidates[at] = value;
      widths[at] = width;
    }
  }
  if (column.length < n) column = new Uint16Array(2 * n);
  const sorted = column;
  let best: { value: number; cut: number; cost: number } | null = null;
  for (const value of candidates) {
    if (value === NONE) break;
    for (let i = 0; i < n; i += 1) sorted[i] = rows[order[from + i]! * VALUES + value]!;
    sortLevels(sorted, n);
    const cut = bestCut(sorted, n, TOLERANCE[value]!);
    if (cut && (!best || cut.cost < best.cost)) best = { value, cut: cut.cut, cost: cut.cost };
  }
  return best;
}

/** chooseCut's scratch space: one value of the drawings being cut. */
let column = new Uint16Array(256);

/** The cheapest cut of `sorted` (see chooseCut): the levels below it go left. */
function bestCut(sorted: Uint16Array, n: number, tolerance: number): { cut: number; cost: number } | null {
  const first = Math.max(1, Math.ceil(n / 4));
  const last = Math.min(n - 1, Math.floor((3 * n) / 4));
  const step = Math.max(1, Math.floor((last - first) / CUTS_TRIED));
  let best: { cut: number; cost: number } | null = null;
  // Two fronts that only move forward with the cut: the first level at or past cut - tolerance, and at or past cut + tolerance.
  let from = 0;
  let to = 0;
  for (let at = first; at <= last; at += step) {
    // Equal levels go to the same side, so a cut sits where a run of equal levels starts.
    let below = at;
    while (below <= last && sorted[below - 1] === sorted[below]) below += 1;
    if (below > last) continue;
    const cut = sorted[below]!;
    while (sorted[from]! < cut - tolerance) from += 1;
    while (to < n && sorted[to]! < cut + tolerance) to += 1;
    const above = n - below;
    // Drawings in [cut - tolerance, cut) also enter the right side, those in [cut, cut + tolerance) the left.
    const cost = to * sidePower(below) + (n - from) * sidePower(above);
    if (!best || cost < best.cost) best = { cut, cost };
  }
  return best;
}

/** Insertion sort for a leaf's few levels, where a typed array's sort costs a microsecond; that sort past them. */
function sortLevels(levels: Uint16Array, n: number): void {
  if (n > 64) {
    levels.subarray(0, n).sort();
    return;
  }
  for (let i = 1; i < n; i += 1) {
    const level = levels[i]!;
    let j = i - 1;
    for (; j >= 0 && levels[j]! > level; j -= 1) levels[j + 1] = levels[j]!;
    levels[j + 1] = level;
  }
}

/** n ** SIDE_COST, from a table for the sides of a splitting leaf. */
function sidePower(n: number): number {
  return n < SIDE_POWERS.length ? SIDE_POWERS[n]! : n ** SIDE_COST;
}
const SIDE_POWERS = Float64Array.from({ length: 64 }, (_, n) => n ** SIDE_COST);

/** Orders order[from..to] with the rows whose `value` is below `cut` first; returns where the others start. */
function partition(order: Int32Array, from: number, to: number, rows: Uint16Array, value: number, cut: number): number {
  let below = from;
  for (let i = from; i < to; i += 1) {
    const row = order[i]!;
    if (rows[row * VALUES + value]! < cut) {
      order[i] = order[below]!;
      order[below++] = row;
    }
  }
  return below;
}

/** Luma levels are 0..255; clamping moves two values no further apart, so levels keep every pair within the tolerance within it plus one. */
function clamp(value: number): number {
  return Math.min(255, Math.max(0, value));
}

/** A drawing's levels in steps: its rounded mean, then its coarse regions, each clamped and floored. */
function levelsOf(mean: number, coarse: Float32Array, into: Uint16Array, offset: number): void {
  into[offset] = clamp(Math.round(mean)) * STEP;
  for (let i = 0; i < REGIONS; i += 1) into[offset + 1 + i] = Math.floor(clamp(coarse[i]!) * STEP);
}

/** Whether a drawing's levels could be within the tolerance of the query: each within less than the tolerance plus one. */
function closeLevels(levels: Uint16Array, offset: number, query: Float64Array): boolean {
  for (let i = 0; i < VALUES; i += 1) if (Math.abs(levels[offset + i]! - query[i]!) >= TOLERANCE[i]! + 1) return false;
  return true;
}

/** The coarse test itself, on the drawing's exact values. */
function close(drawing: IndexedDrawing, mean: number, coarse: Float32Array): boolean {
  if (Math.abs(Math.round(drawing.mean) - Math.round(mean)) > 1) return false;
  for (let i = 0; i < REGIONS; i += 1) if (Math.abs(drawing.coarse[i]! - coarse[i]!) > COARSE_TOLERANCE) return false;
  return true;
}

/** Capacity added when a column fills: half again, so at most a third of it stands empty (doubling left up to half). */
const GROWTH = 1.5;

function grow<T extends Int32Array | Int8Array | Uint16Array>(array: T, size: number): T {
  const grown = new (array.constructor as new (length: number) => T)(size);
  grown.set(array);
  return grown;
}
