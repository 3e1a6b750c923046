/**
 * extract: every frame decoded once and written losslessly, named
 * `<series>_<episode>_<frame>`. Resumable: it continues from the last complete
 * frame and ends with every frame exactly once. When the library volume falls
 * under the reserve (or fills), ffmpeg is stopped, nothing partial is kept,
 * and the job pauses until space returns; it never fails for that.
 */
import { mkdir } from 'node:fs/promises';
import { FfmpegFailure, ExtractionStopped, type RunningExtraction } from '../adapters/media.ts';
import {
  bytesOfFrames, countCompleteFrames, frameOutputPattern, removePartialFrames, type FrameSet,
} from '../adapters/frame-store.ts';
import { killOrphan } from '../adapters/processes.ts';
import { formatSize } from '../config/size.ts';
import { framesDir } from '../daemon/library-paths.ts';
import type { Job } from '../daemon/job.ts';
import { CelforgeError } from '../errors.ts';
import type { Stage, StagePorts, StageResult } from './stage.ts';

const PROGRESS_SAVE_MS = 2000;

export function frameSetOf(job: Job, library: string, format: string): FrameSet {
  return { dir: framesDir(library, job.series, job.episode), prefix: `${job.series}_${job.episode}_`, ext: format };
}

export const extractStage: Stage = async (job, ports) => {
  const config = ports.config();
  const frames = frameSetOf(job, config.library, config.extract.format);
  await mkdir(frames.dir, { recursive: true });

  const orphan = job.extract?.pid;
  if (orphan && (await killOrphan(orphan, ['ffmpeg', job.source]))) {
    ports.log.warn({ job: job.id, pid: orphan }, 'stopped the ffmpeg left running by a daemon that was killed');
  }
  const removed = await removePartialFrames(frames);
  if (removed) ports.log.info({ job: job.id, removed }, 'removed partial frames of an interrupted extraction');

  const total = job.probe!.frameCount;
  const startFrame = await countCompleteFrames(frames);
  const hwaccel = await chooseHwaccel(job, ports);
  const recordStart = (target: Job) => {
    target.extract = { dir: frames.dir, framesWritten: startFrame, pid: null, hwaccel, bytesWritten: target.extract?.bytesWritten ?? 0 };
    target.progress = { done: startFrame, total };
  };
  if (startFrame >= total) return finish(frames, hwaccel, ports);
  const lowSpace = await spaceBelowReserve(ports);
  if (lowSpace) return pauseForSpace(lowSpace, ports, recordStart);
  await ports.save((target) => {
    recordStart(target);
    target.state = 'running';
  });
  if (startFrame > 0) ports.log.info({ job: job.id, startFrame, total }, 'resuming extraction');

  const run = ports.media.extractFrames({
    input: job.source,
    outputPattern: frameOutputPattern(frames),
    startFrame,
    hwaccel,
    onSpawn: (pid) => saveInBackground(ports, (target) => void (target.extract!.pid = pid)),
    onProgress: throttle((written) => saveInBackground(ports, (target) => {
      target.extract!.framesWritten = startFrame + written;
      target.progress = { done: startFrame + written, total };
    }), PROGRESS_SAVE_MS),
  });
  const outcome = await watchExtraction(run, ports);
  await ports.save((target) => void (target.extract!.pid = null));
  if (outcome.kind === 'finished') return finish(frames, hwaccel, ports);
  await removePartialFrames(frames);
  if (outcome.kind === 'interrupted') return { kind: 'interrupted' };
  return pauseForSpace(outcome.reason, ports);
};

type ExtractionOutcome = { kind: 'finished' } | { kind: 'interrupted' } | { kind: 'low-space'; reason: string };

/** Runs until ffmpeg ends, the daemon shuts down, or free space falls under the reserve. */
async function watchExtraction(run: RunningExtraction, ports: StagePorts): Promise<ExtractionOutcome> {
  let stoppedFor: ExtractionOutcome | null = null;
  const stop = (why: ExtractionOutcome) => {
    stoppedFor ??= why;
    run.stop();
  };
  const onAbort = () => stop({ kind: 'interrupted' });
  ports.signal.addEventListener('abort', onAbort);
  if (ports.signal.aborted) onAbort();
  const monitor = setInterval(async () => {
    const low = await spaceBelowReserve(ports).catch(() => null);
    if (low) stop({ kind: 'low-space', reason: low });
  }, ports.config().disk.checkIntervalSeconds * 1000);
  try {
    await run.done;
    return { kind: 'finished' };
  } catch (error) {
    if (error instanceof ExtractionStopped && stoppedFor) return stoppedFor;
    if (error instanceof FfmpegFailure && /no space left on device/i.test(error.stderr)) {
      return { kind: 'low-space', reason: 'the library volume is full (ffmpeg: No space left on device)' };
    }
    const said = error instanceof Error ? error.message : String(error);
    throw new CelforgeError('EXTRACT_FAILED', `${ports.config().library}: extracting frames failed (ffmpeg: ${said})`, { cause: error });
  } finally {
    clearInterval(monitor);
    ports.signal.removeEventListener('abort', onAbort);
  }
}

async function finish(frames: FrameSet, hwaccel: string, ports: StagePorts): Promise<StageResult> {
  const framesWritten = await countCompleteFrames(frames);
  const bytesWritten = await bytesOfFrames(frames);
  return {
    kind: 'done',
    change: (job) => {
      job.extract = { dir: frames.dir, framesWritten, pid: null, hwaccel, bytesWritten };
      job.progress = { done: framesWritten, total: job.probe!.frameCount };
      if (framesWritten !== job.probe!.frameCount) {
        ports.log.warn({ job: job.id, framesWritten, probed: job.probe!.frameCount }, 'ffmpeg decoded a different number of frames than ffprobe counted packets');
      }
    },
  };
}

async function spaceBelowReserve({ config, disk }: StagePorts): Promise<string | null> {
  const { library, disk: settings } = config();
  const free = await disk.freeBytes(library);
  return free < settings.reserve
    ? `${formatSize(free)} free on ${library}, under the ${formatSize(settings.reserve)} reserve`
    : null;
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

/** Progress is informational (the frames on disk are the truth): a failed write is logged, not fatal. */
function saveInBackground(ports: StagePorts, change: (job: Job) => void): void {
  ports.save(change).catch((error: unknown) => ports.log.warn({ err: error }, 'could not record extraction progress'));
}

function throttle<T>(fn: (value: T) => void, ms: number): (value: T) => void {
  let last = 0;
  return (value) => {
    const now = Date.now();
    if (now - last >= ms) {
      last = now;
      fn(value);
    }
  };
}
