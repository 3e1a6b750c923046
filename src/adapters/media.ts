/**
 * The only code that runs ffmpeg and ffprobe (through fluent-ffmpeg, with
 * argument arrays, never a shell). Probing, integrity of a file's end, sample
 * frames and the full frame extraction.
 */
import { existsSync } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';
import type { VideoInfo } from '../daemon/job.ts';
import type { FfmpegBinaries } from './ffmpeg-binaries.ts';

/**
 * What an H.264 decoder says when it starts mid-stream after a seek: the
 * frames whose references came before the seek point. A sound file says it
 * too. (Frame threads print it out of order, so its position cannot tell.)
 */
const SEEK_START_NOISE =
  /co located POCs unavailable|mmco: unref short failure|reference picture missing|Missing reference picture|Last message repeated|illegal short term buffer state|decode_slice_header error|non-existing PPS|no frame!/i;
const DECODER_COMPLAINT = /^\[(h264|hevc|mpeg2video|vc1|NULL) @ [^\]]+\] /;
const FRAME_SHOWN = /\[Parsed_showinfo_\d+ @ [^\]]+\] n: *\d+ /;
const SHOWINFO_TIME_BASE = /Parsed_showinfo_\d+ @ [^\]]+\] config in time_base: (\d+)\/(\d+)/;
const SHOWINFO_PTS = /Parsed_showinfo_\d+ @ [^\]]+\] n: *\d+ pts: *(-?\d+) /;

export interface DecodeRequest {
  input: string;
  width: number;
  height: number;
  hwaccel: string;
  /** Decode only these frame numbers (restoring single frames); all frames when absent. */
  onlyFrames?: readonly number[];
  /**
   * Start at the keyframe at or before this many seconds after the file's start, keeping the
   * stream's timestamps (-copyts); `onPts` then hears the pts (seconds) of every frame given
   * out, in order, so the caller can tell which frames they are (see decodeFrameAt).
   */
  seek?: { seconds: number; onPts: (pts: number) => void; onEnd: () => void };
  onSpawn?: (pid: number) => void;
  /**
   * Where each frame is decoded into (a FrameBuffers set the caller releases frames back to);
   * a new buffer per frame when absent, for consumers that keep their frames.
   */
  buffers?: FrameBufferSource;
}

/** What a decode takes its frame buffers from (FrameBuffers); a frame a caller drops goes back with `release`. */
export interface FrameBufferSource {
  take(): Buffer;
  release(rgb: Uint8Array): void;
}

/** Frames as ffmpeg decodes them: rgb24, `width * height * 3` bytes each, in decode order. */
export interface DecodedFrames {
  frames: AsyncIterable<Buffer>;
  /** Resolves when ffmpeg has exited cleanly; rejects with FfmpegFailure or ExtractionStopped. */
  done: Promise<void>;
  /** Stops ffmpeg; `done` then rejects with an ExtractionStopped. */
  stop(): void;
}

export interface FrameTiming {
  /** r_frame_rate, as ffprobe gives it ("24000/1001"). */
  frameRate: string;
  averageFrameRate: string;
  /** Seconds; null when no frame could be decoded. */
  firstPts: number | null;
}

export interface SeekDecodeRequest {
  input: string;
  width: number;
  height: number;
  /** Where to seek the input, in seconds after the file's start (ffmpeg adds the file's start_time to -ss). */
  seekSeconds: number;
  /** The wanted frame's pts in seconds. */
  ptsSeconds: number;
  fps: number;
}

export interface SeekDecoded {
  /** The wanted frame in rgb24, or null when no frame had its pts. */
  rgb: Buffer | null;
  /** The pts in seconds of each frame decoded, in order. */
  shown: number[];
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

  /**
   * Decodes the last seconds of the video; returns the decoder's complaints
   * (none for a sound file), less what any decoder says after a seek.
   */
  async tailErrors(file: string, seconds: number, durationSeconds: number): Promise<string[]> {
    const fromEnd = await this.#decodeTail(file, ['-sseof', `-${seconds}`], []);
    if (fromEnd !== null) return fromEnd;
    // Seeking finds no keyframe in a stream with very long GOPs: decode from the start instead (slow, rare).
    const fromStart = await this.#decodeTail(file, [], ['-ss', Math.max(0, durationSeconds - seconds).toFixed(3)]);
    return fromStart ?? ['no frame in the last seconds could be decoded'];
  }

  /** The decoder's complaints (seek noise left out), or null when no frame was decoded. */
  #decodeTail(file: string, inputSeek: string[], outputSeek: string[]): Promise<string[] | null> {
    return new Promise((resolve, reject) => {
      ffmpeg(file, { stdoutLines: 0 })
        .setFfmpegPath(this.binaries.ffmpeg)
        .inputOptions(['-nostdin', '-nostats', '-v', 'info', ...inputSeek])
        .outputOptions([...outputSeek, '-map', '0:v:0', '-vf', 'showinfo', '-f', 'null'])
        .output('-')
        .on('error', (error: Error, _stdout: string | null, stderr: string | null) =>
          reject(new FfmpegFailure(lastLine(stderr || error.message), stderr ?? '')))
        .on('end', (_stdout: string | null, stderr: string | null) => resolve(decoderComplaints(stderr ?? '')))
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

  /**
   * Decodes every frame once and streams it raw. Nothing is dropped or
   * duplicated (-vsync passthrough); frame numbers are decode order from 0.
   */
  decodeFrames(request: DecodeRequest): DecodedFrames {
    let stopped = false;
    const command = this.command(request.input);
    const inputOptions = ['-nostdin'];
    if (request.hwaccel !== 'none') inputOptions.push('-hwaccel', request.hwaccel);
    const outputOptions = ['-map', '0:v:0', '-vsync', 'passthrough', '-pix_fmt', 'rgb24', '-f', 'rawvideo'];
    if (request.onlyFrames?.length) {
      const wanted = request.onlyFrames.map((frame) => `eq(n\\,${frame})`).join('+');
      outputOptions.push('-vf', `select=${wanted}`);
    }
    const { seek } = request;
    if (seek) {
      inputOptions.push('-v', 'info', '-nostats', '-noaccurate_seek', '-ss', seek.seconds.toFixed(6), '-copyts');
      outputOptions.push('-vf', 'showinfo');
      onShownPts(command, seek.onPts);
      command.on('end', () => seek.onEnd());
      command.on('error', () => seek.onEnd());
    }
    command.inputOptions(inputOptions).outputOptions(outputOptions);
    const stream = ffmpegOutput(request.width * request.height * 3);
    const done = new Promise<void>((resolve, reject) => {
      command
        .on('start', () => {
          const pid = (command as unknown as { ffmpegProc?: { pid?: number } }).ffmpegProc?.pid;
          if (pid) request.onSpawn?.(pid);
        })
        .on('error', (error: Error, _stdout: string | null, stderr: string | null) => {
          const failure = stopped ? new ExtractionStopped() : new FfmpegFailure(firstErrorLine(stderr) ?? error.message, stderr ?? '');
          stream.destroy(failure);
          reject(failure);
        })
        .on('end', () => resolve());
    });
    command.pipe(stream, { end: true });
    done.catch(() => undefined);
    const stop = () => {
      stopped = true;
      command.kill('SIGKILL');
    };
    return { frames: framesOf(stream, request.width * request.height * 3, request.buffers, stop), done, stop };
  }

  /**
   * The timing that frame numbers map to: the stream's nominal and average
   * rates (equal for a constant-rate stream) and the pts of frame 0, the
   * first frame a full decode gives out. Frame 0 is decoded rather than read
   * from the stream's start_time because a stream that opens mid-GOP (a
   * Blu-ray cut) has leading frames that are never shown: start_time is
   * theirs, not frame 0's.
   */
  async frameTiming(file: string): Promise<FrameTiming> {
    const data = await new Promise<ffmpeg.FfprobeData>((resolve, reject) => {
      this.command(file).ffprobe(['-select_streams', 'v:0'], (error: Error | null, probed: ffmpeg.FfprobeData) =>
        error ? reject(new FfmpegFailure(lastLine(error.message), error.message)) : resolve(probed));
    });
    const video = data.streams.find((stream) => stream.codec_type === 'video');
    const first = await this.#showFrames(this.command(file).inputOptions(['-nostdin', '-v', 'info', '-copyts']).outputOptions(['-frames:v', '1']));
    return {
      frameRate: video?.r_frame_rate ?? '0/0',
      averageFrameRate: video?.avg_frame_rate ?? '0/0',
      firstPts: first[0] ?? null,
    };
  }

  /**
   * Decodes one frame by seeking: the input is seeked (keyframe-accurate,
   * fast) to `seekSeconds` after the file's start, timestamps are kept
   * (-copyts), and the frame whose pts is within half a frame of
   * `ptsSeconds` is given out, after which ffmpeg stops. `shown` is the pts
   * (in seconds) of every frame decoded on the way, so the caller can check
   * where the seek landed and that the pts follow the frame grid.
   * ffmpeg adds the file's start_time to an input -ss, seeks to a keyframe at
   * or before it, and with -copyts keeps the demuxer's pts (ts_offset 0):
   * FFmpeg/FFmpeg fftools/ffmpeg_demux.c, ifile_open (commit 007ec49db8f3),
   * `timestamp += ic->start_time`, `avformat_seek_file(ic, -1, INT64_MIN,
   * seek_timestamp, seek_timestamp, 0)` and `f->ts_offset = o->input_ts_offset
   * - (copy_ts ? ... : timestamp)`. A transport stream's seek can still land
   * past the point (seen: 0.6 s), which is why `shown` is checked.
   */
  async decodeFrameAt(request: SeekDecodeRequest): Promise<SeekDecoded> {
    const frameBytes = request.width * request.height * 3;
    const chunks: Buffer[] = [];
    const command = this.command(request.input)
      // -noaccurate_seek: every frame decoded after the seek point reaches showinfo, none is trimmed unseen.
      .inputOptions(['-nostdin', '-v', 'info', '-noaccurate_seek', '-ss', request.seekSeconds.toFixed(6), '-copyts'])
      .outputOptions([
        '-vf', `showinfo,select=lt(abs(t-${request.ptsSeconds.toFixed(6)})\\,${(0.5 / request.fps).toFixed(6)})`,
        '-frames:v', '1', '-pix_fmt', 'rgb24',
      ]);
    const shown = await this.#showFrames(command, 'rawvideo', (chunk) => chunks.push(chunk));
    const rgb = Buffer.concat(chunks);
    return { rgb: rgb.length === frameBytes ? rgb : null, shown };
  }

  /** Runs a decode with showinfo; the pts (seconds) of each frame it shows. */
  #showFrames(command: ffmpeg.FfmpegCommand, format = 'null', onData?: (chunk: Buffer) => void): Promise<number[]> {
    const shown: number[] = [];
    const hasFilter = onData !== undefined;
    command.outputOptions(['-map', '0:v:0', '-vsync', 'passthrough', ...(hasFilter ? [] : ['-vf', 'showinfo']), '-f', format]);
    onShownPts(command, (pts) => shown.push(pts));
    return new Promise((resolve, reject) => {
      command.on('error', (error: Error, _stdout: string | null, stderr: string | null) =>
        reject(new FfmpegFailure(firstErrorLine(stderr) ?? error.message, stderr ?? '')));
      if (onData) {
        const sink = ffmpegOutput();
        sink.on('data', onData);
        // Resolves once ffmpeg has exited and every byte it wrote has been read.
        const drained = new Promise((ended) => sink.on('end', ended));
        command.on('end', () => void drained.then(() => resolve(shown)));
        command.pipe(sink, { end: true });
      } else {
        command.on('end', () => resolve(shown));
        command.output('-').run();
      }
    });
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

/**
 * A stream for ffmpeg's stdout that never emits 'close'. On a 'close' fluent-ffmpeg gives ffmpeg
 * 20 ms to exit, then reports "Output stream closed" and kills it (fluent-ffmpeg 2.1.3,
 * lib/processor.js:481-491; reported upstream as fluent-ffmpeg#1135 and #1171, open); on a busy
 * machine that failed decodes that had read every frame. Without it the process's own exit
 * decides how a run ended.
 */
function ffmpegOutput(highWaterMark?: number): PassThrough {
  return new PassThrough({ highWaterMark, emitClose: false });
}

/**
 * Hears the pts, in seconds, of each frame showinfo logs. Its time base is logged once, when the
 * filter is configured, before any frame.
 */
function onShownPts(command: ffmpeg.FfmpegCommand, onPts: (pts: number) => void): void {
  let timeBase = 0;
  command.on('stderr', (line: string) => {
    const config = SHOWINFO_TIME_BASE.exec(line);
    if (config) timeBase = Number(config[1]) / Number(config[2]);
    const frame = SHOWINFO_PTS.exec(line);
    if (frame) onPts(Number(frame[1]) * timeBase);
  });
}

/** The decoder's complaints, or null when it decoded no frame at all. */
function decoderComplaints(stderr: string): string[] | null {
  const lines = stderr.split('\n').map((line) => line.trim());
  if (!lines.some((line) => FRAME_SHOWN.test(line))) return null;
  return lines.filter((line) => DECODER_COMPLAINT.test(line) && !SEEK_START_NOISE.test(line));
}

/**
 * Cuts a byte stream into frames of `frameBytes`, copying each chunk once into a buffer from `buffers`.
 * A reader that leaves before the end stops the decoder (`stop`), which would otherwise wait on a full pipe.
 */
async function* framesOf(stream: Readable, frameBytes: number, buffers: FrameBufferSource | undefined, stop: () => void): AsyncGenerator<Buffer> {
  const next = buffers ? () => buffers.take() : () => Buffer.allocUnsafe(frameBytes);
  let frame: Buffer | null = null;
  let filled = 0;
  let readToEnd = false;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let offset = 0;
      while (offset < chunk.length) {
        // Taken only when bytes arrive for it: a buffer taken at the end of the stream would never be released.
        frame ??= next();
        const take = Math.min(frameBytes - filled, chunk.length - offset);
        chunk.copy(frame, filled, offset, offset + take);
        filled += take;
        offset += take;
        if (filled === frameBytes) {
          yield frame;
          frame = null;
          filled = 0;
        }
      }
    }
    readToEnd = true;
  } finally {
    if (!readToEnd) stop();
  }
}

function emptyInfo(): VideoInfo {
  return { frameCount: 0, fps: 0, frameRate: '0/1', durationSeconds: 0, width: 0, height: 0, codec: 'none', streams: [] };
}

/** A rate as ffprobe writes it ("24000/1001", "25") in frames per second; 0 when unreadable. */
export function parseRate(rate: string): number {
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
