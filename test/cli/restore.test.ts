/**
 * Nothing is lost: a duplicate kept by reference is restored at full
 * resolution byte-identical to a full extraction (policy `move`, which writes
 * every duplicate in full); under `move`, restoring moves the file back.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { resolveFfmpegBinaries } from '../../src/adapters/ffmpeg-binaries.ts';
import type { FrameRecord } from '../../src/adapters/frame-map-file.ts';
import { makeAnimeClip, type AnimeClip } from '../fixtures/anime-clip.ts';
import { frameMapOf, readJobs, runCli, tempDir, writeConfig } from '../helpers.ts';

let clip: AnimeClip;
before(async () => {
  clip = await makeAnimeClip({ width: 640, height: 360, scenario: 'small' });
});

async function processWith(t: Parameters<typeof tempDir>[0], policy: 'reference' | 'move') {
  const dir = tempDir(t);
  const configFile = writeConfig(dir, { dedup: { policy }, disk: { reserve: 0 } });
  const result = await runCli(['--config', configFile, 'process', clip.file], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  const library = path.join(dir, 'library');
  const job = readJobs(library)[0]!;
  return { dir, configFile, library, job, map: frameMapOf(job) };
}

const pngsUnder = (dir: string) => readdirSync(dir, { recursive: true }).map(String).filter((name) => name.endsWith('.png'));

test('restore re-extracts duplicates byte-identical to a full extraction, and records them as kept', async (t) => {
  const full = await processWith(t, 'move');
  const byReference = await processWith(t, 'reference');
  const duplicates = byReference.map.filter((r) => r.status === 'duplicate');
  assert.ok(duplicates.length > 10);
  // Kept frames are the same files either way.
  for (const record of byReference.map.filter((r) => r.status === 'kept')) {
    assert.ok(readFileSync(path.join(byReference.library, record.file!)).equals(readFileSync(path.join(full.library, full.map[record.frame]!.file!))));
  }
  const chosen = [duplicates[0]!, duplicates[Math.floor(duplicates.length / 2)]!, duplicates.at(-1)!].map((r) => r.frame);
  const result = await runCli(['--config', byReference.configFile, 'restore', clip.file, ...chosen.map(String)], { cwd: byReference.dir });
  assert.equal(result.code, 0, result.stderr);
  // Each frame was found by seeking near it; decoding from the start says so on stderr.
  assert.doesNotMatch(result.stderr, /decoding from the start/);

  const after = frameMapOf(byReference.job);
  for (const frame of chosen) {
    const record = after[frame]!;
    assert.equal(record.status, 'kept');
    assert.equal(record.duplicateOf, null);
    assert.equal(record.restored, true);
    assert.match(result.stdout, new RegExp(`frame ${frame}: restored to `));
    const restored = readFileSync(path.join(byReference.library, record.file!));
    const extracted = readFileSync(path.join(full.library, full.map[frame]!.file!));
    assert.ok(restored.equals(extracted), `restored frame ${frame} is not byte-identical to the full extraction`);
  }
  assert.equal(after.length, clip.frameCount);
  assert.deepEqual(after.filter((r) => !chosen.includes(r.frame)), byReference.map.filter((r) => !chosen.includes(r.frame)));

  const again = await runCli(['--config', byReference.configFile, 'restore', clip.file, String(chosen[0])], { cwd: byReference.dir });
  assert.match(again.stdout, /already kept/);
  const missing = await runCli(['--config', byReference.configFile, 'restore', clip.file, '99999'], { cwd: byReference.dir });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no frame 99999 \(frames 0 to \d+ are recorded\)/);
});

test('under policy move, duplicates are written in full and restoring moves the file back: no frame is ever deleted', async (t) => {
  const full = await processWith(t, 'move');
  const videoDir = full.job.extract!.dir;
  assert.equal(pngsUnder(videoDir).length, clip.frameCount, 'every frame is a full-size file somewhere');
  const duplicate = full.map.find((r) => r.status === 'duplicate')! as FrameRecord;
  assert.match(duplicate.file!, /duplicates\/scene-\d{4}\//);
  const bytes = readFileSync(path.join(full.library, duplicate.file!));

  const result = await runCli(['--config', full.configFile, 'restore', clip.file, String(duplicate.frame)], { cwd: full.dir });
  assert.equal(result.code, 0, result.stderr);
  const record = frameMapOf(full.job)[duplicate.frame]!;
  assert.match(record.file!, /frames\/scene-\d{4}\//);
  assert.ok(!existsSync(path.join(full.library, duplicate.file!)));
  assert.ok(readFileSync(path.join(full.library, record.file!)).equals(bytes));
  assert.equal(pngsUnder(videoDir).length, clip.frameCount, 'a frame went missing');
});

test('on a stream whose rate changes, restore says it decodes from the start and is still byte-identical', { timeout: 300_000 }, async (t) => {
  const dir = tempDir(t);
  const { ffmpeg } = resolveFfmpegBinaries();
  const parts = [];
  // Drawings held for 4 or 5 frames, so dedup finds duplicates; 24 fps, then 30 fps joined without re-encoding.
  for (const [rate, count] of [[24, 48], [30, 72]] as const) {
    const part = path.join(dir, `part-${rate}.mp4`);
    execFileSync(ffmpeg, ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=6', '-vf', `fps=${rate}`, '-frames:v', String(count),
      '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', part]);
    parts.push(`file '${part}'\n`);
  }
  writeFileSync(path.join(dir, 'parts.txt'), parts.join(''));
  const video = path.join(dir, 'vfr.mkv');
  execFileSync(ffmpeg, ['-v', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', path.join(dir, 'parts.txt'), '-c', 'copy', video]);
  const processed = async (policy: 'reference' | 'move') => {
    const work = path.join(dir, policy);
    mkdirSync(work);
    const configFile = writeConfig(work, { dedup: { policy }, disk: { reserve: 0 } });
    const result = await runCli(['--config', configFile, 'process', video], { cwd: work });
    assert.equal(result.code, 0, result.stderr);
    const library = path.join(work, 'library');
    const job = readJobs(library)[0]!;
    return { work, configFile, library, job, map: frameMapOf(job) };
  };
  const full = await processed('move');
  const byReference = await processed('reference');
  const late = byReference.map.find((r) => r.status === 'duplicate' && r.frame > 80)!;
  assert.ok(late, 'a duplicate in the 30 fps part');
  const result = await runCli(['--config', byReference.configFile, 'restore', video, String(late.frame)], { cwd: byReference.work });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, new RegExp(`decoding from the start to restore frame ${late.frame}, not seeking: `));
  const restored = readFileSync(path.join(byReference.library, frameMapOf(byReference.job)[late.frame]!.file!));
  assert.ok(restored.equals(readFileSync(path.join(full.library, full.map[late.frame]!.file!))), `restored frame ${late.frame} is not byte-identical to the full extraction`);
});
