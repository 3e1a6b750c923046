/**
 * The only code that runs ffmpeg and ffprobe (through fluent-ffmpeg, with
 * argument arrays, never a shell). Probing, integrity of a file's end, sample
 * frames and the full frame extraction.
 */
import { existsSync } from 'node:fs';
import ffmpeg from 'fluent-ffmpeg';
import type { VideoInfo } from '../daemon/job.ts';
import type { FfmpegBinaries } from './ffmpeg-binaries.ts';

/**
 * What an H.264 decoder says when it starts mid-stream after a seek (open-GOP
 * B-frames whose references came before the seek point). A sound file says it
 * too, so the tail check ignores it.
 */
const SEEK_START_NOISE =
  /co located POCs unavailable|mmco: unref short failure|reference picture missing|Missing reference picture|Last message repeated|illegal short term buffer state/i;

export interface ExtractRequest {
  input: string;
  /** An image2 pattern with one %06d for the frame number (other % doubled). */
  outputPattern: string;
  /** First frame to write; frames before it are decoded and dropped. */
  startFrame: number;
  hwaccel: string;
  onSpawn?: (pid: number) => void;
  onProgress?: (framesDone: number) => void;
}

export interface RunningExtraction {
  done: Promise<void>;
  /** Stops ffmpeg; `done` then rejects with an ExtractionStopped. */
  stop(): void;
}

export class ExtractionStopped extends Error {
  constructor() {
    super('extraction stopped');
  }
}

export class FfmpegFailure extends Error {
  readonly stderr: string;

  constructor(message: string, stderr: string) {
    super(message);
    this.stderr = stderr;
  }
}

export class MediaRepository {
  readonly binaries: FfmpegBinaries;

  constructor(binaries: FfmpegBinaries) {
    this.binaries = binaries;
  }

  private command(input: string) {
    return ffmpeg(input).setFfmpegPath(this.binaries.ffmpeg).setFfprobePath(this.binaries.ffprobe);
  }

  /** Throws an FfmpegFailure carrying ffprobe's own words when it cannot read the file. */
  probe(file: string): Promise<VideoInfo> {
    return new Promise((resolve, reject) => {
      this.command(file).ffprobe(['-count_packets'], (error: Error | null, data: ffmpeg.FfprobeData) => {
        if (error) return reject(new FfmpegFailure(lastLine(error.message), error.message));
        const video = data.streams.find((stream) => stream.codec_type === 'video');
        const streams = data.streams.map((stream) => ({
          index: stream.index,
          type: stream.codec_type ?? 'unknown',
          codec: stream.codec_name ?? 'unknown',
        }));
        if (!video) return resolve({ ...emptyInfo(), streams });
        const frameRate = video.r_frame_rate && video.r_frame_rate !== '0/0' ? video.r_frame_rate : video.avg_frame_rate ?? '0/1';
        resolve({
          frameCount: Number((video as { nb_read_packets?: string }).nb_read_packets ?? video.nb_frames ?? 0),
          fps: parseRate(frameRate),
          frameRate,
          durationSeconds: Number(data.format.duration ?? video.duration ?? 0),
          width: video.width ?? 0,
          height: video.height ?? 0,
          codec: video.codec_name ?? 'unknown',
          streams,
        });
      });
    });
  }

  /** Decodes the last seconds of the video; returns the decoder's error lines (none for a sound file). */
  tailErrors(file: string, seconds: number): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.command(file)
        .inputOptions(['-nostdin', '-v', 'error', '-sseof', `-${seconds}`])
        .outputOptions(['-map', '0:v:0', '-f', 'null'])
        .output('-')
        .on('error', (error: Error, _stdout: string | null, stderr: string | null) =>
          reject(new FfmpegFailure(lastLine(stderr || error.message), stderr ?? '')))
        .on('end', (_stdout: string | null, stderr: string | null) =>
          resolve((stderr ?? '').split('\n').map((line) => line.trim()).filter((line) => line && !SEEK_START_NOISE.test(line))))
        .run();
    });
  }

  /**
   * Writes one full-size frame at about `seconds` into `outFile`. Seeking the
   * input is fast but finds nothing when no keyframe precedes the point (a
   * short clip with one GOP); then it decodes from the start instead.
   */
  async sampleFrame(file: string, seconds: number, outFile: string): Promise<void> {
    const at = seconds.toFixed(3);
    const output = ['-map', '0:v:0', '-frames:v', '1', '-f', 'image2', '-y'];
    await this.runToEnd(this.command(file).inputOptions(['-nostdin', '-v', 'error', '-ss', at]).outputOptions(output).output(outFile));
    if (existsSync(outFile)) return;
    await this.runToEnd(this.command(file).inputOptions(['-nostdin', '-v', 'error']).outputOptions(['-ss', at, ...output]).output(outFile));
    if (!existsSync(outFile)) throw new FfmpegFailure(`${file}: no frame could be decoded at ${at} s`, '');
  }

  /** True when ffmpeg can decode the first frames of `file` with this hardware decoder. */
  async hwaccelWorks(file: string, hwaccel: string): Promise<boolean> {
    try {
      await this.runToEnd(
        this.command(file)
          .inputOptions(['-nostdin', '-v', 'error', '-hwaccel', hwaccel])
          .outputOptions(['-map', '0:v:0', '-frames:v', '3', '-f', 'null'])
          .output('-'),
      );
      return true;
    } catch {
      return false;
    }
  }

  extractFrames(request: ExtractRequest): RunningExtraction {
    let stopped = false;
    const command = this.command(request.input);
    const inputOptions = ['-nostdin'];
    if (request.hwaccel !== 'none') inputOptions.push('-hwaccel', request.hwaccel);
    const outputOptions = ['-map', '0:v:0', '-vsync', 'passthrough', '-f', 'image2', '-atomic_writing', '1',
      '-start_number', String(request.startFrame)];
    // Frame-exact resume: seeking by time is not exact, so decode from the start and drop what is already written.
    if (request.startFrame > 0) outputOptions.push('-vf', `select=gte(n\\,${request.startFrame})`);
    command.inputOptions(inputOptions).outputOptions(outputOptions).output(request.outputPattern);

    const done = new Promise<void>((resolve, reject) => {
      command
        .on('start', () => {
          const pid = (command as unknown as { ffmpegProc?: { pid?: number } }).ffmpegProc?.pid;
          if (pid) request.onSpawn?.(pid);
        })
        .on('progress', (progress: { frames?: number }) => {
          if (typeof progress.frames === 'number') request.onProgress?.(progress.frames);
        })
        .on('error', (error: Error, _stdout: string | null, stderr: string | null) => {
          if (stopped) reject(new ExtractionStopped());
          else reject(new FfmpegFailure(firstErrorLine(stderr) ?? error.message, stderr ?? ''));
        })
        .on('end', () => resolve())
        .run();
    });
    return {
      done,
      stop: () => {
        stopped = true;
        command.kill('SIGKILL');
      },
    };
  }

  private runToEnd(command: ffmpeg.FfmpegCommand): Promise<void> {
    return new Promise((resolve, reject) => {
      command
        .on('error', (error: Error, _stdout: string | null, stderr: string | null) =>
          reject(new FfmpegFailure(firstErrorLine(stderr) ?? error.message, stderr ?? "")))
        .on('end', () => resolve())
        .run();
    });
  }
}

function emptyInfo(): VideoInfo {
  return { frameCount: 0, fps: 0, frameRate: '0/1', durationSeconds: 0, width: 0, height: 0, codec: 'none', streams: [] };
}

function parseRate(rate: string): number {
  const [num, den] = rate.split('/').map(Number);
  return den ? num! / den : Number(num) || 0;
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((line) => line.trim()).filter(Boolean);
  return lines.at(-1) ?? text;
}

/** ffmpeg's most telling line: the first that reads like an error, else the last. */
function firstErrorLine(stderr: string | null | undefined): string | undefined {
  if (!stderr) return undefined;
  const lines = stderr.split('\n').map((line) => line.trim()).filter(Boolean);
  return lines.find((line) => /error|invalid|no such|denied|no space|failed|cannot|unable/i.test(line)) ?? lines.at(-1);
}
