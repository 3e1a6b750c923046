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
import type { FrameTiming, MediaRepository } from '../adapters/media.ts';

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
  const offset = frame / grid.fps;
  let why = '';
  for (const margin of [SEEK_MARGIN_SECONDS, SEEK_MARGIN_SECONDS * 4]) {
    const seekSeconds = Math.max(0, offset - margin);
    const ptsSeconds = grid.origin + offset;
    const decoded = await media.decodeFrameAt({ input, ...size, seekSeconds, ptsSeconds, fps: grid.fps });
    const numbers = decoded.shown.map((pts) => (pts - grid.origin) * grid.fps);
    const offGrid = numbers.find((n) => Math.abs(n - Math.round(n)) > 0.25);
    if (offGrid !== undefined) return { kind: 'untrusted', why: `a frame's pts (${(offGrid / grid.fps + grid.origin).toFixed(6)} s) is off the ${grid.fps} fps grid` };
    // A stretch at a lower rate (every other grid point) sits on the grid too, but skips numbers.
    const sorted = numbers.map(Math.round).sort((a, b) => a - b);
    const gap = sorted.findIndex((n, i) => i > 0 && n !== sorted[i - 1]! + 1);
    if (gap > 0) return { kind: 'untrusted', why: `the frames decoded skip from frame ${sorted[gap - 1]} to ${sorted[gap]} on the ${grid.fps} fps grid` };
    if (numbers.length === 0 || Math.round(numbers[0]!) > frame) {
      why = `the seek to ${seekSeconds.toFixed(3)} s landed after frame ${frame}`;
      continue;
    }
    if (!decoded.rgb) return { kind: 'untrusted', why: `no frame had the pts of frame ${frame}` };
    return { kind: 'found', rgb: decoded.rgb, decoded: numbers.length };
  }
  return { kind: 'untrusted', why };
}

function parseRate(rate: string): number {
  const [num, den] = rate.split('/').map(Number);
  return den ? num! / den : Number(num) || 0;
}
