/**
 * extract (with dedup and scenes): every frame is decoded once, as raw RGB,
 * and decided on the spot: which shot it belongs to and whether it repeats a
 * drawing seen before. Only kept frames are written in full; duplicates are
 * recorded (with a preview) or written under duplicates/, by policy. Nothing
 * is deleted. Resumable: the frame map says what is done; a restart takes
 * the dedup state of the last resume point (resume-point.ts) and the drawings
 * from the feature file, seeks to that frame, replays the recorded decisions
 * up to the end of the map and continues after it. Without a usable resume
 * point it decodes from frame 0 and replays every recorded decision. When free space
 * falls under the reserve (or the disk fills), it stops, keeps nothing
 * partial, and the job pauses until space returns. Aborted because another
 * process owns the video now (a queue worker that lost its job's lock: the
 * signal's reason is a CLAIM_LOST error), it stops at once and writes nothing
 * more: no frame map line, no resume point, no progress, and it removes
 * nothing (the temporary files may be the new owner's).
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readFrameMap, rewriteFrameMap, type FrameRecord } from '../../adapters/frame-map-file.ts';
import { FrameBuffers } from '../../adapters/frame-buffers.ts';
import { ExtractionStopped, FfmpegFailure, type DecodedFrames, type DecodeRequest } from '../../adapters/media.ts';
import { acquireLock } from '../../adapters/lock-file.ts';
import { killOrphan } from '../../adapters/processes.ts';
import { formatSize } from '../../config/size.ts';
import type { Job } from '../../daemon/job.ts';
import { tempDir, videoLayoutOf, type VideoLayout } from '../../daemon/library-paths.ts';
import { claimVideoFolder } from '../../daemon/output-folder.ts';
import { CelforgeError } from '../../errors.ts';
import type { Stage, StagePorts, StageResult } from '../stage.ts';
import { Deduplicator } from './deduplicator.ts';
import { FeatureFile } from './feature-file.ts';
import { decodeFromFrame, frameGridOf } from '../../frames/frame-seeker.ts';
import { ResumePoints } from './resume-point.ts';
import { framesHeld, framesWithFeatures } from './feature-pipeline.ts';
import { countRecord, FrameOutput, WRITES_IN_FLIGHT, type OutputTotals } from './frame-output.ts';

const PROGRESS_SAVE_MS = 2000;
/** The stop reason when the signal says another process owns the video now. */
const HANDED_OVER = 'handed-over';
/** The newest records a power cut may have left without their files. */
const RECORDS_VERIFIED_AT_RESUME = 16;

export const extractStage: Stage = async (job, ports) => {
  const config = ports.config();
  const layout = videoLayoutOf(job, config.library);
  const videoDir = path.join(config.library, layout.dir);
  await mkdir(videoDir, { recursive: true });
  const lock = await acquireLock(layout.lock, 'extract', `${job.source}: its frames`);
  try {
    await claimVideoFolder(job, layout, { mark: true });
    return await extractVideo(job, ports, layout, videoDir);
  } finally {
    await lock.release();
  }
};

async function extractVideo(job: Job, ports: StagePorts, layout: VideoLayout, videoDir: string): Promise<StageResult> {
  const config = ports.config();

  const orphan = job.extract?.pid;
  if (orphan && (await killOrphan(orphan, ['ffmpeg', job.source]))) {
    ports.log.warn({ job: job.id, pid: orphan }, 'stopped the ffmpeg left running by a daemon that was killed');
  }
  const removed = await removeTemporaryFiles(videoDir);
  if (removed) ports.log.info({ job: job.id, removed }, 'removed partial files of an interrupted extraction');
  const recorded = await verifiedRecords(layout);

  const total = job.probe!.frameCount;
  const hwaccel = await chooseHwaccel(job, ports);
  const totals = totalsOf(recorded);
  const recordState = (target: Job) => {
    target.extract = { dir: videoDir, framesDone: recorded.length, ...summary(totals), pid: null, hwaccel };
    target.progress = { done: recorded.length, total };
  };
  const lowSpace = await spaceBelowReserve(ports);
  if (lowSpace) return pauseForSpace(lowSpace, ports, recordState);
  await ports.save((target) => {
    recordState(target);
    target.state = 'running';
  });
  // A save that waited on a queue cut off from Redis may end with the video another worker's.
  if (claimLost(ports.signal)) return { kind: 'interrupted' };

  const { width, height } = job.probe!;
  await mkdir(tempDir(config.library), { recursive: true });
  const files = resumeFiles(job, config.library);
  // Everything that can fail before decoding is set up first: a started ffmpeg is always stopped or drained.
  const output = new FrameOutput({
    layout, totals, policy: config.dedup.policy, previewWidth: config.dedup.previewWidth, pngCompression: config.extract.pngCompression,
  });
  const threads = config.extract.threads;
  // Every frame the stage can hold at once: in the feature pipeline, being written, and the one being decoded.
  const buffers = new FrameBuffers(width * height * 3, framesHeld(threads) + WRITES_IN_FLIGHT + 1);
  const decodeRequest = {
    input: job.source, width, height, hwaccel, buffers,
    onSpawn: (pid: number) => saveInBackground(ports, (target) => void (target.extract!.pid = pid)),
  };
  await removePartialResumePoints(files);
  const seeking = recorded.length > 0 && (await resumeBySeeking(job, ports, files, recorded, decodeRequest));
  // From frame 0 a point of an earlier run must not outlive the feature file it counted on.
  if (!seeking) await ResumePoints.remove(files.point);
  const start = seeking || { from: 0, features: FeatureFile.create(files.features, width, height), dedup: null, decoded: null };
  const { features } = start;
  const dedup = start.dedup ?? new Deduplicator(features, config.dedup.thresholds);
  const decoded = start.decoded ?? ports.media.decodeFrames(decodeRequest);
  if (recorded.length > 0) ports.log.info({ job: job.id, startFrame: recorded.length, decodeFrom: start.from, total }, 'resuming extraction');
  const points = new ResumePoints(files.point, features, { video: job.id, width, height });
  const stopReason = watchStop(decoded, ports, () => {
    output.stopRecording();
    void points.close();
  });
  // On a timer, not per frame: a decode that stalls still leaves its latest point saved.
  const saver = setInterval(() => void points.save().catch((error: unknown) => ports.log.warn({ err: error }, 'could not save a resume point')), PROGRESS_SAVE_MS);
  let frame = start.from;
  let lastSave = Date.now();
  try {
    for await (const { rgb, features: frameFeatures } of framesWithFeatures(decoded.frames, width, height, threads, buffers)) {
      // Frames decoded before ffmpeg stopped still arrive; not one more is decided (the feature file) or written.
      if (stopReason.get() === HANDED_OVER) throw new ExtractionStopped();
      if (frame < recorded.length) {
        dedup.replay(recorded[frame]!, frameFeatures);
        buffers.release(rgb);
      } else {
        await output.submit(dedup.decide(frame, frameFeatures), { rgb, width, height }, () => buffers.release(rgb));
      }
      frame += 1;
      points.capture(dedup.state(frame));
      points.recorded(recorded.length + output.committed);
      if (Date.now() - lastSave >= PROGRESS_SAVE_MS) {
        lastSave = Date.now();
        const done = recorded.length + output.committed;
        saveInBackground(ports, (target) => {
          target.extract = { ...target.extract!, framesDone: done, ...summary(output.totals) };
          target.progress = { done, total };
        });
      }
    }
    await decoded.done;
    await output.finish();
    if (stopReason.get() === HANDED_OVER) throw new ExtractionStopped();
  } catch (error) {
    decoded.stop();
    if (stopReason.get() === HANDED_OVER) {
      await output.abandon();
      return { kind: 'interrupted' };
    }
    await output.salvage();
    await removeTemporaryFiles(videoDir);
    const reason = stopReason.get() ?? lowSpaceFrom(error);
    if (reason && reason !== 'interrupted') {
      // Out of space, the feature file (up to gigabytes) is given back: the ledger must still be able to record the pause.
      // The restart then decodes from frame 0.
      await points.close();
      await removeResumeFiles(files).catch(() => undefined);
      return pauseForSpace(reason, ports);
    }
    points.recorded(recorded.length + output.committed);
    await points.save().catch((saveError: unknown) => ports.log.warn({ err: saveError }, 'could not save where extraction stopped; it will resume from an earlier point'));
    if (reason === 'interrupted') return { kind: 'interrupted' };
    const said = error instanceof Error ? error.message : String(error);
    throw new CelforgeError('EXTRACT_FAILED', `${job.source}: extracting frames failed (${said})`, { file: job.source, cause: error });
  } finally {
    clearInterval(saver);
    await points.close();
    stopReason.dispose();
    features.close();
    if (stopReason.get() !== HANDED_OVER) await ports.save((target) => void (target.extract && (target.extract.pid = null)));
  }
  // The resume files may be the new owner's by now.
  if (claimLost(ports.signal)) return { kind: 'interrupted' };
  await removeResumeFiles(files);
  return finish(job, layout, recorded.length + output.committed, output.totals, config.dedup.policy);
}

interface ResumeFiles {
  features: string;
  point: string;
}

/** Kept in the library's temporary folder while the video is unfinished, named by its content fingerprint. */
function resumeFiles(job: Job, library: string): ResumeFiles {
  return { features: path.join(tempDir(library), `features-${job.id}.bin`), point: path.join(tempDir(library), `resume-${job.id}.v8`) };
}

/** A save cut short by a crash leaves its temporary file (replaceFileDurably names it after the point). */
async function removePartialResumePoints(files: ResumeFiles): Promise<void> {
  const base = path.basename(files.point);
  const names = await readdir(path.dirname(files.point)).catch(() => []);
  await Promise.all(names.filter((name) => name.startsWith(`${base}.`) && name.endsWith('.tmp')).map((name) => rm(path.join(path.dirname(files.point), name), { force: true })));
}

async function removeResumeFiles(files: ResumeFiles): Promise<void> {
  await rm(files.features, { force: true });
  await ResumePoints.remove(files.point);
}

interface SeekStart {
  /** The first frame the decode gives out. */
  from: number;
  features: FeatureFile;
  dedup: Deduplicator;
  decoded: DecodedFrames;
}

/**
 * Continues from the last saved resume point: its dedup state, the drawings in the feature
 * file, and a decode that seeks to its frame. Null (with a log line saying why) when any of
 * them is missing or does not agree with the frame map; then the video is decoded from frame 0
 * and the recorded decisions replayed, as before resume points.
 */
async function resumeBySeeking(job: Job, ports: StagePorts, files: ResumeFiles, recorded: readonly FrameRecord[], request: Omit<DecodeRequest, 'seek'>): Promise<SeekStart | null> {
  const fromStart = (why: string) => {
    ports.log.info({ job: job.id, why }, 'resuming extraction by decoding from frame 0');
    return null;
  };
  try {
    return await seekToResumePoint(job, ports, files, recorded, request, fromStart);
  } catch (error) {
    return fromStart(error instanceof Error ? error.message : String(error));
  }
}

async function seekToResumePoint(
  job: Job, ports: StagePorts, files: ResumeFiles, recorded: readonly FrameRecord[], request: Omit<DecodeRequest, 'seek'>, fromStart: (why: string) => null,
): Promise<SeekStart | null> {
  const { width, height } = job.probe!;
  const state = await ResumePoints.load(files.point, { video: job.id, width, height });
  if (typeof state === 'string') return fromStart(state);
  if (state.frame > recorded.length) return fromStart(`the resume point (frame ${state.frame}) is past the frame map (${recorded.length} frames)`);
  if (state.frame >= job.probe!.frameCount) return fromStart('the resume point is at the end of the video');
  const drawings = drawingFrames(recorded, state.frame);
  if (drawings.length !== state.drawings) return fromStart(`the frame map has changed since the resume point (${drawings.length} drawings before frame ${state.frame}, ${state.drawings} then)`);
  const features = FeatureFile.reopen(files.features, width, height, state.drawings);
  if (typeof features === 'string') return fromStart(features);
  let started: SeekStart | null = null;
  try {
    const heads = features.heads(state.drawings);
    if (heads.some((head, i) => head.frame !== drawings[i])) return fromStart('the feature file does not match the frame map');
    const grid = frameGridOf(await ports.media.frameTiming(job.source));
    if (typeof grid === 'string') return fromStart(`seeking cannot be trusted on this video: ${grid}`);
    const dedup = Deduplicator.resume(features, heads, state, ports.config().dedup.thresholds);
    const seek = await decodeFromFrame(ports.media, request, grid, state.frame);
    if (seek.kind === 'untrusted') return fromStart(`seeking cannot be trusted on this video: ${seek.why}`);
    started = { from: state.frame, features, dedup, decoded: seek.decoded };
    return started;
  } finally {
    if (!started) features.close();
  }
}

/**
 * The frames before `end` that were the first of their drawing, as Deduplicator.replay
 * counts them: kept or rejected frames, and a duplicate whose original is not among them.
 */
function drawingFrames(recorded: readonly FrameRecord[], end: number): number[] {
  const drawings = new Set<number>();
  const frames: number[] = [];
  for (const record of recorded.slice(0, end)) {
    if (record.status !== 'duplicate' || !drawings.has(record.duplicateOf!)) {
      drawings.add(record.frame);
      frames.push(record.frame);
    }
  }
  return frames;
}

async function finish(job: Job, layout: VideoLayout, framesDone: number, totals: OutputTotals, policy: string): Promise<StageResult> {
  const report = {
    video: job.source,
    series: job.series,
    episode: job.episode,
    policy,
    frames: framesDone,
    ...summary(totals),
    bytesByKind: totals.bytes,
  };
  await writeFile(layout.report, `${JSON.stringify(report, null, 2)}\n`);
  return {
    kind: 'done',
    change: (target) => {
      target.extract = { ...target.extract!, framesDone, ...summary(totals), pid: null };
      target.progress = { done: framesDone, total: target.probe!.frameCount };
    },
  };
}

function summary(totals: OutputTotals) {
  const { kept, duplicates, scenes, bytes } = totals;
  return { kept, duplicates, scenes, bytesWritten: bytes.frames + bytes.duplicates + bytes.previews };
}

function totalsOf(records: readonly FrameRecord[]): OutputTotals {
  const totals: OutputTotals = { kept: 0, duplicates: 0, scenes: 0, bytes: { frames: 0, duplicates: 0, previews: 0 } };
  for (const record of records) countRecord(totals, record);
  return totals;
}

/**
 * The recorded frames, minus any of the newest whose files a power cut lost
 * (the map line was written after the file, but the OS may flush them in
 * another order).
 */
async function verifiedRecords(layout: VideoLayout): Promise<FrameRecord[]> {
  const records = await readFrameMap(layout.frameMap);
  let keep = records.length;
  for (let i = Math.max(0, records.length - RECORDS_VERIFIED_AT_RESUME); i < records.length; i += 1) {
    const file = records[i]!.file ?? records[i]!.preview;
    if (file && !existsSync(path.join(layout.library, file))) {
      keep = i;
      break;
    }
  }
  if (keep < records.length) await rewriteFrameMap(layout.frameMap, records.slice(0, keep));
  return records.slice(0, keep);
}

async function removeTemporaryFiles(dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  const partial = entries.filter((entry) => entry.isFile() && entry.name.endsWith('.tmp'));
  await Promise.all(partial.map((entry) => rm(path.join(entry.parentPath, entry.name), { force: true })));
  return partial.length;
}

type StopReason = 'interrupted' | typeof HANDED_OVER | string;

/** Whether the signal was aborted because another process owns the work now. */
function claimLost(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason instanceof CelforgeError && signal.reason.code === 'CLAIM_LOST';
}

/**
 * Stops ffmpeg when the daemon shuts down, free space falls under the reserve, or another process owns the video
 * now, and says which; the last one wins over the others and calls `onHandedOver` at once.
 */
function watchStop(decoded: DecodedFrames, ports: StagePorts, onHandedOver: () => void) {
  let reason: StopReason | null = null;
  const stop = (why: StopReason) => {
    reason ??= why;
    decoded.stop();
  };
  const onAbort = () => {
    if (!claimLost(ports.signal)) return stop('interrupted');
    reason = HANDED_OVER;
    onHandedOver();
    decoded.stop();
  };
  ports.signal.addEventListener('abort', onAbort);
  if (ports.signal.aborted) onAbort();
  const monitor = setInterval(async () => {
    const low = await spaceBelowReserve(ports).catch(() => null);
    if (low) stop(low);
  }, ports.config().disk.checkIntervalSeconds * 1000);
  return {
    get: () => reason,
    dispose: () => {
      clearInterval(monitor);
      ports.signal.removeEventListener('abort', onAbort);
    },
  };
}

function lowSpaceFrom(error: unknown): string | null {
  if (error instanceof ExtractionStopped) return null;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || (error instanceof FfmpegFailure && /no space left on device/i.test(error.stderr))) {
    return 'the library volume is full (no space left on device)';
  }
  return null;
}

async function spaceBelowReserve({ config, disk }: StagePorts): Promise<string | null> {
  const { library, disk: settings } = config();
  const free = await disk.freeBytes(library);
  return free < settings.reserve ? `${formatSize(free)} free on ${library}, under the ${formatSize(settings.reserve)} reserve` : null;
}

function pauseForSpace(reason: string, ports: StagePorts, change?: (job: Job) => void): StageResult {
  return { kind: 'wait', state: 'paused-disk-low', retryAfterMs: ports.config().disk.checkIntervalSeconds * 1000, reason, change };
}

/** The configured hardware decoder if it works on this file, else software with one log line. */
async function chooseHwaccel(job: Job, ports: StagePorts): Promise<string> {
  const wanted = ports.config().extract.hwaccel;
  if (wanted === 'none') return 'none';
  if (await ports.media.hwaccelWorks(job.source, wanted)) return wanted;
  ports.log.warn({ job: job.id, hwaccel: wanted }, `hardware decoding (${wanted}) is not available here; decoding in software`);
  return 'none';
}

/** Progress is informational (the frame map is the truth): a failed write is logged, not fatal. */
function saveInBackground(ports: StagePorts, change: (job: Job) => void): void {
  ports.save(change).catch((error: unknown) => ports.log.warn({ err: error }, 'could not record extraction progress'));
}
