/**
 * A film's length of frames (issue 15, item 3): `celforge process` on a long
 * clip (bench/long-clip-video.ts: BENCH_FRAMES frames, default 100000, at
 * BENCH_WIDTH x BENCH_HEIGHT, default 320x180, an .m2ts with B-frames, a 2 s
 * GOP and timestamps from 600 s), for each checkout in the same run: this
 * one, or the one BENCH_NOW names ("now"), and, when BENCH_BEFORE names
 * another checkout (a git worktree with node_modules), that one ("before").
 *
 * Each checkout's bin/celforge.js is run as a program, as a user's shell
 * runs it, so the node flags of its shebang apply (src/cli/node-heap-flag.ts).
 *
 * Per checkout, each in a fresh library:
 *  1. an uninterrupted run: frames/s over the first and the last tenth of
 *     the frame map, and the node process's RSS (VmRSS) at each tenth;
 *  2. a run SIGKILLed (its whole process group, ffmpeg included) once 90% of
 *     the frames are recorded, then the same command again: seconds from the
 *     restart to the first new frame-map line, and to the end; the frame map
 *     must then hold every frame once, in order, with the very decisions of
 *     the uninterrupted run;
 *  3. `celforge restore` of the last duplicate in that library, timed.
 * BENCH_REFERENCE=0 skips run 1, BENCH_REFERENCE=now runs it for "now" only
 * (without it the tenths come from run 2 before the kill, and nothing is
 * compared); BENCH_ONLY=before or now runs one checkout
 * (on two busy cores a checkout takes the better part of an hour). Each
 * checkout's raw figures are saved as celforge-bench-long-<label>.json in the
 * temp folder; BENCH_TABLE_FROM=<file,...> prints their table again.
 * Targets: last-tenth frames/s within 20% of the first tenth, memory flat,
 * first new frame within 30 s of the restart, restore under 5 s.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeLongClip, type LongClip } from './long-clip-video.ts';
import { frameMapUnder, watchRun, type Watch } from './process-watch.ts';
import { projectRoot, writeConfig } from '../test/helpers.ts';

const FRAMES = Number(process.env.BENCH_FRAMES ?? 100_000);
const WIDTH = Number(process.env.BENCH_WIDTH ?? 320);
const HEIGHT = Number(process.env.BENCH_HEIGHT ?? 180);
/** Checkouts that get the uninterrupted run: all by default, none with 0, or one label. */
const REFERENCE = process.env.BENCH_REFERENCE ?? 'all';
const withReference = (label: string) => REFERENCE === 'all' || REFERENCE === label;
const KILL_AT = 0.9;

interface MapRecord {
  frame: number;
  status: string;
  duplicateOf: number | null;
  scene: number;
}

interface Checkout {
  label: string;
  root: string;
  /** Commit, and whether its src/ differs from it. */
  version: string;
}

interface CheckoutResult {
  reference: Watch | undefined;
  killedRun: Watch;
  restart: Watch;
  countAtKill: number;
  inOrder: boolean;
  mismatches: number | undefined;
  firstMismatch: string | undefined;
  wrongLinks: number;
  keptDrawings: number;
  kept: number;
  restoreFrame: number;
  restoreSeconds: number;
}

function versionOf(root: string): string {
  const git = (...args: string[]) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8' }).trim();
  try {
    const dirty = git('status', '--porcelain', '--', 'src', 'bin').length > 0;
    return `${git('log', '-1', '--format=%h %s').slice(0, 70)}${dirty ? ' (+ uncommitted src changes)' : ''}`;
  } catch {
    return 'not a git checkout';
  }
}

/** `celforge process` of one checkout on the clip, in the library of `work`, followed from outside. */
function processVideo(checkout: Checkout, work: string, clip: LongClip, options: { log: string; killAt?: number; startCount?: number }): Promise<Watch> {
  const args = [path.join(checkout.root, 'bin', 'celforge.js'), '--config', path.join(work, 'daemon.config.ts'), 'process', clip.file];
  return watchRun({ args, work, library: path.join(work, 'library'), total: clip.frameCount, ...options });
}

function readMap(library: string): MapRecord[] {
  return readFileSync(frameMapUnder(library)!, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as MapRecord);
}

function freshLibrary(label: string): string {
  const work = mkdtempSync(path.join(os.tmpdir(), `celforge-bench-long-${label}-`));
  writeConfig(work, { library: './library' });
  return work;
}

async function benchCheckout(checkout: Checkout, clip: LongClip): Promise<CheckoutResult> {
  let reference: Watch | undefined;
  let referenceMap: MapRecord[] | undefined;
  if (withReference(checkout.label)) {
    const work = freshLibrary(checkout.label);
    try {
      console.error(`${checkout.label}: uninterrupted run in ${work}`);
      reference = await processVideo(checkout, work, clip, { log: 'reference.log' });
      referenceMap = readMap(path.join(work, 'library'));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }

  const work = freshLibrary(checkout.label);
  try {
    console.error(`${checkout.label}: run to be killed at ${KILL_AT * 100}% in ${work}`);
    const killedRun = await processVideo(checkout, work, clip, { killAt: Math.ceil(KILL_AT * clip.frameCount), log: 'killed.log' });
    const countAtKill = killedRun.finalCount;
    console.error(`${checkout.label}: killed with ${countAtKill} frames recorded; restarting`);
    const restart = await processVideo(checkout, work, clip, { startCount: countAtKill, log: 'restart.log' });
    const library = path.join(work, 'library');
    const records = readMap(library);
    const inOrder = records.length === clip.frameCount && records.every((record, i) => record.frame === i);
    let mismatches: number | undefined;
    let firstMismatch: string | undefined;
    if (referenceMap) {
      mismatches = 0;
      for (let i = 0; i < Math.max(records.length, referenceMap.length); i++) {
        const a = referenceMap[i];
        const b = records[i];
        if (a && b && a.status === b.status && a.duplicateOf === b.duplicateOf && a.scene === b.scene) continue;
        mismatches += 1;
        firstMismatch ??= `frame ${i}: uninterrupted ${JSON.stringify(a && { status: a.status, duplicateOf: a.duplicateOf, scene: a.scene })}, after the restart ${JSON.stringify(b && { status: b.status, duplicateOf: b.duplicateOf, scene: b.scene })}`;
      }
    }
    const wrongLinks = records.filter((r) => r.status === 'duplicate' && clip.drawings[r.duplicateOf!] !== clip.drawings[r.frame]).length;
    const keptFrames = records.filter((r) => r.status === 'kept');
    const keptDrawings = new Set(keptFrames.map((r) => clip.drawings[r.frame])).size;

    let restoreFrame = records.length - 1;
    while (restoreFrame > 0 && records[restoreFrame]!.status !== 'duplicate') restoreFrame -= 1;
    const started = performance.now();
    const restored = spawnSync(path.join(checkout.root, 'bin', 'celforge.js'), ['--config', path.join(work, 'daemon.config.ts'), 'restore', clip.file, String(restoreFrame)], {
      cwd: work, encoding: 'utf8',
    });
    const restoreSeconds = (performance.now() - started) / 1000;
    if (restored.status !== 0 || !/restored to/.test(restored.stdout)) {
      throw new Error(`${checkout.label}: celforge restore ${restoreFrame} exited ${restored.status}: ${restored.stderr.slice(-2000)}`);
    }
    return { reference, killedRun, restart, countAtKill, inOrder, mismatches, firstMismatch, wrongLinks, keptDrawings, kept: keptFrames.length, restoreFrame, restoreSeconds };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Frames/s between two tenths of a run. */
function rate(watch: Watch, from: number, to: number, frames: number): number {
  const a = watch.tenths[from];
  const b = watch.tenths[to];
  if (!a || !b || b.seconds <= a.seconds) return NaN;
  return ((to - from) * frames) / 10 / (b.seconds - a.seconds);
}

function figures(result: CheckoutResult, clip: LongClip): Map<string, string> {
  const n = clip.frameCount;
  // Without the uninterrupted run, the tenths come from the run that was killed at 90%.
  const steady = result.reference ?? result.killedRun;
  const lastTo = result.reference ? 10 : 9;
  const first = rate(steady, 0, 1, n);
  const last = rate(steady, lastTo - 1, lastTo, n);
  const mib = (bytes: number | undefined) => (bytes === undefined || Number.isNaN(bytes) ? 'n/a' : `${(bytes / 2 ** 20).toFixed(0)} MiB`);
  const rssFirst = steady.tenths[1]?.rss;
  const rssLast = steady.tenths[lastTo]?.rss;
  const rows = new Map<string, string>();
  rows.set('frames/s, first tenth', first.toFixed(0));
  if (result.reference) {
    rows.set('frames/s, last tenth', last.toFixed(0));
  } else {
    const end = result.restart.tenths[10];
    const resumed = end && result.restart.firstNewFrame !== null
      ? (n - result.countAtKill) / (end.seconds - result.restart.firstNewFrame) : NaN;
    rows.set('frames/s, last tenth', `${resumed.toFixed(0)} after the restart; tenth 9: ${last.toFixed(0)}`);
  }
  rows.set('frames/s, every tenth', Array.from({ length: lastTo }, (_, i) => rate(steady, i, i + 1, n)).map((r) => (Number.isNaN(r) ? '-' : r.toFixed(0))).join(' '));
  rows.set('last tenth / first tenth', `${(last / first).toFixed(2)}${result.reference ? '' : ' (tenth 9)'}`);
  rows.set('RSS of node at tenth 1 / last tenth', `${mib(rssFirst)} / ${mib(rssLast)}`);
  rows.set('RSS last / first tenth', rssFirst && rssLast ? (rssLast / rssFirst).toFixed(2) : 'n/a');
  rows.set('RSS, every tenth (MiB)', steady.tenths.slice(1).map((t) => (t ? (t.rss / 2 ** 20).toFixed(0) : '-')).join(' '));
  rows.set('RSS of node, peak after the restart', mib(result.restart.peakRss));
  rows.set('uninterrupted run, wall', result.reference ? `${result.reference.seconds.toFixed(0)} s` : 'not run');
  rows.set('frames recorded at the SIGKILL', String(result.countAtKill));
  rows.set('restart -> first new frame', result.restart.firstNewFrame === null ? 'never' : `${result.restart.firstNewFrame.toFixed(1)} s`);
  rows.set('restart -> finished', `${result.restart.seconds.toFixed(0)} s`);
  rows.set('frame map after the restart: every frame once, in order', result.inOrder ? 'yes' : 'NO');
  rows.set('decisions differing from the uninterrupted run', result.mismatches === undefined ? 'not compared' : String(result.mismatches));
  rows.set('kept frames / drawings kept of all / wrong duplicate links', `${result.kept} / ${result.keptDrawings} of ${clip.uniqueDrawings} / ${result.wrongLinks}`);
  rows.set('restore of the last duplicate (celforge restore, wall)', `${result.restoreSeconds.toFixed(2)} s (frame ${result.restoreFrame})`);
  return rows;
}

const TARGETS: Record<string, string> = {
  'last tenth / first tenth': '>= 0.80',
  'RSS last / first tenth': 'flat (~1.0)',
  'restart -> first new frame': '<= 30 s',
  'frame map after the restart: every frame once, in order': 'yes',
  'decisions differing from the uninterrupted run': '0',
  'restore of the last duplicate (celforge restore, wall)': '< 5 s',
};

const only = process.env.BENCH_ONLY;
const checkouts: Checkout[] = [];
if (process.env.BENCH_BEFORE) checkouts.push({ label: 'before', root: path.resolve(process.env.BENCH_BEFORE), version: versionOf(path.resolve(process.env.BENCH_BEFORE)) });
// BENCH_NOW: a checkout of a commit, away from edits in progress in this one.
const now = path.resolve(process.env.BENCH_NOW ?? projectRoot);
checkouts.push({ label: 'now', root: now, version: versionOf(now) });
if (only && !checkouts.some((checkout) => checkout.label === only)) {
  throw new Error(`BENCH_ONLY=${only}: expected 'now', or 'before' with BENCH_BEFORE set to a checkout`);
}

const generation = performance.now();
const clip = await makeLongClip({ frames: FRAMES, width: WIDTH, height: HEIGHT, grain: 6, seed: 1 });
console.log(
  `clip: ${clip.frameCount} frames (ffprobe -count_frames: ${clip.countedFrames}), ${WIDTH}x${HEIGHT} .m2ts, x264 B-frames, 2 s GOP, timestamps from 600 s, `
  + `${clip.uniqueDrawings} drawings, ${clip.shots.length} shots; ready in ${((performance.now() - generation) / 1000).toFixed(0)} s (cached in ${path.dirname(clip.file)})`,
);
const results: { checkout: Checkout; rows: Map<string, string>; result: CheckoutResult }[] = [];
// BENCH_TABLE_FROM: the raw results saved by earlier runs (comma-separated), printed again without running.
const saved = process.env.BENCH_TABLE_FROM?.split(',').map((file) => JSON.parse(readFileSync(file, 'utf8')) as { checkout: Checkout; result: CheckoutResult });
for (const { checkout, result } of saved ?? []) results.push({ checkout, rows: figures(result, clip), result });
for (const checkout of saved ? [] : checkouts.filter((c) => !only || c.label === only)) {
  const result = await benchCheckout(checkout, clip);
  // The raw watch data, for a second look without another hour of running.
  writeFileSync(path.join(os.tmpdir(), `celforge-bench-long-${checkout.label}.json`), `${JSON.stringify({ checkout, result }, null, 1)}\n`);
  results.push({ checkout, rows: figures(result, clip), result });
}
for (const { checkout } of results) console.log(`${checkout.label}: ${checkout.root} at ${checkout.version}`);
console.log(`\n| figure | ${results.map((r) => r.checkout.label).join(' | ')} | target |`);
console.log(`|---|${results.map(() => '---|').join('')}---|`);
for (const key of new Set(results.flatMap((r) => [...r.rows.keys()]))) {
  console.log(`| ${key} | ${results.map((r) => r.rows.get(key) ?? '').join(' | ')} | ${TARGETS[key] ?? ''} |`);
}
for (const { checkout, result } of results) {
  if (result.firstMismatch) console.log(`${checkout.label}: first decision that differs: ${result.firstMismatch}`);
}
