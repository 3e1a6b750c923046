/**
 * A long anime-like clip for bench/long-clip.bench.ts: `frames` frames
 * (100k by default, a film's worth at a low resolution) of flat-colour cels
 * from test/fixtures/anime-clip.ts, held on 2s and 3s, long holds and
 * blinks, a cut every 2 to 6 s, shots that return after cuts, with
 * light temporal grain. Encoded as a Blu-ray's is for what the extractor
 * must get right across seeks: H.264 with B-frames and a 2 s GOP in a BDAV
 * .m2ts whose timestamps start past 600 s.
 *
 * The drawing of each frame is known (numbered by first appearance of its
 * clean bytes), so the bench can check every duplicate link. The clip and its
 * metadata are cached in the system temp folder, keyed on the spec and
 * GENERATOR_VERSION.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveFfmpegBinaries } from '../src/adapters/ffmpeg-binaries.ts';
import { pipeFramesToFfmpeg } from '../test/fixtures/pipe-to-ffmpeg.ts';
import {
  gesture, makeComposition, mulberry32, Renderer, REST, still,
  type Cel, type Composition, type Framing, type Pose, type Rng, type Size,
} from '../test/fixtures/anime-clip.ts';

export interface LongClipSpec {
  frames: number;
  width: number;
  height: number;
  /** ffmpeg noise alls=, 0 to 100. */
  grain: number;
  seed: number;
}

export interface LongClip {
  file: string;
  frameCount: number;
  /** Drawing id per frame, numbered by first appearance. */
  drawings: number[];
  /** First frame of each shot. */
  shots: number[];
  uniqueDrawings: number;
  /** Frames that ffprobe -count_frames decodes (must equal frameCount). */
  countedFrames: number;
}

// Bump when a change here changes the frames or the metadata.
const GENERATOR_VERSION = 3;
const FPS = '24000/1001';
/** 2 s at 23.976 fps. */
const GOP = 48;
/**
 * Issue 15 asks for an .m2ts whose timestamps do not start at zero, as a
 * disc's do; 600 s as in bench/restore.bench.ts. -output_ts_offset is a muxer
 * option of type duration (FFmpeg libavformat/options_table.h,
 * "output_ts_offset"); -mpegts_m2ts_mode 1 writes 192-byte BDAV packets
 * (libavformat/mpegtsenc.c, "mpegts_m2ts_mode").
 */
const TS_OFFSET_SECONDS = 600;
const cacheDir = path.join(os.tmpdir(), 'celforge-bench-v1');

export async function makeLongClip(spec: LongClipSpec): Promise<LongClip> {
  mkdirSync(cacheDir, { recursive: true });
  const stem = path.join(cacheDir, `long-${spec.frames}f-${spec.width}x${spec.height}-grain${spec.grain}-seed${spec.seed}-gen${GENERATOR_VERSION}`);
  const file = `${stem}.m2ts`;
  const metaFile = `${stem}.json`;
  if (existsSync(file) && existsSync(metaFile)) return { ...(JSON.parse(readFileSync(metaFile, 'utf8')) as LongClip), file };

  const size: Size = { width: spec.width, height: spec.height };
  const shots: number[] = [];
  const drawings: number[] = [];
  const ids = new Map<string, number>();
  const frames = (function* () {
    for (const cels of planShots(spec.frames, mulberry32(spec.seed))) {
      shots.push(drawings.length);
      // One renderer per shot: its background cache then never outgrows a shot.
      const renderer = new Renderer(size);
      let last: Buffer | undefined;
      let id = -1;
      for (const cel of cels) {
        const clean = renderer.render(cel);
        if (clean !== last) {
          const hash = createHash('sha1').update(clean).digest('hex');
          id = ids.get(hash) ?? ids.size;
          ids.set(hash, id);
          last = clean;
        }
        drawings.push(id);
        yield clean;
      }
    }
  })();

  const partial = `${stem}.${process.pid}.partial.m2ts`;
  try {
    await encode(frames, spec, partial);
    const countedFrames = countFrames(partial);
    const clip: LongClip = { file, frameCount: drawings.length, drawings, shots, uniqueDrawings: ids.size, countedFrames };
    if (countedFrames !== clip.frameCount) throw new Error(`${partial}: ffprobe counts ${countedFrames} frames, ${clip.frameCount} were encoded`);
    renameSync(partial, file);
    writeFileSync(`${metaFile}.partial`, `${JSON.stringify(clip)}\n`);
    renameSync(`${metaFile}.partial`, metaFile);
    return clip;
  } finally {
    rmSync(partial, { force: true });
  }
}

const FRAMINGS: Framing[] = ['medium', 'two-shot', 'close-up', 'wide', 'table', 'medium', 'two-shot'];

/** Shots (a cel per frame) until exactly `total` frames. */
function* planShots(total: number, rng: Rng): Generator<Cel[]> {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
  const between = (low: number, high: number) => low + Math.floor(rng() * (high - low + 1));
  const recent: Cel[][] = [];
  let index = 0;
  let frames = 0;
  while (frames < total) {
    let cels: Cel[];
    if (recent.length > 4 && rng() < 0.2) {
      // A shot that returns after cuts: the very same drawings again, from any point of it.
      const earlier = pick(recent);
      const from = between(0, Math.floor(earlier.length / 2));
      cels = earlier.slice(from, from + between(24, 96));
    } else {
      const framing = pick(FRAMINGS);
      cels = newShot(makeComposition(rng, index++, framing), framing, between(48, 144), rng);
      recent.push(cels);
      if (recent.length > 30) recent.shift();
    }
    cels = cels.slice(0, total - frames);
    frames += cels.length;
    yield cels;
  }
}

/**
 * About `length` frames of one composition: talking on 2s or 3s, a long hold
 * or a blink. No lip flaps, and only holds in wide shots: at this size a
 * mouth or a distant arm is a few pixels, under the grain, and the drawing
 * numbers would then count changes no one can see.
 */
function newShot(comp: Composition, framing: Framing, length: number, rng: Rng): Cel[] {
  const actors = comp.actors.length;
  const posed = (pose: Pose) => still(comp, Array.from({ length: actors }, (_, i) => (i === 0 ? pose : REST)));
  const held = (cel: Cel, frames: number) => Array.from({ length: frames }, () => cel);
  const kind = rng();
  if (kind < 0.2 || framing === 'wide') return held(posed(REST), length);
  if (kind < 0.35) {
    const open = posed(REST);
    const half = posed({ ...REST, eyes: 'half' });
    const closed = posed({ ...REST, eyes: 'closed' });
    const side = Math.max(6, Math.floor((length - 7) / 2));
    return [...held(open, side), ...held(half, 2), ...held(closed, 3), ...held(half, 2), ...held(open, side)];
  }
  // Gestures are distinct for i below 27; a phase per shot keeps shots of one composition apart.
  const onTwos = rng() < 0.4;
  const phase = Math.floor(rng() * 27);
  const cels: Cel[] = [];
  for (let i = 0; cels.length < length; i++) cels.push(...held(posed(gesture((phase + i) % 27)), onTwos ? 2 : 3));
  return cels;
}

async function encode(frames: Iterable<Buffer>, spec: LongClipSpec, out: string): Promise<void> {
  await pipeFramesToFfmpeg(frames, [
    '-v', 'error', '-y',
    '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${spec.width}x${spec.height}`, '-r', FPS, '-i', 'pipe:0',
    // Temporal grain: held drawings differ in pixels, as on a disc.
    '-vf', `noise=alls=${spec.grain}:allf=t:all_seed=${spec.seed}`,
    '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '18', '-g', String(GOP), '-bf', '3', '-pix_fmt', 'yuv420p',
    '-f', 'mpegts', '-mpegts_m2ts_mode', '1', '-output_ts_offset', String(TS_OFFSET_SECONDS),
  ], out);
}

function countFrames(file: string): number {
  const { ffprobe } = resolveFfmpegBinaries();
  const out = execFileSync(ffprobe, ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'json', file], { encoding: 'utf8' });
  return Number((JSON.parse(out) as { streams: { nb_read_frames: string }[] }).streams[0]?.nb_read_frames);
}
