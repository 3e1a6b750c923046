/**
 * Finding one frame by number without decoding from the start. Frame numbers
 * are the order a full decode gives frames out, from 0; on a constant-rate
 * stream frame n has pts = pts(frame 0) + n / fps. The input is seeked a few
 * seconds before that pts, and every frame decoded from there shows its pts,
 * so the seek is trusted only when it landed before the frame and the pts
 * it saw all sit on the frame grid, one after another. A change of rate or a
 * lost frame before the seek point, far from the frame, cannot be seen this
 * way: the nominal and average rates must agree too. Otherwise (a variable-rate stream, a
 * seek that overshot twice, pts off the grid) the caller decodes from the
 * start, as before.
 */
import { parseRate, type DecodedFrames, type DecodeRequest, type FrameTiming, type MediaRepository } from '../adapters/media.ts';

/** Seconds to seek before the frame: more than a Blu-ray GOP (at most 1 s) and the overshoot of a transport stream's seek (about 0.6 s seen). */
const SEEK_MARGIN_SECONDS = 3;

export type SeekResult =
  | { kind: 'found'; rgb: Buffer; decoded: number }
  | { kind: 'untrusted'; why: string };

export interface FrameGrid {
  fps: number;
  /** The pts of frame 0, in seconds. */
  origin: number;
}

/** The grid frame numbers map to, or why seeking cannot be trusted on this stream. */
export function frameGridOf(timing: FrameTiming): FrameGrid | string {
  const fps = parseRate(timing.frameRate);
  if (!(fps > 0)) return `no frame rate (${timing.frameRate})`;
  if (Math.abs(parseRate(timing.averageFrameRate) - fps) > fps * 1e-3) {
    return `the frame rate varies (nominal ${timing.frameRate}, average ${timing.averageFrameRate})`;
  }
  if (timing.firstPts === null) return 'frame 0 has no timestamp';
  return { fps, origin: timing.firstPts };
}

export async function seekFrame(media: MediaRepository, input: string, size: { width: number; height: number }, grid: FrameGrid, frame: number): Promise<SeekResult> {
  let why = '';
  for (const seekSeconds of seekPoints(grid, frame)) {
    const decoded = await media.decodeFrameAt({ input, ...size, seekSeconds, ptsSeconds: grid.origin + frame / grid.fps, fps: grid.fps });
    const landing = checkLanding(decoded.shown, grid, frame, seekSeconds);
    if (landing.kind === 'after') {
      why = landing.why;
      continue;
    }
    if (landing.kind === 'untrusted') return landing;
    if (!decoded.rgb) return { kind: 'untrusted', why: `no frame had the pts of frame ${frame}` };
    return { kind: 'found', rgb: decoded.rgb, decoded: decoded.shown.length };
  }
  return { kind: 'untrusted', why };
}

export type DecodeFromResult = { kind: 'found'; decoded: DecodedFrames; skipped: number } | { kind: 'untrusted'; why: string };

/**
 * A full decode from `frame` on, by seeking: the frames before it that the
 * seek decodes are read and dropped, and the pts of each (up to `frame`'s)
 * are checked as in seekFrame before anything is given out. From `frame` on
 * every frame ffmpeg gives out follows in order, as in a decode from 0
 * (-vsync passthrough drops and adds none), so their numbers are counted.
 */
export async function decodeFromFrame(media: MediaRepository, request: Omit<DecodeRequest, 'seek' | 'onlyFrames'>, grid: FrameGrid, frame: number): Promise<DecodeFromResult> {
  let why = '';
  for (const seekSeconds of seekPoints(grid, frame)) {
    const shown: number[] = [];
    let heard: () => void = () => {};
    let ended = false;
    const decoded = media.decodeFrames({
      ...request,
      seek: {
        seconds: seekSeconds,
        onPts: (pts) => void (shown.push(pts), heard()),
        onEnd: () => void ((ended = true), heard()),
      },
    });
    const ptsOf = async (k: number): Promise<number | undefined> => {
      while (shown.length <= k && !ended) await new Promise<void>((resolve) => (heard = resolve));
      return shown[k];
    };
    const iterator = decoded.frames[Symbol.asyncIterator]();
    const abandon = () => {
      decoded.stop();
      void iterator.return?.();
    };
    const untrusted = (reason: string) => {
      abandon();
      return { kind: 'untrusted', why: reason } as const;
    };
    const target = grid.origin + frame / grid.fps;
    for (let k = 0; ; k += 1) {
      const next = await iterator.next().catch((error: unknown) => ({ done: true as const, value: error }));
      if (next.done) return untrusted(`the decode from ${seekSeconds.toFixed(3)} s ended before frame ${frame}`);
      const pts = await ptsOf(k);
      if (pts === undefined) return untrusted('ffmpeg did not show the pts of a decoded frame');
      const landing = checkLanding(shown.slice(0, k + 1), grid, frame, seekSeconds);
      if (landing.kind === 'untrusted') return untrusted(landing.why);
      if (landing.kind === 'after') {
        why = landing.why;
        abandon();
        break;
      }
      if (Math.abs(pts - target) * grid.fps < 0.25) {
        return { kind: 'found', skipped: k, decoded: { ...decoded, frames: resumed(next.value, iterator) } };
      }
      request.buffers?.release(next.value);
    }
  }
  return { kind: 'untrusted', why };
}

async function* resumed(first: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield first;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
}

function seekPoints(grid: FrameGrid, frame: number): number[] {
  return [SEEK_MARGIN_SECONDS, SEEK_MARGIN_SECONDS * 4].map((margin) => Math.max(0, frame / grid.fps - margin));
}

type Landing = { kind: 'before' } | { kind: 'after'; why: string } | { kind: 'untrusted'; why: string };

/** Whether the frames a seek decoded (their pts, in order) landed at or before `frame`, on the grid, one after another. */
function checkLanding(shown: readonly number[], grid: FrameGrid, frame: number, seekSeconds: number): Landing {
  const numbers = shown.map((pts) => (pts - grid.origin) * grid.fps);
  const offGrid = numbers.find((n) => Math.abs(n - Math.round(n)) > 0.25);
  if (offGrid !== undefined) return { kind: 'untrusted', why: `a frame's pts (${(offGrid / grid.fps + grid.origin).toFixed(6)} s) is off the ${grid.fps} fps grid` };
  // A stretch at a lower rate (every other grid point) sits on the grid too, but skips numbers.
  const sorted = numbers.map(Math.round).sort((a, b) => a - b);
  const gap = sorted.findIndex((n, i) => i > 0 && n !== sorted[i - 1]! + 1);
  if (gap > 0) return { kind: 'untrusted', why: `the frames decoded skip from frame ${sorted[gap - 1]} to ${sorted[gap]} on the ${grid.fps} fps grid` };
  if (numbers.length === 0 || Math.round(numbers[0]!) > frame) return { kind: 'after', why: `the seek to ${seekSeconds.toFixed(3)} s landed after frame ${frame}` };
  return { kind: 'before' };
}
