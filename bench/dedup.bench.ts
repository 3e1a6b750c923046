/**
 * Duplicate drawings on a generated anime-like 1080p clip with grain (known
 * drawing per frame), in one run, three ways:
 *  (a) ffmpeg -vf mpdecimate -vsync vfr, writing PNGs (neighbour-only dedup),
 *  (b) full PNG extraction, then exact-hash dedup of the files,
 *  (c) celforge process (policy reference).
 * Unique-drawing recall = drawings with at least one kept frame / all drawings;
 * redundancy = kept frames / unique drawings; wrong = duplicates pointing at a
 * frame of another drawing. Wall time and bytes as ratios to (b).
 * Targets (issue 3): recall 100%, redundancy <= 1.05, bytes <= 35% and wall
 * time <= 50% of (b).
 * Then the scenes celforge found, against the true cuts, on that clip and on
 * test/fixtures/cut-shots.ts at the same size (redraws over one background, a
 * fast pan, shake, a flash, a fade; cuts between look-alike compositions).
 * Target (issue 15): cut precision >= 0.9, recall 1.0.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeAnimeClip, type AnimeClip } from '../test/fixtures/anime-clip.ts';
import { makeCutShots } from '../test/fixtures/cut-shots.ts';
import { binaries } from '../test/fixtures/clips.ts';
import { FRAMES_ONLY, writeConfig } from '../test/helpers.ts';

const WIDTH = Number(process.env.BENCH_WIDTH ?? 1920);
const HEIGHT = Number(process.env.BENCH_HEIGHT ?? 1080);
const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'celforge.js');
const FPS = 24000 / 1001;

interface MapRecord {
  frame: number;
  status: string;
  duplicateOf: number | null;
  scene: number;
}

interface Result {
  method: string;
  /** Frames where celforge started a scene, when it ran. */
  sceneStarts?: number[];
  kept: number[];
  wrong: number;
  seconds: number;
  bytes: number;
}

function timed<T>(fn: () => T): { value: T; seconds: number } {
  const start = process.hrtime.bigint();
  const value = fn();
  return { value, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

function pngFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.png'))
    .map((entry) => path.join(entry.parentPath, entry.name));
}

function bytesUnder(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(path.join(entry.parentPath, entry.name)).size, 0);
}

function mpdecimate(clip: AnimeClip, work: string): Result {
  const out = path.join(work, 'mpdecimate');
  mkdirSync(out);
  const run = timed(() => spawnSync(binaries.ffmpeg, [
    '-nostdin', '-i', clip.file, '-map', '0:v:0', '-vf', 'mpdecimate,showinfo', '-vsync', 'vfr', path.join(out, '%06d.png'),
  ], { encoding: 'utf8', maxBuffer: 1 << 28 }));
  const times = [...run.value.stderr.matchAll(/\bpts_time:\s*([\d.]+)/g)].map((m) => Number(m[1]));
  const start = times[0] ?? 0;
  const kept = times.map((t) => Math.round((t - start) * FPS));
  if (kept.length !== pngFiles(out).length) throw new Error(`showinfo listed ${kept.length} frames, ${pngFiles(out).length} written`);
  return { method: '(a) ffmpeg mpdecimate -vsync vfr', kept, wrong: 0, seconds: run.seconds, bytes: bytesUnder(out) };
}

function fullPngThenHash(clip: AnimeClip, work: string): Result {
  const out = path.join(work, 'full');
  mkdirSync(out);
  const run = timed(() => {
    execFileSync(binaries.ffmpeg, ['-v', 'error', '-nostdin', '-i', clip.file, '-map', '0:v:0', '-vsync', 'passthrough', '-start_number', '0', path.join(out, '%06d.png')]);
    const seen = new Set<string>();
    const kept: number[] = [];
    for (const file of pngFiles(out).sort()) {
      const hash = createHash('sha256').update(readFileSync(file)).digest('hex');
      if (!seen.has(hash)) {
        seen.add(hash);
        kept.push(Number(path.basename(file, '.png')));
      }
    }
    return kept;
  });
  return { method: '(b) full PNG + exact-hash dedup', kept: run.value, wrong: 0, seconds: run.seconds, bytes: bytesUnder(out) };
}

/** `celforge process` on one video in its own library: the frame map, the seconds and the bytes of frames written. */
function processVideo(file: string, frameCount: number, work: string) {
  mkdirSync(work, { recursive: true });
  const library = path.join(work, 'library');
  // Extraction and dedup only: the faces and tags stages are measured by faces-tags.bench.ts.
  const configFile = writeConfig(work, { library: './library', ...FRAMES_ONLY });
  const run = timed(() => spawnSync(process.execPath, [cli, '--config', configFile, 'process', file], { encoding: 'utf8', cwd: work }));
  if (run.value.status !== 0) throw new Error(run.value.stderr);
  const mapFile = readdirSync(library, { recursive: true }).map(String).find((name) => name.endsWith('frame-map.jsonl'))!;
  const records = readFileSync(path.join(library, mapFile), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as MapRecord);
  if (records.length !== frameCount) throw new Error(`frame map has ${records.length} of ${frameCount} frames`);
  const written = bytesUnder(library) - bytesUnder(path.join(library, 'logs')) - bytesUnder(path.join(library, '.celforge'));
  return { records, seconds: run.seconds, bytes: written };
}

function sceneStarts(records: MapRecord[]): number[] {
  return records.filter((r, i) => i === 0 || r.scene !== records[i - 1]!.scene).map((r) => r.frame);
}

function celforge(clip: AnimeClip, work: string): Result {
  const { records, seconds, bytes } = processVideo(clip.file, clip.frameCount, path.join(work, 'celforge'));
  const wrong = records.filter((r) => r.status === 'duplicate' && clip.drawings[r.duplicateOf!] !== clip.drawings[r.frame]).length;
  const kept = records.filter((r) => r.status === 'kept').map((r) => r.frame);
  return { method: '(c) celforge process', kept, wrong, seconds, bytes, sceneStarts: sceneStarts(records) };
}

/** Precision and recall of the cuts found (the first frame of the video is no cut). */
function cutScores(found: number[], truth: number[]): string {
  const cuts = found.filter((frame) => frame > 0);
  const real = new Set(truth.filter((frame) => frame > 0));
  const right = cuts.filter((frame) => real.has(frame)).length;
  return `${cuts.length} found, ${right} of ${real.size} real: precision ${(right / Math.max(1, cuts.length)).toFixed(2)}, recall ${(right / Math.max(1, real.size)).toFixed(2)}`;
}

const generated = timed(() => makeAnimeClip({ width: WIDTH, height: HEIGHT, scenario: 'full' }));
const clip = await generated.value;
const work = mkdtempSync(path.join(os.tmpdir(), 'celforge-bench-dedup-'));
try {
  const baseline = fullPngThenHash(clip, work);
  const results = [mpdecimate(clip, work), baseline, celforge(clip, work)];
  console.log(`clip: ${WIDTH}x${HEIGHT}, ${clip.frameCount} frames, ${clip.uniqueDrawings} drawings, ${clip.shots.length} shots, grain`);
  const header = ['method', 'kept', 'recall', 'redundancy', 'wrong', 'wall s', 'wall/(b)', 'MiB', 'bytes/(b)'];
  console.log(header.map((h, i) => h.padEnd(i === 0 ? 34 : 11)).join(''));
  for (const result of results) {
    const drawingsKept = new Set(result.kept.map((frame) => clip.drawings[frame]));
    const row = [
      result.method,
      result.kept.length,
      `${((100 * drawingsKept.size) / clip.uniqueDrawings).toFixed(1)}%`,
      (result.kept.length / clip.uniqueDrawings).toFixed(3),
      result.wrong,
      result.seconds.toFixed(1),
      (result.seconds / baseline.seconds).toFixed(2),
      (result.bytes / 2 ** 20).toFixed(1),
      (result.bytes / baseline.bytes).toFixed(3),
    ];
    console.log(row.map((cell, i) => String(cell).padEnd(i === 0 ? 34 : 11)).join(''));
  }
  console.log(`\ncuts, anime clip (${clip.shots.length - 1} cuts): ${cutScores(results[2]!.sceneStarts!, clip.shots)}`);
  const shots = await makeCutShots({ width: WIDTH, height: HEIGHT });
  const hard = processVideo(shots.file, shots.frameCount, path.join(work, 'cut-shots'));
  console.log(`cuts, cut-shots clip (${shots.frameCount} frames, ${shots.kinds.join(', ')}): ${cutScores(sceneStarts(hard.records), shots.shots)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
