/**
 * The drawing index over a whole film (issue 15, item 3): lookups must not
 * slow down as drawings pile up. Synthetic features of the real shape (block
 * means at BENCH_WIDTH x BENCH_HEIGHT) for N distinct drawings, most of them
 * dark scenes of nearly the same brightness as anime has, each new drawing
 * followed now and then by a grainy repeat of one seen anywhere before.
 *
 * 1. The index alone, the grid of cells it replaced (commit BEFORE, read with
 *    git into a temp file) and the tree, on the same drawings in the same
 *    process: time per frame (a lookup, then an add when the frame is a new
 *    drawing) over the first and the last tenth, in wall time of the calls
 *    and in CPU time of the whole tenth (the wall time counts other processes
 *    on a busy machine), drawings read and tree nodes entered per lookup,
 *    memory per drawing held by an index built afresh (JS heap and typed
 *    arrays' buffers after a full GC, the drawings themselves excluded), and
 *    repeats not found.
 * 2. The whole Deduplicator with the tree: time per frame over the first and
 *    last tenth, fine comparisons per frame, memory it holds at the end (JS
 *    heap and buffers after a full GC, less what was held before it started)
 *    and RSS.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Deduplicator } from '../src/stages/extract/deduplicator.ts';
import { DrawingIndex, type IndexedDrawing } from '../src/stages/extract/drawing-index.ts';
import { FeatureFile } from '../src/stages/extract/feature-file.ts';
import { coarseSignature } from '../src/stages/extract/features.ts';
import { syntheticDrawing, grainyRepeat } from '../test/fixtures/synthetic-features.ts';
import { mulberry32 } from '../test/fixtures/anime-clip.ts';

const WIDTH = Number(process.env.BENCH_WIDTH ?? 256);
const HEIGHT = Number(process.env.BENCH_HEIGHT ?? 144);
const SIZES = (process.env.BENCH_DRAWINGS ?? '1000,10000,50000').split(',').map(Number);
/** One repeat of an earlier drawing after every REPEAT_EVERY new ones. */
const REPEAT_EVERY = 4;
/** Runs of each measurement; the least time of each column is reported (others' processes only ever add time). */
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
/** The last commit with the grid of cells (fad3596..e6a1742). */
const BEFORE = '3e69c74';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

interface Index {
  add(drawing: IndexedDrawing): void;
  near(mean: number, coarse: Float32Array): IndexedDrawing[];
  examined: number;
  visited?: number;
}

/** One frame of the film: a new drawing (`repeatOf` null) or a grainy repeat of the drawing at that position. */
interface Frame {
  drawing: IndexedDrawing;
  repeatOf: number | null;
}

function film(drawings: number): { frames: Frame[]; drawings: IndexedDrawing[] } {
  const random = mulberry32(drawings);
  const kept: IndexedDrawing[] = [];
  const frames: Frame[] = [];
  for (let d = 0; d < drawings; d += 1) {
    const features = syntheticDrawing(d, WIDTH, HEIGHT);
    const drawing = { frame: frames.length, mean: features.mean, coarse: coarseSignature(features) };
    kept.push(drawing);
    frames.push({ drawing, repeatOf: null });
    if ((d + 1) % REPEAT_EVERY === 0) {
      const which = Math.floor(random() * kept.length);
      const repeat = grainyRepeat(syntheticDrawing(which, WIDTH, HEIGHT), random);
      frames.push({ drawing: { frame: frames.length, mean: repeat.mean, coarse: coarseSignature(repeat) }, repeatOf: which });
    }
  }
  return { frames, drawings: kept };
}

interface IndexRow {
  usFirst: number;
  usLast: number;
  cpuFirst: number;
  cpuLast: number;
  examinedFirst: number;
  examinedLast: number;
  visitedFirst: number;
  visitedLast: number;
  bytesPerDrawing: number;
  missed: number;
}

function runIndex(make: () => Index, { frames, drawings }: ReturnType<typeof film>): IndexRow {
  const tenth = Math.floor(frames.length / 10);
  const index = make();
  let firstNs = 0n;
  let lastNs = 0n;
  const counts = { examinedFirst: 0, examinedLast: 0, visitedFirst: 0, visitedLast: 0 };
  let missed = 0;
  // CPU time over each tenth as well as wall time of the calls: other processes on the machine inflate the wall time.
  const cpu = { first: 0, last: 0, start: process.cpuUsage() };
  frames.forEach(({ drawing, repeatOf }, at) => {
    if (at === 0 || at === frames.length - tenth) cpu.start = process.cpuUsage();
    const examined = index.examined;
    const visited = index.visited ?? 0;
    const start = process.hrtime.bigint();
    const found = index.near(drawing.mean, drawing.coarse);
    if (repeatOf === null) index.add(drawing);
    const ns = process.hrtime.bigint() - start;
    if (repeatOf !== null && !found.includes(drawings[repeatOf]!)) missed += 1;
    if (at < tenth) {
      firstNs += ns;
      counts.examinedFirst += index.examined - examined;
      counts.visitedFirst += (index.visited ?? 0) - visited;
    }
    if (at >= frames.length - tenth) {
      lastNs += ns;
      counts.examinedLast += index.examined - examined;
      counts.visitedLast += (index.visited ?? 0) - visited;
    }
    if (at === tenth - 1 || at === frames.length - 1) {
      const used = process.cpuUsage(cpu.start);
      cpu[at === tenth - 1 ? 'first' : 'last'] = used.user + used.system;
    }
  });
  // Heap held by an index of these drawings, built afresh: the drawings are already alive.
  gc();
  gc();
  const before = held();
  const fresh = make();
  for (const drawing of drawings) fresh.add(drawing);
  gc();
  gc();
  const bytesPerDrawing = (held() - before) / drawings.length;
  fresh.near(0, drawings[0]!.coarse); // keeps `fresh` alive through the second GC
  return {
    usFirst: Number(firstNs) / 1e3 / tenth, usLast: Number(lastNs) / 1e3 / tenth,
    cpuFirst: cpu.first / tenth, cpuLast: cpu.last / tenth,
    examinedFirst: counts.examinedFirst / tenth, examinedLast: counts.examinedLast / tenth,
    visitedFirst: counts.visitedFirst / tenth, visitedLast: counts.visitedLast / tenth,
    bytesPerDrawing, missed,
  };
}

/** The JS heap and the typed arrays' buffers, which live outside it. */
function held(): number {
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

/** The grid of cells from commit BEFORE, or null outside a git checkout. */
async function gridIndex(): Promise<(new () => Index) | null> {
  let source: string;
  try {
    source = execFileSync('git', ['show', `${BEFORE}:src/stages/extract/drawing-index.ts`], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return null;
  }
  const features = pathToFileURL(path.join(root, 'src/stages/extract/features.ts')).href;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-index-before-'));
  const file = path.join(dir, 'drawing-index.before.ts');
  writeFileSync(file, source.replace(`from './features.ts'`, `from ${JSON.stringify(features)}`));
  try {
    return ((await import(pathToFileURL(file).href)) as { DrawingIndex: new () => Index }).DrawingIndex;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface DedupRow {
  usFirst: number;
  usLast: number;
  comparisons: number;
  /** Held by the Deduplicator at the end (its drawings, index, caches), the bench's own film excluded. */
  heldMb: number;
  rssMb: number;
  missed: number;
}

function runDeduplicator({ frames }: ReturnType<typeof film>): DedupRow {
  gc();
  const before = held();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-index-bench-'));
  const file = FeatureFile.create(path.join(dir, 'features.bin'), WIDTH, HEIGHT);
  const dedup = new Deduplicator(file);
  const random = mulberry32(frames.length);
  const tenth = Math.floor(frames.length / 10);
  const firstFrameOf: number[] = [];
  let firstNs = 0n;
  let lastNs = 0n;
  let missed = 0;
  frames.forEach(({ repeatOf }, frame) => {
    const features = repeatOf === null ? syntheticDrawing(firstFrameOf.length, WIDTH, HEIGHT) : grainyRepeat(syntheticDrawing(repeatOf, WIDTH, HEIGHT), random);
    if (repeatOf === null) firstFrameOf.push(frame);
    const start = process.hrtime.bigint();
    const decision = dedup.decide(frame, features);
    const ns = process.hrtime.bigint() - start;
    if (decision.duplicateOf !== (repeatOf === null ? null : firstFrameOf[repeatOf]!)) missed += 1;
    if (frame < tenth) firstNs += ns;
    if (frame >= frames.length - tenth) lastNs += ns;
  });
  gc();
  const heldMb = (held() - before) / 2 ** 20;
  const rssMb = process.memoryUsage().rss / 2 ** 20;
  const comparisons = dedup.stats.comparisons / frames.length;
  file.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    usFirst: Number(firstNs) / 1e3 / tenth, usLast: Number(lastNs) / 1e3 / tenth,
    comparisons, heldMb, rssMb, missed,
  };
}

/** The runs' least time per column; counts are the same in every run, memory is the last run's. */
function fastest<R extends { usFirst: number; usLast: number; cpuFirst?: number; cpuLast?: number }>(runs: R[]): R {
  const least = (key: keyof R) => Math.min(...runs.map((run) => run[key] as number));
  const last = runs.at(-1)!;
  return { ...last, usFirst: least('usFirst'), usLast: least('usLast'), ...(last.cpuFirst === undefined ? {} : { cpuFirst: least('cpuFirst'), cpuLast: least('cpuLast') }) };
}

const print = (cells: Array<string | number>) => console.log(cells.map((cell) => String(cell).padEnd(13)).join(''));
const grid = await gridIndex();
const tree = DrawingIndex as unknown as new () => Index;
console.log(`synthetic features at ${WIDTH}x${HEIGHT}, one repeat per ${REPEAT_EVERY} new drawings, mean luma mostly 28..36; least time of ${RUNS} runs`);
console.log(`\nthe index alone (a lookup per frame, an add per new drawing); grid = commit ${BEFORE}${grid ? '' : ' (not found: not a git checkout)'}`);
print(['index', 'drawings', 'us/frame 1st', 'us/frame last', 'last/1st', 'cpu us 1st', 'cpu us last', 'last/1st', 'read 1st', 'read last', 'nodes 1st', 'nodes last', 'B/drawing', 'missed']);
runIndex(() => new DrawingIndex(), film(2000)); // warm-up, so the first tenth of the first size is not the JIT compiling
if (grid) runIndex(() => new grid(), film(2000));
const films = new Map(SIZES.map((size) => [size, film(size)]));
for (const size of SIZES) {
  for (const [name, make] of [['grid', grid], ['tree', tree]] as const) {
    if (!make) continue;
    const r = fastest(Array.from({ length: RUNS }, () => runIndex(() => new make(), films.get(size)!)));
    print([name, size, r.usFirst.toFixed(2), r.usLast.toFixed(2), (r.usLast / r.usFirst).toFixed(2),
      r.cpuFirst.toFixed(2), r.cpuLast.toFixed(2), (r.cpuLast / r.cpuFirst).toFixed(2), r.examinedFirst.toFixed(1), r.examinedLast.toFixed(1),
      name === 'tree' ? r.visitedFirst.toFixed(1) : '-', name === 'tree' ? r.visitedLast.toFixed(1) : '-', r.bytesPerDrawing.toFixed(0), r.missed]);
  }
}

console.log('\nthe Deduplicator with the tree');
print(['drawings', 'frames', 'us/frame 1st', 'us/frame last', 'last/1st', 'fine cmp/frame', 'held MB', 'rss MB', 'missed']);
for (const size of SIZES) {
  const r = fastest(Array.from({ length: RUNS }, () => runDeduplicator(films.get(size)!)));
  print([size, films.get(size)!.frames.length, r.usFirst.toFixed(1), r.usLast.toFixed(1), (r.usLast / r.usFirst).toFixed(2), r.comparisons.toFixed(2), r.heldMb.toFixed(1), r.rssMb.toFixed(0), r.missed]);
}
