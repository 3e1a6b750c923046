/**
 * The drawing index over a whole film (issue 15, item 3): lookups must not
 * slow down as drawings pile up. Feeds the Deduplicator synthetic features of
 * the real shape (block means at BENCH_WIDTH x BENCH_HEIGHT) for N distinct
 * drawings, most of them dark scenes of nearly the same brightness as anime
 * has, each new drawing followed now and then by a grainy repeat of one seen
 * anywhere before. Reports time per frame over the first and the last tenth,
 * drawings examined per lookup (coarse checks) and fine comparisons, heap and
 * RSS, and whether every repeat found its drawing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Deduplicator } from '../src/stages/extract/deduplicator.ts';
import { FeatureFile } from '../src/stages/extract/feature-file.ts';
import { syntheticDrawing, grainyRepeat } from '../test/fixtures/synthetic-features.ts';
import { mulberry32 } from '../test/fixtures/anime-clip.ts';

const WIDTH = Number(process.env.BENCH_WIDTH ?? 256);
const HEIGHT = Number(process.env.BENCH_HEIGHT ?? 144);
const SIZES = (process.env.BENCH_DRAWINGS ?? '1000,10000,50000').split(',').map(Number);
/** One repeat of an earlier drawing after every REPEAT_EVERY new ones. */
const REPEAT_EVERY = 4;

interface Row {
  drawings: number;
  frames: number;
  firstUs: number;
  lastUs: number;
  examinedFirst: number;
  examinedLast: number;
  comparisons: number;
  heapMb: number;
  rssMb: number;
  missed: number;
}

function run(drawings: number): Row {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-index-bench-'));
  const file = new FeatureFile(path.join(dir, 'features.bin'));
  const dedup = new Deduplicator(file);
  const random = mulberry32(drawings);
  const total = drawings + Math.floor(drawings / REPEAT_EVERY);
  const tenth = Math.floor(total / 10);
  const seen: number[] = [];
  let frame = 0;
  let missed = 0;
  let firstNs = 0n;
  let lastNs = 0n;
  let examinedFirst = 0;
  let examinedLast = 0;
  let comparisons = 0;
  const feed = (features: ReturnType<typeof syntheticDrawing>, expected: number | null) => {
    const before = dedup.stats;
    const start = process.hrtime.bigint();
    const decision = dedup.decide(frame, features);
    const ns = process.hrtime.bigint() - start;
    const examined = dedup.stats.examined - before.examined;
    comparisons += dedup.stats.comparisons - before.comparisons;
    if (frame < tenth) { firstNs += ns; examinedFirst += examined; }
    if (frame >= total - tenth) { lastNs += ns; examinedLast += examined; }
    if (decision.duplicateOf !== expected) missed += 1;
    frame += 1;
  };
  for (let d = 0; d < drawings; d += 1) {
    seen.push(frame);
    feed(syntheticDrawing(d, WIDTH, HEIGHT), null);
    if ((d + 1) % REPEAT_EVERY === 0) {
      const which = Math.floor(random() * seen.length);
      feed(grainyRepeat(syntheticDrawing(which, WIDTH, HEIGHT), random), seen[which]!);
    }
  }
  const memory = process.memoryUsage();
  file.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    drawings, frames: frame,
    firstUs: Number(firstNs) / 1e3 / tenth, lastUs: Number(lastNs) / 1e3 / tenth,
    examinedFirst: examinedFirst / tenth, examinedLast: examinedLast / tenth,
    comparisons: comparisons / frame,
    heapMb: memory.heapUsed / 2 ** 20, rssMb: memory.rss / 2 ** 20, missed,
  };
}

console.log(`synthetic features at ${WIDTH}x${HEIGHT}, one repeat per ${REPEAT_EVERY} new drawings, mean luma mostly 28..36`);
const header = ['drawings', 'frames', 'us/frame 1st', 'us/frame last', 'last/1st', 'examined 1st', 'examined last', 'fine cmp/frame', 'heap MB', 'rss MB', 'missed'];
console.log(header.map((h) => h.padEnd(15)).join(''));
run(2000); // warm-up, so the first tenth of the first size is not the JIT compiling
for (const size of SIZES) {
  const r = run(size);
  const row = [r.drawings, r.frames, r.firstUs.toFixed(1), r.lastUs.toFixed(1), (r.lastUs / r.firstUs).toFixed(2),
    r.examinedFirst.toFixed(1), r.examinedLast.toFixed(1), r.comparisons.toFixed(2), r.heapMb.toFixed(0), r.rssMb.toFixed(0), r.missed];
  console.log(row.map((cell) => String(cell).padEnd(15)).join(''));
}
