/**
 * Extraction with dedup on a generated 1080p anime-like clip with grain and a
 * known drawing per frame: the frame map is right (every frame once, every
 * duplicate pointing at a kept frame of the same drawing, every drawing kept,
 * scenes at the cuts, each hard case), and interrupted runs (the daemon
 * SIGKILLed or stopped, the disk under its reserve) end byte-identical to an
 * uninterrupted one.
 *
 * The interrupted runs use the same clip at 640x360: a 1080p extraction
 * writes about 230 MiB of PNG, and the pause test, which waited for two
 * partial 1080p extractions, ran past its 120 s on a busy 2-core machine.
 * Where an interruption must land mid-video, the test freezes the daemon's
 * ffmpeg (SIGSTOP) first, so that no machine is fast enough to finish before
 * the interruption arrives.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FrameRecord } from '../../src/adapters/frame-map-file.ts';
import { makeAnimeClip, type AnimeClip } from '../fixtures/anime-clip.ts';
import { countDecodedFrames } from '../fixtures/clips.ts';
import { frameMapOf, hashTree, readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig, type DaemonProcess } from '../helpers.ts';

let clip: AnimeClip;
/** The same scenario at 640x360, for the interrupted runs, and its files after an uninterrupted run. */
let small: AnimeClip;
let reference: Map<string, string>;

before(async () => {
  clip = await makeAnimeClip({ width: 1920, height: 1080, scenario: 'small' });
  small = await makeAnimeClip({ width: 640, height: 360, scenario: 'small' });
  reference = await uninterruptedRun(small);
});

const inSegment = (kind: string) => clip.segments.filter((segment) => segment.kind === kind);
const framesOf = (segment: { firstFrame: number; frameCount: number }, map: FrameRecord[]) =>
  map.slice(segment.firstFrame, segment.firstFrame + segment.frameCount);

test('celforge process: every frame once, duplicates only of the same drawing, every drawing kept, scenes at the cuts', async (t) => {
  const dir = tempDir(t);
  const video = path.join(dir, 'Reference', 'Reference 01.m2ts');
  mkdirSync(path.dirname(video));
  copyFileSync(clip.file, video);
  const library = path.join(dir, 'library');
  // The default taggers, not downloaded (hundreds of megabytes); no faces stage, as in the daemon runs compared with this one.
  writeFileSync(path.join(dir, 'daemon.config.ts'), "export default { models: { autoFetch: false }, faces: { detector: 'none' } };\n");
  const result = await runCli(['--library', library, 'process', video], { cwd: dir });
  // No taggers in the models folder: the frames are done, and the tags stage waits instead of failing.
  assert.equal(result.code, 3, result.stderr);
  assert.match(result.stdout, /tags\/waiting-for-model .*run "celforge models fetch wd-swinv2-tagger-v3 wd-vit-tagger-v3 wd-convnext-tagger-v3"/);
  const job = readJobs(library)[0]!;
  assert.equal(job.state, 'waiting-for-model');
  assert.deepEqual(job.waitingFor?.models, ['wd-swinv2-tagger-v3', 'wd-vit-tagger-v3', 'wd-convnext-tagger-v3']);
  const map = frameMapOf(job);

  assert.equal(await countDecodedFrames(video), clip.frameCount);
  assert.deepEqual(map.map((record) => record.frame), clip.drawings.map((_, frame) => frame), 'every frame once, in order');
  for (const record of map) {
    if (record.status === 'kept') {
      assert.equal(record.duplicateOf, null);
      assert.ok(existsSync(path.join(library, record.file!)), `kept frame ${record.frame} has no file`);
      continue;
    }
    const original = map[record.duplicateOf!]!;
    assert.equal(original.status, 'kept', `frame ${record.frame} points at ${record.duplicateOf}, which is not kept`);
    assert.equal(clip.drawings[record.frame], clip.drawings[record.duplicateOf!], `frame ${record.frame} is not a repeat of ${record.duplicateOf}`);
    assert.ok(record.duplicateOf! < record.frame);
    assert.equal(record.file, null);
    assert.ok(existsSync(path.join(library, record.preview!)), `duplicate ${record.frame} has no preview`);
  }
  const keptDrawings = new Set(map.filter((r) => r.status === 'kept').map((r) => clip.drawings[r.frame]));
  assert.equal(keptDrawings.size, clip.uniqueDrawings, 'a drawing was lost');
  const kept = map.filter((r) => r.status === 'kept').length;
  assert.ok(kept / clip.uniqueDrawings <= 1.05, `redundancy ${kept / clip.uniqueDrawings}`);

  const sceneStarts = map.filter((r, i) => i === 0 || map[i - 1]!.scene !== r.scene).map((r) => r.frame);
  assert.deepEqual(sceneStarts, clip.shots, 'scenes do not start at the cuts');
  for (const record of map.filter((r) => r.file)) assert.match(record.file!, new RegExp(`scene-${String(record.scene).padStart(4, '0')}/`));

  for (const kind of ['pan', 'fade']) {
    for (const segment of inSegment(kind)) {
      assert.ok(framesOf(segment, map).every((r) => r.status === 'kept'), `a ${kind} frame was taken for a duplicate`);
    }
  }
  for (const kind of ['mouth', 'blink-small', 'shade', 'hold2', 'hold3']) {
    for (const segment of inSegment(kind)) {
      const records = framesOf(segment, map);
      const drawings = new Set(records.map((r) => clip.drawings[r.frame]));
      const keptHere = new Set(records.filter((r) => r.status === 'kept').map((r) => clip.drawings[r.frame]));
      const firstSeenHere = [...drawings].filter((d) => clip.drawings.indexOf(d) >= segment.firstFrame);
      assert.deepEqual([...keptHere].sort(), firstSeenHere.sort(), `${kind}: kept drawings differ from the new ones`);
    }
  }
  for (const segment of inSegment('return')) {
    for (const record of framesOf(segment, map)) {
      assert.equal(record.status, 'duplicate', `returning frame ${record.frame} was kept again`);
      assert.ok(record.duplicateOf! < segment.firstFrame);
    }
  }

  const report = JSON.parse(readFileSync(path.join(job.extract!.dir, 'report.json'), 'utf8'));
  assert.equal(report.frames, clip.frameCount);
  assert.equal(report.scenes, clip.shots.length);
  assert.equal(report.kept + report.duplicates, clip.frameCount);
  assert.match(result.stdout, new RegExp(`${clip.frameCount} frames, ${report.kept} kept, ${report.duplicates} duplicates, ${clip.shots.length} scenes`));

  const json = await runCli(['--library', library, 'frames', video, '--json'], { cwd: dir });
  const lines = json.stdout.trim().split('\n').map((line) => JSON.parse(line));
  assert.equal(lines.length, clip.frameCount);
  assert.deepEqual(Object.keys(lines[0]), ['frame', 'status', 'duplicateOf', 'scene', 'file']);
  assert.equal(lines[0].file, path.join(library, map[0]!.file!));
});

/** `celforge process` on the clip under the name the daemon tests give it, frames only. */
async function uninterruptedRun(source: AnimeClip): Promise<Map<string, string>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-test-reference-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const video = path.join(dir, 'Reference', 'Reference 01.m2ts');
  mkdirSync(path.dirname(video));
  copyFileSync(source.file, video);
  const result = await runCli(['--config', writeConfig(dir, { library: './library' }), 'process', video], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  return hashTree(readJobs(path.join(dir, 'library'))[0]!.extract!.dir);
}

function daemonSetup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const inbox = path.join(dir, 'inbox');
  mkdirSync(path.join(inbox, 'Reference'), { recursive: true });
  const config = {
    inbox: './inbox',
    library: './library',
    watch: { settleSeconds: 0.2 },
    disk: { reserve: 0, recheckSeconds: 0.2, checkIntervalSeconds: 0.2 },
  };
  const configFile = writeConfig(dir, config);
  copyFileSync(small.file, path.join(inbox, 'Reference', 'Reference 01.m2ts'));
  return { dir, library: path.join(dir, 'library'), configFile, config };
}

/**
 * Freezes the daemon's ffmpeg once extraction is under way: from then on no
 * frame beyond those already in the pipe arrives, however fast the machine.
 * The daemon stops it with SIGKILL, which a stopped process obeys.
 */
async function freezeDecoder(t: Parameters<typeof tempDir>[0], daemon: DaemonProcess, library: string, frames: number): Promise<number> {
  const { extract } = await waitFor(`${frames} frames recorded and ffmpeg's pid in the ledger`, () => {
    const job = readJobs(library)[0];
    return recordedFrames(library) >= frames && job?.extract?.pid ? job : undefined;
  }, 120_000).catch((error: Error) => {
    const job = readJobs(library)[0];
    throw new Error(`${error.message} (job ${job?.stage}/${job?.state}, ${recordedFrames(library)} frames recorded); the daemon said:\n${daemon.output()}`);
  });
  const pid = extract!.pid!;
  process.kill(pid, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone, as it should be.
    }
  });
  return pid;
}

/** Files in the video's output folder (frames, previews, temporary files), by relative path; not the lock or its drafts, which each re-check takes. */
const filesOnDisk = (library: string): string[] => {
  const job = readJobs(library)[0];
  if (!job?.extract || !existsSync(job.extract.dir)) return [];
  return readdirSync(job.extract.dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && !entry.name.startsWith('.lock'))
    .map((entry) => path.relative(job.extract!.dir, path.join(entry.parentPath, entry.name)));
};
const recordedFrames = (library: string) => {
  const job = readJobs(library)[0];
  return job?.extract && existsSync(path.join(job.extract.dir, 'frame-map.jsonl')) ? frameMapOf(job).length : 0;
};

function assertSameAsReference(dir: string) {
  const result = hashTree(dir);
  assert.deepEqual([...result.keys()], [...reference.keys()], 'the files differ from the uninterrupted run');
  for (const [name, hash] of reference) assert.equal(result.get(name), hash, `${name} differs from the uninterrupted run`);
}

test('the daemon killed with SIGKILL mid-video and restarted ends byte-identical to an uninterrupted run', async (t) => {
  const { library, configFile } = daemonSetup(t);
  const first = startDaemon(configFile);
  t.after(() => stopDaemon(first));
  await freezeDecoder(t, first, library, 40);
  first.child.kill('SIGKILL');
  await first.exited;
  const interrupted = readJobs(library)[0]!;
  assert.equal(interrupted.state, 'running');
  assert.equal(interrupted.stage, 'extract');
  assert.ok(recordedFrames(library) < small.frameCount, 'extraction finished before the kill');

  const second = startDaemon(configFile);
  t.after(() => stopDaemon(second));
  const job = await waitFor('the job to finish after the restart', () => readJobs(library).find((j) => j.state === 'ready-for-review'), 120_000);
  await stopDaemon(second);
  const log = readFileSync(path.join(library, 'logs', 'celforge.log'), 'utf8');
  const resumedAt = /"startFrame":(\d+)[^\n]*resuming extraction/.exec(log);
  assert.ok(resumedAt && Number(resumedAt[1]) >= 40, 'the second daemon did not resume from the frames already recorded');
  assert.match(log, /stopped the ffmpeg left running by a daemon that was killed/);
  assertSameAsReference(job.extract!.dir);
  assert.deepEqual(filesOnDisk(library).filter((name) => name.endsWith('.tmp')), []);
});

test('extraction pauses when free space falls under the reserve, keeps nothing partial, and resumes when space returns', async (t) => {
  const { dir, library, configFile, config } = daemonSetup(t);
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  const ffmpeg = await freezeDecoder(t, daemon, library, 20);

  // The volume "fills": the reserve now exceeds what is free.
  writeConfig(dir, { ...config, disk: { ...config.disk, reserve: '4000 TiB' } });
  daemon.child.kill('SIGHUP');
  await waitFor('extraction to pause', () => readJobs(library).find((j) => j.state === 'paused-disk-low'), 120_000);
  assert.throws(() => process.kill(ffmpeg, 0), 'the daemon stopped its ffmpeg');
  await new Promise((resolve) => setTimeout(resolve, 600));
  const paused = filesOnDisk(library);
  assert.ok(recordedFrames(library) < small.frameCount, 'extraction finished instead of pausing');
  assert.deepEqual(paused.filter((name) => name.endsWith('.tmp')), [], 'a partial file was kept while paused');
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.equal(filesOnDisk(library).length, paused.length, 'files were still written while paused');
  assert.equal(readJobs(library)[0]!.state, 'paused-disk-low');

  writeConfig(dir, config);
  daemon.child.kill('SIGHUP');
  const job = await waitFor('the job to finish', () => readJobs(library).find((j) => j.state === 'ready-for-review'), 120_000);
  assertSameAsReference(job.extract!.dir);
  assert.match(readFileSync(path.join(library, 'logs', 'celforge.log'), 'utf8'), /paused-disk-low: .* under the 4000\.0 TiB reserve/);
});

test('SIGTERM mid-video (as a service manager stops it): a clean exit, the ledger saved, no ffmpeg left; a restart ends byte-identical', async (t) => {
  const { library, configFile } = daemonSetup(t);
  const first = startDaemon(configFile);
  t.after(() => stopDaemon(first));
  await freezeDecoder(t, first, library, 40);
  first.child.kill('SIGTERM');
  assert.equal(await first.exited, 0, first.output());
  const stopped = readJobs(library)[0]!;
  assert.equal(stopped.state, 'queued', 'left to resume');
  assert.equal(stopped.stage, 'extract');
  const recorded = recordedFrames(library);
  assert.ok(recorded >= 40 && recorded < small.frameCount, `${recorded} frames recorded`);
  assert.ok(stopped.extract!.framesDone <= recorded, 'the ledger never claims more than the frame map holds');
  const ffmpeg = stopped.extract!.pid;
  if (ffmpeg) assert.throws(() => process.kill(ffmpeg, 0), 'ffmpeg is gone');
  assert.deepEqual(filesOnDisk(library).filter((name) => name.endsWith('.tmp')), [], 'nothing half-written kept');

  const second = startDaemon(configFile);
  t.after(() => stopDaemon(second));
  const job = await waitFor('the job to finish after the restart', () => readJobs(library).find((j) => j.state === 'ready-for-review'), 120_000);
  assertSameAsReference(job.extract!.dir);
});
