/**
 * A person's correction of dedup: a kept frame is really a repeat of another
 * kept frame. Its file moves to duplicates/ (never deleted; `restore` brings
 * it back), the frame map records it as a duplicate of that frame, and the
 * catalog marks the image rejected at its new place, so it leaves the dataset.
 */
import path from 'node:path';
import type { Catalog } from '../adapters/catalog-store.ts';
import { readFrameMap, rewriteFrameMap } from '../adapters/frame-map-file.ts';
import { sha256Of } from '../adapters/file-hash.ts';
import { acquireLock } from '../adapters/lock-file.ts';
import { moveWithCaption } from '../catalog/reject-images.ts';
import type { Config } from '../config/schema.ts';
import { videoLayoutOf } from '../daemon/library-paths.ts';
import type { Job } from '../daemon/job.ts';
import { CelforgeError } from '../errors.ts';

export async function markDuplicate(job: Job, frame: number, of: number, config: Config, catalog: Catalog): Promise<void> {
  const layout = videoLayoutOf(job, config.library);
  const lock = await acquireLock(layout.lock, 'review', `${job.source}: its frames`);
  try {
    const records = await readFrameMap(layout.frameMap);
    const record = records[frame];
    const original = records[of];
    if (!record || record.status !== 'kept' || !record.file) throw new CelforgeError('FILE_NOT_FOUND', `${job.source}: frame ${frame} is not a kept frame`);
    if (!original || original.status !== 'kept' || of === frame) throw new CelforgeError('FILE_NOT_FOUND', `${job.source}: frame ${of} is not another kept frame`);
    const from = path.join(config.library, record.file);
    const hash = record.sha256 ?? (await sha256Of(from));
    const moved = layout.duplicateFile(record.scene, record.frame);
    await moveWithCaption(from, path.join(config.library, moved));
    Object.assign(record, { status: 'duplicate', duplicateOf: of, file: moved, preview: null, sha256: hash });
    delete record.restored;
    await rewriteFrameMap(layout.frameMap, records);
    if (catalog.get(hash)) catalog.markRejected(hash, moved);
  } finally {
    await lock.release();
  }
}
