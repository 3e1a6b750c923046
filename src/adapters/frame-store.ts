/**
 * Extracted frames on disk: their names, which of them are complete, and
 * cleaning what an interrupted ffmpeg left behind. Frame N of a video is
 * `<series>_<episode>_<N, 6 digits>.<ext>`; ffmpeg writes each one to
 * `<name>.tmp` and renames it (image2 `-atomic_writing`), so a final name is a
 * whole file unless a power cut lost data the OS had not flushed yet, which
 * the end-of-file check catches.
 */
import { open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';

const FRAME_DIGITS = 6;
const PNG_END = Buffer.from([0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);
/** The newest frames are the ones a power cut may have left short. */
const FRAMES_VERIFIED_AT_RESUME = 16;

export interface FrameSet {
  dir: string;
  prefix: string;
  ext: string;
}

export function frameFileName(set: FrameSet, frame: number): string {
  return `${set.prefix}${String(frame).padStart(FRAME_DIGITS, '0')}.${set.ext}`;
}

/** The image2 pattern for ffmpeg; `%` in names is doubled so only the frame number is substituted. */
export function frameOutputPattern(set: FrameSet): string {
  return path.join(set.dir, `${set.prefix.replaceAll('%', '%%')}%0${FRAME_DIGITS}d.${set.ext}`);
}

/** Frame numbers of the final (not temporary) frame files present, sorted. */
export async function listFrames(set: FrameSet): Promise<number[]> {
  const names = await readdir(set.dir).catch(() => [] as string[]);
  const suffix = `.${set.ext}`;
  const frames: number[] = [];
  for (const name of names) {
    if (!name.startsWith(set.prefix) || !name.endsWith(suffix)) continue;
    const digits = name.slice(set.prefix.length, -suffix.length);
    if (/^\d+$/.test(digits)) frames.push(Number(digits));
  }
  return frames.sort((a, b) => a - b);
}

/** Removes the temporary files of an interrupted write. Returns how many. */
export async function removePartialFrames(set: FrameSet): Promise<number> {
  const names = await readdir(set.dir).catch(() => [] as string[]);
  const partial = names.filter((name) => name.startsWith(set.prefix) && name.endsWith('.tmp'));
  await Promise.all(partial.map((name) => rm(path.join(set.dir, name), { force: true })));
  return partial.length;
}

/**
 * How many frames, counted from 0 without a gap, are complete. A frame that
 * fails the end-of-file check is removed, with every frame after it.
 */
export async function countCompleteFrames(set: FrameSet): Promise<number> {
  const frames = await listFrames(set);
  let count = 0;
  while (count < frames.length && frames[count] === count) count += 1;
  for (let frame = Math.max(0, count - FRAMES_VERIFIED_AT_RESUME); frame < count; frame += 1) {
    if (!(await isCompleteImage(path.join(set.dir, frameFileName(set, frame)), set.ext))) {
      await removeFramesFrom(set, frame, frames);
      return frame;
    }
  }
  return count;
}

export async function bytesOfFrames(set: FrameSet): Promise<number> {
  let total = 0;
  for (const frame of await listFrames(set)) {
    total += (await stat(path.join(set.dir, frameFileName(set, frame)))).size;
  }
  return total;
}

async function removeFramesFrom(set: FrameSet, first: number, frames: number[]): Promise<void> {
  for (const frame of frames) {
    if (frame >= first) await rm(path.join(set.dir, frameFileName(set, frame)), { force: true });
  }
}

async function isCompleteImage(file: string, ext: string): Promise<boolean> {
  const handle = await open(file, 'r').catch(() => null);
  if (!handle) return false;
  try {
    const { size } = await handle.stat();
    if (ext !== 'png') return size > 0;
    if (size < PNG_END.length) return false;
    const tail = Buffer.alloc(PNG_END.length);
    await handle.read(tail, 0, tail.length, size - tail.length);
    return tail.equals(PNG_END);
  } finally {
    await handle.close();
  }
}
