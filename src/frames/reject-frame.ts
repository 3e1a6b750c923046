/**
 * A pipeline frame taken out of the dataset (`reject`) or back in
 * (`unreject`) is recorded in its video's frame map, so that `frames --json`
 * and the review page's dedup view show where the file is: status
 * `rejected` with its path in the trash, or `kept` at its place again.
 * The video is found from the frame's own path (`<video dir>/frames/<scene
 * folder>/<file>`, the layout's keptFile), so a frame whose map records
 * something else (a restore, another video) is left alone.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { readFrameMap, rewriteFrameMap } from '../adapters/frame-map-file.ts';
import { acquireLock } from '../adapters/lock-file.ts';
import { videoLayout, type VideoLayout } from '../daemon/library-paths.ts';

export interface MovedFrame {
  frame: number | null;
  source: string | null;
  /** Where the frame is kept when it is in the dataset, relative to the library. */
  keptPath: string;
  /** Its place in the trash, relative to the library. */
  trashPath: string;
}

export async function recordFrameRejected(library: string, moved: MovedFrame): Promise<void> {
  await updateRecord(library, moved, 'rejected', moved.trashPath);
}

export async function recordFrameKept(library: string, moved: MovedFrame): Promise<void> {
  await updateRecord(library, moved, 'kept', moved.keptPath);
}

async function updateRecord(library: string, moved: MovedFrame, status: 'kept' | 'rejected', file: string): Promise<void> {
  const layout = layoutOfKeptFile(library, moved.keptPath);
  if (!layout || moved.frame === null) return;
  const lock = await acquireLock(layout.lock, status === 'kept' ? 'unreject' : 'reject', `${moved.source ?? layout.dir}: its frames`);
  try {
    const records = await readFrameMap(layout.frameMap);
    const record = records[moved.frame];
    if (!record || (record.status !== 'kept' && record.status !== 'rejected')) return;
    if (record.file !== moved.keptPath && record.file !== moved.trashPath) return;
    if (record.status === status && record.file === file) return;
    record.status = status;
    record.file = file;
    await rewriteFrameMap(layout.frameMap, records);
  } finally {
    await lock.release();
  }
}

/** The video a kept frame's path belongs to (`<video dir>/frames/scene-NNNN/<file>`), when it has a frame map; else null. */
function layoutOfKeptFile(library: string, keptPath: string): VideoLayout | null {
  const parts = keptPath.split(/[\\/]/);
  const dir = parts.slice(0, -3);
  if (dir.length === 0 || parts.at(-3) !== 'frames' || !/^scene-\d+$/.test(parts.at(-2)!)) return null;
  const layout = videoLayout(library, path.join(...dir.slice(0, -1)), dir.at(-1)!);
  return existsSync(layout.frameMap) ? layout : null;
}
