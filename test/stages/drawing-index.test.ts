/**
 * The drawing index over a whole film: a repeat finds its drawing however
 * many drawings came between, a lookup's work stays near-constant as the film
 * goes on instead of growing with it (issue 15, item 3), and the index returns
 * exactly what a scan of every drawing within the coarse tolerance returns,
 * on distributions made to break it. Synthetic features of the real shape
 * (test/fixtures/synthetic-features.ts), most of them dark scenes of nearly
 * the same brightness.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { Deduplicator } from '../../src/stages/extract/deduplicator.ts';
import { COARSE_TOLERANCE, DrawingIndex, type IndexedDrawing } from '../../src/stages/extract/drawing-index.ts';
import { FeatureFile } from '../../src/stages/extract/feature-file.ts';
import { COARSE_COLS, COARSE_ROWS, coarseSignature } from '../../src/stages/extract/features.ts';
import { mulberry32, type Rng } from '../fixtures/anime-clip.ts';
import { grainyRepeat, syntheticDrawing } from '../fixtures/synthetic-features.ts';
import { tempDir } from '../helpers.ts';

const W = 128;
const H = 72;
const DRAWINGS = 50_000;
const REGIONS = COARSE_COLS * COARSE_ROWS;

test('a repeat of a drawing seen 50k drawings earlier is found, and lookups read a bounded share of the index', { timeout: 600_000 }, (t) => {
  const dir = tempDir(t);
  const file = FeatureFile.create(path.join(dir, 'features.bin'), W, H);
  t.after(() => file.close());
  const dedup = new Deduplicator(file);
  const random = mulberry32(15);
  const wrong: string[] = [];
  let frame = 0;
  const perLookup: Array<{ drawings: number; examined: number; comparisons: number }> = [];
  let window = dedup.stats;
  for (let d = 0; d < DRAWINGS; d += 1) {
    const decision = dedup.decide(frame, syntheticDrawing(d, W, H));
    if (decision.status !== 'kept') wrong.push(`drawing ${d} (frame ${frame}) taken for a repeat of ${decision.duplicateOf}`);
    frame += 1;
    if ((d + 1) % 10_000 === 0) {
      const now = dedup.stats;
      const lookups = now.lookups - window.lookups;
      perLookup.push({ drawings: d + 1, examined: (now.examined - window.examined) / lookups, comparisons: (now.comparisons - window.comparisons) / lookups });
      window = now;
    }
  }
  assert.deepEqual(wrong, [], 'distinct drawings stay distinct');
  t.diagnostic(`drawings read per lookup: ${perLookup.map((w) => `${w.examined.toFixed(1)} at ${w.drawings}`).join(', ')}`);
  // Drawing 0 and drawing 1 again, after 50k others, with grain; then a drawing in the middle.
  for (const d of [0, 1, 25_000, DRAWINGS - 1]) {
    const decision = dedup.decide(frame, grainyRepeat(syntheticDrawing(d, W, H), random));
    assert.equal(decision.duplicateOf, d, `drawing ${d} repeated at frame ${frame}`);
    frame += 1;
  }
  // Every lookup makes one fine comparison with the previous drawing, and one with each look-alike; these have none.
  for (const window of perLookup) assert.ok(window.comparisons <= 1.05, `${window.comparisons} fine comparisons per lookup at ${window.drawings} drawings`);
  // A list per mean luma made every lookup read about a fifth of the film's drawings here (9,475 of 50k); the index reads a few dozen.
  for (const window of perLookup) assert.ok(window.examined < 200, `${window.examined} drawings read per lookup at ${window.drawings} drawings`);
});

test('a lookup does about the same work with 50k drawings in the index as with 5k', { timeout: 600_000 }, (t) => {
  const index = new DrawingIndex<IndexedDrawing>();
  const random = mulberry32(3);
  const kept: IndexedDrawing[] = [];
  // Work per lookup (drawings read and tree nodes entered) over the 1000 frames after 5k and after 50k drawings.
  const work: Record<number, { examined: number; visited: number }> = {};
  let missed = 0;
  let start = { examined: 0, visited: 0 };
  for (let d = 0; d < DRAWINGS; d += 1) {
    const features = syntheticDrawing(d, W, H);
    const drawing = { frame: d, mean: features.mean, coarse: coarseSignature(features) };
    if (d === 5_000 || d === DRAWINGS - 1_000) start = { examined: index.examined, visited: index.visited };
    index.near(drawing.mean, drawing.coarse);
    index.add(drawing);
    kept.push(drawing);
    if (d % 4 === 3) {
      // A grainy repeat of any drawing so far: the index must return it.
      const which = kept[Math.floor(random() * kept.length)]!;
      const repeat = grainyRepeat(syntheticDrawing(which.frame, W, H), random);
      if (!index.near(repeat.mean, coarseSignature(repeat)).includes(which)) missed += 1;
    }
    if (d === 5_999 || d === DRAWINGS - 1) {
      const lookups = 1_000 * 1.25;
      work[d + 1] = { examined: (index.examined - start.examined) / lookups, visited: (index.visited - start.visited) / lookups };
    }
  }
  assert.equal(missed, 0, 'repeats not found');
  const early = work[6_000]!;
  const late = work[DRAWINGS]!;
  // The grid of cells this replaced read 0.7 drawings per lookup at 5k and 46 at 50k: its cells filled with the film.
  // A tree's lookups straddle a few cuts more per doubling of the drawings: about the fourth root of ten here.
  const ratio = (late.examined + late.visited) / (early.examined + early.visited);
  t.diagnostic(`per lookup: ${early.examined.toFixed(1)} drawings read, ${early.visited.toFixed(1)} nodes entered at 6k drawings; ${late.examined.toFixed(1)}, ${late.visited.toFixed(1)} at 50k (${ratio.toFixed(2)}x)`);
  assert.ok(ratio < 2.2, `work per lookup ${JSON.stringify(early)} at 6k drawings, ${JSON.stringify(late)} at 50k: ${ratio.toFixed(2)}x`);
  assert.ok(late.examined < 150, `${late.examined} drawings read per lookup at 50k`);
});

/** What a scan of every drawing returns: rounded means within one, every coarse region within the tolerance. */
function scan(stored: IndexedDrawing[], mean: number, coarse: Float32Array): number[] {
  return stored
    .filter((d) => Math.abs(Math.round(d.mean) - Math.round(mean)) <= 1 && d.coarse.every((v, i) => Math.abs(v - coarse[i]!) <= COARSE_TOLERANCE))
    .map((d) => d.frame)
    .sort((a, b) => a - b);
}

/**
 * Adds `drawings` one by one and, every `every` adds (the tree splits and
 * rebuilds as it grows), checks queries near stored drawings against a scan.
 * Returns how many queries found something, so a distribution cannot pass by
 * never matching.
 */
function checkAgainstScan(name: string, drawings: IndexedDrawing[], query: (target: IndexedDrawing, random: Rng) => { mean: number; coarse: Float32Array }, every = 500): number {
  const random = mulberry32(drawings.length);
  const index = new DrawingIndex<IndexedDrawing>();
  const stored: IndexedDrawing[] = [];
  let matched = 0;
  for (const drawing of drawings) {
    index.add(drawing);
    stored.push(drawing);
    if (stored.length % every !== 0 && stored.length !== drawings.length) continue;
    for (let q = 0; q < 40; q += 1) {
      const { mean, coarse } = query(stored[Math.floor(random() * stored.length)]!, random);
      const expected = scan(stored, mean, coarse);
      const found = index.near(mean, coarse).map((d) => d.frame).sort((a, b) => a - b);
      assert.deepEqual(found, expected, `${name}: query ${q} after ${stored.length} drawings`);
      if (expected.length > 0) matched += 1;
    }
  }
  assert.equal(index.size, drawings.length);
  return matched;
}

/** Without a message, a failed assert.ok spends minutes quoting the transpiled source. */
function atLeast(matched: number, least: number, name: string): void {
  assert.ok(matched >= least, `${name}: only ${matched} queries found anything`);
}

/** Moved by up to the full tolerance, some regions exactly to its edge either way. */
function nearby(target: IndexedDrawing, random: Rng): { mean: number; coarse: Float32Array } {
  const coarse = Float32Array.from(target.coarse, (v) => {
    const r = random();
    return r < 0.2 ? v + COARSE_TOLERANCE : r < 0.4 ? v - COARSE_TOLERANCE : v + (random() - 0.5) * 2 * COARSE_TOLERANCE;
  });
  return { mean: target.mean + (random() - 0.5) * 3, coarse };
}

test('the index returns exactly the drawings within the coarse tolerance, at the edges of its steps too', () => {
  const random = mulberry32(7);
  const base = Float32Array.from({ length: REGIONS }, () => 20 + random() * 20);
  // Look-alikes of one dark composition, a few levels apart: many fall on either side of the same cuts.
  const drawings = Array.from({ length: 3000 }, (_, frame) => ({
    frame,
    mean: 30 + (random() - 0.5) * 4,
    coarse: Float32Array.from(base, (v) => Math.max(0, v + (random() - 0.5) * 3 * COARSE_TOLERANCE)),
  }));
  atLeast(checkAgainstScan('look-alikes', drawings, nearby), 100, 'look-alikes');
});

test('adversarial distributions: one brightness, values on whole levels and tolerance edges, identical drawings, a slow fade, the ends of the range', () => {
  const random = mulberry32(11);
  // Every drawing the same mean, regions spread: the mean cuts nothing, every split is on a region.
  const oneBrightness = Array.from({ length: 3000 }, (_, frame) => ({
    frame, mean: 32.2, coarse: Float32Array.from({ length: REGIONS }, () => 24 + random() * 16),
  }));
  atLeast(checkAgainstScan('one brightness', oneBrightness, nearby), 100, 'one brightness');

  // Whole levels (where the tree floors values), and multiples of 16 (the old grid's steps), queried exactly a tolerance away.
  const onLevels = Array.from({ length: 3000 }, (_, frame) => ({
    frame, mean: 28 + Math.floor(random() * 8) + 0.5, coarse: Float32Array.from({ length: REGIONS }, () => (random() < 0.5 ? 16 * (1 + Math.floor(random() * 3)) : 20 + Math.floor(random() * 12))),
  }));
  const edge = (target: IndexedDrawing, r: Rng) => ({
    mean: target.mean + (r() < 0.5 ? 1 : -1), // rounds to a level one away, or (x.5 - 1 = y.5) exactly at the rounding edge
    coarse: Float32Array.from(target.coarse, (v) => { const x = r(); return x < 0.3 ? v + COARSE_TOLERANCE : x < 0.6 ? v - COARSE_TOLERANCE : x < 0.61 ? v + COARSE_TOLERANCE + 2 ** -10 : v; }),
  });
  atLeast(checkAgainstScan('whole levels and step edges', onLevels, edge), 50, 'whole levels');
  // Just past the tolerance in one region: nothing.
  const past = (target: IndexedDrawing) => ({ mean: target.mean, coarse: Float32Array.from(target.coarse, (v, i) => (i === 5 ? v + COARSE_TOLERANCE + 2 ** -10 : v)) });
  checkAgainstScan('just past the tolerance', onLevels.slice(0, 1000), past);

  // Identical drawings cannot be cut apart: they share a leaf, and each lookup returns all of them.
  const identical = Array.from({ length: 2000 }, (_, frame) => ({ frame, mean: 30, coarse: new Float32Array(REGIONS).fill(31.5) }));
  const index = new DrawingIndex<IndexedDrawing>();
  for (const drawing of identical) index.add(drawing);
  assert.equal(index.near(30.4, new Float32Array(REGIONS).fill(35.5)).length, 2000);
  assert.equal(index.near(30.4, new Float32Array(REGIONS).fill(35.5 + 2 ** -10)).length, 0);
  checkAgainstScan('identical, then spread', [...identical, ...oneBrightness.map((d) => ({ ...d, frame: d.frame + 2000 }))], nearby);

  // A slow fade: every value drifts up a little with each drawing, so new drawings keep landing on the same side of every cut.
  const fade = Array.from({ length: 6000 }, (_, frame) => ({
    frame, mean: 10 + frame / 40, coarse: Float32Array.from({ length: REGIONS }, (_, i) => 5 + frame / 30 + i + random() * 2),
  }));
  atLeast(checkAgainstScan('a slow fade', fade, nearby), 100, 'a slow fade');
  const faded = new DrawingIndex<IndexedDrawing>();
  for (const drawing of fade) faded.add(drawing);
  const before = faded.visited;
  for (const drawing of fade.slice(-100)) faded.near(drawing.mean, drawing.coarse);
  // Without rebuilding, the branches on the fade's leading edge form a chain as long as the fade (about 1,300 here).
  assert.ok((faded.visited - before) / 100 < 100, `${(faded.visited - before) / 100} tree nodes entered per lookup at the end of a fade`);

  // The ends of the luma range, and past them (clamped in the tree, compared exactly).
  const ends = Array.from({ length: 2000 }, (_, frame) => ({
    // In 64ths of a level, so a query a tolerance away is exactly that far in float32.
    frame, mean: random() < 0.5 ? 1 : 254, coarse: Float32Array.from({ length: REGIONS }, () => (random() < 0.5 ? -2 : 252) + Math.floor(random() * 6 * 64) / 64),
  }));
  atLeast(checkAgainstScan('the ends of the range', ends, nearby), 20, 'the ends of the range');
});
