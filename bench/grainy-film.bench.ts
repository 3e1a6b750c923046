/**
 * Dedup, cuts and speed on a grainy 1080p clip made independently of the
 * anime clip (test/fixtures/grainy-film.ts), all in one run:
 *  (b) full PNG extraction: ffmpeg -i clip -vsync passthrough %06d.png,
 *  decoding alone, two ways: ffmpeg -f null (the decoder by itself) and
 *      ffmpeg rgb24 rawvideo piped into Node and discarded (what celforge must
 *      do at minimum: the "x decode" target is against this one),
 *  (c) celforge process, frames only (faces and tags off).
 * Then where celforge's time goes: the same loop as the extract stage, in
 * process and timed by step (the main thread's waits, wall time), and what
 * each part costs alone on the clip's frames, in CPU time.
 * Targets (issue 15): recall 1.00 with no wrong link, redundancy <= 1.05, cut
 * precision >= 0.9 and recall 1.0, wall <= 0.4x and bytes <= 0.35x of (b),
 * <= 3x decoding alone.
 * BENCH_WIDTH/BENCH_HEIGHT change the size; BENCH_THREADS the feature threads
 * of the in-process run.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { FrameBuffers } from '../src/adapters/frame-buffers.ts';
import { MediaRepository } from '../src/adapters/media.ts';
import { writeThenRename } from '../src/adapters/durable-file.ts';
import { PNG_OPTIONS, writePreview } from '../src/adapters/image-writer.ts';
import { videoLayout } from '../src/daemon/library-paths.ts';
import { Deduplicator } from '../src/stages/extract/deduplicator.ts';
import { FeatureFile } from '../src/stages/extract/feature-file.ts';
import { defaultFeatureThreads, framesHeld, framesWithFeatures } from '../src/stages/extract/feature-pipeline.ts';
import { computeFeatures, type FrameFeatures } from '../src/stages/extract/features.ts';
import { FrameOutput, WRITES_IN_FLIGHT } from '../src/stages/extract/frame-output.ts';
import { binaries } from '../test/fixtures/clips.ts';
import { followThreads, threadKind } from './thread-cpu.ts';
import { makeGrainyFilm, type GrainyFilm } from '../test/fixtures/grainy-film.ts';
import { FRAMES_ONLY, writeConfig } from '../test/helpers.ts';

const WIDTH = Number(process.env.BENCH_WIDTH ?? 1920);
const HEIGHT = Number(process.env.BENCH_HEIGHT ?? 1080);
const THREADS = process.env.BENCH_THREADS === undefined ? defaultFeatureThreads() : Number(process.env.BENCH_THREADS);
const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'celforge.js');

interface MapRecord {
  frame: number;
  status: string;
  duplicateOf: number | null;
  scene: number;
}

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

function timed<T>(fn: () => T): { value: T; seconds: number } {
  const start = process.hrtime.bigint();
  const value = fn();
  return { value, seconds: seconds(start) };
}

function bytesUnder(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(path.join(entry.parentPath, entry.name)).size, 0);
}

function fullPng(film: GrainyFilm, work: string) {
  const out = path.join(work, 'full');
  mkdirSync(out);
  const run = timed(() => execFileSync(binaries.ffmpeg, ['-v', 'error', '-nostdin', '-i', film.file, '-map', '0:v:0', '-vsync', 'passthrough', path.join(out, '%06d.png')]));
  const files = readdirSync(out).length;
  if (files !== film.frameCount) throw new Error(`full extraction wrote ${files} of ${film.frameCount} frames`);
  const bytes = bytesUnder(out);
  rmSync(out, { recursive: true });
  return { seconds: run.seconds, bytes };
}

function decodeToNull(film: GrainyFilm): number {
  return timed(() => execFileSync(binaries.ffmpeg, ['-v', 'error', '-nostdin', '-i', film.file, '-map', '0:v:0', '-f', 'null', '-'])).seconds;
}

/** rgb24 through a pipe into this process, counted and dropped. */
async function decodeToNode(film: GrainyFilm): Promise<number> {
  const start = process.hrtime.bigint();
  const child = spawn(binaries.ffmpeg, ['-v', 'error', '-nostdin', '-i', film.file, '-map', '0:v:0', '-vsync', 'passthrough', '-pix_fmt', 'rgb24', '-f', 'rawvideo', '-'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let bytes = 0;
  for await (const chunk of child.stdout) bytes += (chunk as Buffer).length;
  const expected = film.frameCount * film.width * film.height * 3;
  if (bytes !== expected) throw new Error(`the rgb24 pipe gave ${bytes} bytes, expected ${expected}`);
  return seconds(start);
}

/** (c), with the CPU time of each of its threads and of ffmpeg's, as the kernel counts them. */
async function celforgeProcess(film: GrainyFilm, work: string) {
  const dir = path.join(work, 'celforge');
  mkdirSync(dir);
  const library = path.join(dir, 'library');
  const configFile = writeConfig(dir, { library: './library', ...FRAMES_ONLY });
  const start = process.hrtime.bigint();
  const child = spawn(cli, ['--config', configFile, 'process', film.file], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const threads = followThreads(child.pid!);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
  const status = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const run = { seconds: seconds(start) };
  const cpu = new Map<string, number>();
  for (const thread of threads.stop()) cpu.set(threadKind(thread), (cpu.get(threadKind(thread)) ?? 0) + thread.seconds);
  if (status !== 0) throw new Error(stderr);
  const mapFile = readdirSync(library, { recursive: true }).map(String).find((name) => name.endsWith('frame-map.jsonl'))!;
  const records = readFileSync(path.join(library, mapFile), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as MapRecord);
  if (records.length !== film.frameCount) throw new Error(`frame map has ${records.length} of ${film.frameCount} frames`);
  const bytes = bytesUnder(library) - bytesUnder(path.join(library, 'logs')) - bytesUnder(path.join(library, '.celforge'));
  rmSync(dir, { recursive: true });
  return { records, seconds: run.seconds, bytes, cpu };
}

/** The extract stage's loop (decode, features, decide, write), with the main thread's time split by step. */
async function instrumented(film: GrainyFilm, work: string, threads: number) {
  const library = path.join(work, 'instrumented');
  mkdirSync(library);
  const media = new MediaRepository(binaries);
  const features = FeatureFile.create(path.join(work, 'features.bin'), film.width, film.height);
  const dedup = new Deduplicator(features);
  const layout = videoLayout(library, 'bench', 'e01');
  const output = new FrameOutput({
    layout, policy: 'reference', previewWidth: 320, pngCompression: 'fast',
    totals: { kept: 0, duplicates: 0, scenes: 0, bytes: { frames: 0, duplicates: 0, previews: 0 } },
  });
  const buffers = new FrameBuffers(film.width * film.height * 3, framesHeld(threads) + WRITES_IN_FLIGHT + 1);
  const decoded = media.decodeFrames({ input: film.file, width: film.width, height: film.height, hwaccel: 'none', buffers });
  const time = { waitFrame: 0, decide: 0, submit: 0, finish: 0 };
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  let mark = process.hrtime.bigint();
  let frame = 0;
  const lap = (key: keyof typeof time) => {
    const now = process.hrtime.bigint();
    time[key] += Number(now - mark) / 1e9;
    mark = now;
  };
  for await (const { rgb, features: frameFeatures } of framesWithFeatures(decoded.frames, film.width, film.height, threads, buffers)) {
    lap('waitFrame');
    const decision = dedup.decide(frame, frameFeatures);
    lap('decide');
    await output.submit(decision, { rgb, width: film.width, height: film.height }, () => buffers.release(rgb));
    lap('submit');
    frame += 1;
  }
  await decoded.done;
  mark = process.hrtime.bigint();
  await output.finish();
  lap('finish');
  const cpu = process.cpuUsage(cpuStart);
  features.close();
  rmSync(library, { recursive: true });
  return { ...time, total: seconds(start), cpu: (cpu.user + cpu.system) / 1e6 };
}

/**
 * What each part costs alone, in CPU seconds of this process for the whole clip (CPU time, not
 * wall time: other processes on a shared machine inflate wall time, not this). One step at a time,
 * on the clip's frames; ffmpeg's decoding runs in its own process and is not counted. The write
 * and fsync of the kept frames' PNGs wait on the disk more than they use the CPU: wall time.
 */
async function costs(film: GrainyFilm, work: string, kept: Set<number>) {
  const media = new MediaRepository(binaries);
  const dir = path.join(work, 'costs');
  mkdirSync(dir);
  const decoded = media.decodeFrames({ input: film.file, width: film.width, height: film.height, hwaccel: 'none' });
  const cost = { features: 0, dedup: 0, copy: 0, png: 0, hash: 0, writeAndSync: 0, preview: 0 };
  const cpu = (since: NodeJS.CpuUsage) => {
    const used = process.cpuUsage(since);
    return (used.user + used.system) / 1e6;
  };
  const all: FrameFeatures[] = [];
  let frame = 0;
  const scratch = Buffer.allocUnsafe(film.width * film.height * 3);
  for await (const rgb of decoded.frames) {
    let since = process.cpuUsage();
    all.push(computeFeatures(rgb, film.width, film.height));
    cost.features += cpu(since);
    since = process.cpuUsage();
    rgb.copy(scratch);
    cost.copy += cpu(since);
    if (kept.has(frame)) {
      since = process.cpuUsage();
      const png = await sharp(rgb, { raw: { width: film.width, height: film.height, channels: 3 } }).png(PNG_OPTIONS.fast).toBuffer();
      cost.png += cpu(since);
      since = process.cpuUsage();
      createHash('sha256').update(png).digest('hex');
      cost.hash += cpu(since);
      const start = process.hrtime.bigint();
      await writeThenRename(path.join(dir, `${frame}.png`), path.join(dir, `${frame}.png.tmp`), png, { sync: true });
      cost.writeAndSync += seconds(start);
    } else {
      since = process.cpuUsage();
      await writePreview({ rgb, width: film.width, height: film.height }, path.join(dir, `${frame}.jpg`), 320);
      cost.preview += cpu(since);
    }
    frame += 1;
  }
  await decoded.done;
  const features = FeatureFile.create(path.join(work, 'costs-features.bin'), film.width, film.height);
  const dedup = new Deduplicator(features);
  const since = process.cpuUsage();
  all.forEach((f, i) => dedup.decide(i, f));
  cost.dedup = cpu(since);
  features.close();
  rmSync(dir, { recursive: true });
  return cost;
}

function sceneStarts(records: MapRecord[]): number[] {
  return records.filter((r, i) => i === 0 || r.scene !== records[i - 1]!.scene).map((r) => r.frame);
}

const generated = timed(() => makeGrainyFilm({ width: WIDTH, height: HEIGHT }));
const film = await generated.value;
const work = mkdtempSync(path.join(os.tmpdir(), 'celforge-bench-grainy-'));
try {
  const full = fullPng(film, work);
  const nullDecode = decodeToNull(film);
  const pipeDecode = await decodeToNode(film);
  const celforge = await celforgeProcess(film, work);

  const { records } = celforge;
  const keptFrames = records.filter((r) => r.status === 'kept').map((r) => r.frame);
  const drawingsKept = new Set(keptFrames.map((frame) => film.drawings[frame]));
  const wrong = records.filter((r) => r.status === 'duplicate' && film.drawings[r.duplicateOf!] !== film.drawings[r.frame]);
  const missed = [...new Set(film.drawings)].filter((d) => !drawingsKept.has(d));
  const found = sceneStarts(records).filter((f) => f > 0);
  const real = new Set(film.shots.filter((f) => f > 0));
  const right = found.filter((f) => real.has(f)).length;

  console.log(`clip: ${film.width}x${film.height}, ${film.frameCount} frames, ${film.uniqueDrawings} drawings, ${film.shots.length - 1} cuts (${film.kinds.join(', ')}); machine: ${os.availableParallelism()} cores`);
  console.log(`made in ${generated.seconds.toFixed(1)} s (cached after the first run)\n`);
  const rows: [string, string, string][] = [
    ['(b) full PNG extraction (ffmpeg %06d.png)', `${full.seconds.toFixed(1)} s`, `${(full.bytes / 2 ** 20).toFixed(0)} MiB`],
    ['decode alone: ffmpeg -f null', `${nullDecode.toFixed(1)} s`, ''],
    ['decode alone: rgb24 pipe into Node', `${pipeDecode.toFixed(1)} s`, ''],
    ['(c) celforge process (frames only)', `${celforge.seconds.toFixed(1)} s`, `${(celforge.bytes / 2 ** 20).toFixed(0)} MiB`],
  ];
  for (const [what, wall, size] of rows) console.log(`${what.padEnd(44)}${wall.padEnd(10)}${size}`);
  console.log();
  const table: [string, string, string][] = [
    ['recall of drawings', (drawingsKept.size / film.uniqueDrawings).toFixed(3), '1.00'],
    ['wrong duplicate links', String(wrong.length), '0'],
    ['redundancy (kept / drawings)', (keptFrames.length / film.uniqueDrawings).toFixed(3), '<= 1.05'],
    ['cut precision', (right / Math.max(1, found.length)).toFixed(2), '>= 0.9'],
    ['cut recall', (right / Math.max(1, real.size)).toFixed(2), '1.0'],
    ['wall / (b)', (celforge.seconds / full.seconds).toFixed(2), '<= 0.4'],
    ['bytes / (b)', (celforge.bytes / full.bytes).toFixed(3), '<= 0.35'],
    ['wall / rgb24 pipe decode', (celforge.seconds / pipeDecode).toFixed(2), '<= 3'],
    ['wall / ffmpeg -f null', (celforge.seconds / nullDecode).toFixed(2), ''],
  ];
  console.log(`${'measure'.padEnd(32)}${'value'.padEnd(10)}target`);
  for (const [what, value, target] of table) console.log(`${what.padEnd(32)}${value.padEnd(10)}${target}`);
  if (wrong.length) console.log(`wrong links (frame -> kept frame): ${wrong.map((r) => `${r.frame}->${r.duplicateOf}`).join(' ')}`);
  if (missed.length) console.log(`drawings never kept: ${missed.join(' ')} (first frames ${missed.map((d) => film.drawings.indexOf(d)).join(' ')})`);
  console.log(`cuts found ${found.length}: ${found.join(' ')}; real: ${[...real].join(' ')}`);
  console.log(`\nCPU of (c) by thread, as the kernel counts it (/proc/<pid>/task/*/stat), ${celforge.seconds.toFixed(1)} s wall:`);
  for (const [kind, used] of [...celforge.cpu].sort((a, b) => b[1] - a[1])) console.log(`  ${kind.padEnd(56)}${used.toFixed(2)} s`);
  console.log(`  ${'total'.padEnd(56)}${[...celforge.cpu.values()].reduce((sum, used) => sum + used, 0).toFixed(2)} s`);

  const loop = await instrumented(film, work, THREADS);
  console.log(`\nwhere the time goes, in process (${THREADS} feature threads), main thread:`);
  console.log(`  waiting for the next frame (decode + features)  ${loop.waitFrame.toFixed(2)} s`);
  console.log(`  dedup decide (compare, cuts, index)             ${loop.decide.toFixed(2)} s`);
  console.log(`  submit (waiting on PNG/preview writes)          ${loop.submit.toFixed(2)} s`);
  console.log(`  finish (last writes, map fsync)                 ${loop.finish.toFixed(2)} s`);
  console.log(`  total                                           ${loop.total.toFixed(2)} s`);
  console.log(`  CPU of this process, all its threads (not ffmpeg) ${loop.cpu.toFixed(2)} s`);
  const cost = await costs(film, work, new Set(keptFrames));
  console.log(`\nwhat each part costs alone, CPU seconds for the whole clip (ffmpeg's decoding not counted):`);
  const kept = keptFrames.length;
  const lines: [string, number][] = [
    ['features (block means), every frame', cost.features],
    ['dedup decide (compare, cuts, index), every frame', cost.dedup],
    ['one copy of every frame (as framesOf does)', cost.copy],
    [`PNG encoding, ${kept} kept frames`, cost.png],
    ['SHA-256 of those PNGs', cost.hash],
    [`previews (resize, JPEG, write), ${film.frameCount - kept} duplicates`, cost.preview],
  ];
  for (const [what, value] of lines) console.log(`  ${what.padEnd(56)}${value.toFixed(2)} s`);
  console.log(`  ${'write + fsync of the PNGs (wall time)'.padEnd(56)}${cost.writeAndSync.toFixed(2)} s`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
