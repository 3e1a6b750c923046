/**
 * celforge's worst case: a clip where every frame is new (ffmpeg's testsrc2,
 * no grain), so nothing is a duplicate and every frame is written in full.
 * The whole pipeline (`celforge process`: probe, tail check, disk gate,
 * decode to raw frames, features, PNG through sharp, frame map) against the
 * plain ffmpeg command users run by hand, on the same clip in the same run,
 * as ratios to that baseline. bench/dedup.bench.ts measures the usual case.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { binaries, makeClip } from '../test/fixtures/clips.ts';
import { FRAMES_ONLY, writeConfig } from '../test/helpers.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'celforge.js');

function folderBytes(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.png')) {
      files += 1;
      bytes += statSync(path.join(entry.parentPath, entry.name)).size;
    }
  }
  return { files, bytes };
}

function timed(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const clip = await makeClip({ width: 1920, height: 1080, seconds: SECONDS });
const work = mkdtempSync(path.join(os.tmpdir(), 'celforge-bench-'));
try {
  const plainDir = path.join(work, 'plain');
  execFileSync('mkdir', ['-p', plainDir]);
  const plain = timed(() =>
    execFileSync(binaries.ffmpeg, ['-v', 'error', '-nostdin', '-i', clip, '-map', '0:v:0', '-vsync', 'passthrough', path.join(plainDir, '%06d.png')]));
  const plainOut = folderBytes(plainDir);

  const library = path.join(work, 'library');
  const configFile = writeConfig(work, { library: './library', ...FRAMES_ONLY });
  const celforge = timed(() => {
    const result = spawnSync('/usr/bin/env', ['node', cli, '--config', configFile, 'process', clip], { encoding: 'utf8', cwd: work });
    if (result.status !== 0) throw new Error(result.stderr);
  });
  const celforgeOut = folderBytes(library);

  const rows = [
    ['method', 'frames', 'wall s', 'frames/s', 'MiB written', 'wall ratio'],
    ['ffmpeg -i clip %06d.png (baseline)', plainOut.files, plain.toFixed(2), (plainOut.files / plain).toFixed(1), (plainOut.bytes / 2 ** 20).toFixed(1), '1.00'],
    ['celforge process', celforgeOut.files, celforge.toFixed(2), (celforgeOut.files / celforge).toFixed(1), (celforgeOut.bytes / 2 ** 20).toFixed(1), (celforge / plain).toFixed(2)],
  ];
  console.log(`clip: 1920x1080, ${SECONDS} s at 23.976 fps, H.264 in BDAV .m2ts`);
  for (const row of rows) console.log(row.map((cell, i) => String(cell).padEnd(i === 0 ? 36 : 12)).join(''));
  console.log(`bytes written ratio: ${(celforgeOut.bytes / plainOut.bytes).toFixed(3)}`);
  if (celforgeOut.files !== plainOut.files) {
    console.error(`frame counts differ: celforge ${celforgeOut.files}, ffmpeg ${plainOut.files}`);
    process.exitCode = 1;
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
