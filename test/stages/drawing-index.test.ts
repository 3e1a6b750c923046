/**
 * The drawing index over a whole film: a repeat finds its drawing however
 * many drawings came between, and a lookup reads only the drawings that look
 * alike, not a list that grows with the film (issue 15, item 3). Synthetic
 * features of the real shape (test/fixtures/synthetic-features.ts), most of
 * them dark scenes of nearly the same brightness.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { Deduplicator } from '../../src/stages/extract/deduplicator.ts';
import { COARSE_TOLERANCE, DrawingIndex, type IndexedDrawing } from '../../src/stages/extract/drawing-index.ts';
import { FeatureFile } from '../../src/stages/extract/feature-file.ts';
import { COARSE_COLS, COARSE_ROWS } from '../../src/stages/extract/features.ts';
import { mulberry32 } from '../fixtures/anime-clip.ts';
import { grainyRepeat, syntheticDrawing } from '../fixtures/synthetic-features.ts';
import { tempDir } from '../helpers.ts';

const W = 128;
const H = 72;
const DRAWINGS = 50_000;

test('a repeat of a drawing seen 50k drawings earlier is found, and lookups read a bounded share of the index', { timeout: 600_000 }, (t) => {
  const dir = tempDir(t);
  const file = new FeatureFile(path.join(dir, 'features.bin'));
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
  // Drawing 0 and drawing 1 again, after 50k others, with grain; then a drawing in the middle.
  for (const d of [0, 1, 25_000, DRAWINGS - 1]) {
    const decision = dedup.decide(frame, grainyRepeat(syntheticDrawing(d, W, H), random));
    assert.equal(decision.duplicateOf, d, `drawing ${d} repeated at frame ${frame}`);
    frame += 1;
  }
  // Every lookup makes one fine comparison with the previous drawing, and one with each look-alike; these have none.
  for (const window of perLookup) assert.ok(window.comparisons <= 1.05, `${window.comparisons} fine comparisons per lookup at ${window.drawings} drawings`);
  // A list per mean luma made every lookup read about a fifth of the film's drawings here (9,475 of 50k); the index reads a few.
  for (const window of perLookup) assert.ok(window.examined < window.drawings / 200, `${window.examined} drawings read per lookup at ${window.drawings} drawings`);
});

test('the index returns exactly the drawings within the coarse tolerance, at the edges of its steps too', () => {
  const random = mulberry32(7);
  const regions = COARSE_COLS * COARSE_ROWS;
  const index = new DrawingIndex<IndexedDrawing>();
  const stored: IndexedDrawing[] = [];
  const base = Float32Array.from({ length: regions }, () => 20 + random() * 20);
  for (let frame = 0; frame < 3000; frame += 1) {
    // Look-alikes of one dark composition, a few levels apart: many fall in neighbouring steps.
    const coarse = Float32Array.from(base, (v) => Math.max(0, v + (random() - 0.5) * 3 * COARSE_TOLERANCE));
    const drawing = { frame, mean: 30 + (random() - 0.5) * 4, coarse };
    stored.push(drawing);
    index.add(drawing);
  }
  const close = (a: IndexedDrawing, mean: number, coarse: Float32Array) =>
    Math.abs(Math.round(a.mean) - Math.round(mean)) <= 1 && a.coarse.every((v, i) => Math.abs(v - coarse[i]!) <= COARSE_TOLERANCE);
  for (let q = 0; q < 300; q += 1) {
    const target = stored[Math.floor(random() * stored.length)]!;
    // Moved by up to the full tolerance, some regions exactly to its edge.
    const coarse = Float32Array.from(target.coarse, (v) => {
      const r = random();
      return r < 0.2 ? v + COARSE_TOLERANCE : r < 0.4 ? Math.max(0, v - COARSE_TOLERANCE) : v + (random() - 0.5) * 2 * COARSE_TOLERANCE;
    });
    const mean = target.mean + (random() - 0.5) * 1.6;
    const expected = stored.filter((d) => close(d, mean, coarse)).map((d) => d.frame).sort((a, b) => a - b);
    const found = index.near(mean, coarse).map((d) => d.frame).sort((a, b) => a - b);
    assert.deepEqual(found, expected, `query ${q}`);
  }
});
