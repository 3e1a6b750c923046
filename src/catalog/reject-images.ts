/**
 * Taking images out of the dataset and back: `reject` moves each file into
 * the library's trash/ (same relative path), never deleting it, with its
 * caption; the catalog keeps the image, its tags and where it was, and a
 * pipeline frame's frame map says `rejected`. `unreject` moves it back to
 * where it was and undoes both. An image already out of the dataset (in the
 * trash, or set aside as a duplicate) is not moved again.
 *
 * Order of work, for a crash in between: the file moves first, then the
 * frame map, then the catalog; running the same command again finishes it.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import type { Catalog, CatalogImage } from '../adapters/catalog-store.ts';
import { trashDir } from '../daemon/library-paths.ts';
import { CelforgeError } from '../errors.ts';
import { recordFrameKept, recordFrameRejected } from '../frames/reject-frame.ts';
import { captionPathOf } from './sidecars.ts';

export interface RejectResult {
  /** Images moved to the trash now. */
  moved: number;
  /** Images that were already out of the dataset. */
  alreadyOut: number;
}

export async function rejectImages(catalog: Catalog, library: string, images: readonly CatalogImage[]): Promise<RejectResult> {
  const result: RejectResult = { moved: 0, alreadyOut: 0 };
  for (const image of images) {
    const current = catalog.get(image.hash) ?? image;
    if (current.rejectedAt !== null) {
      result.alreadyOut += 1;
      continue;
    }
    const relative = path.isAbsolute(current.path) ? path.join('outside', current.hash + path.extname(current.path)) : current.path;
    const trashed = path.relative(library, path.join(trashDir(library), relative));
    await moveWithCaption(path.resolve(library, current.path), path.join(library, trashed));
    await recordFrameRejected(library, { frame: current.frame, source: current.source, keptPath: current.path, trashPath: trashed });
    catalog.markRejected(current.hash, trashed, current.path);
    result.moved += 1;
  }
  return result;
}

export interface UnrejectResult {
  /** Images moved back into the dataset. */
  restored: string[];
  /** Images out of the dataset with no place recorded to go back to: frames marked as duplicates (`restore` brings those back). */
  noPlace: number;
}

/** Moves rejected images back to where they were; refuses (before moving any) when something else now sits there. */
export async function unrejectImages(catalog: Catalog, library: string, images: readonly CatalogImage[]): Promise<UnrejectResult> {
  const result: UnrejectResult = { restored: [], noPlace: 0 };
  const plan: { image: CatalogImage; back: string }[] = [];
  for (const image of images) {
    if (image.rejectedAt === null) continue;
    if (image.rejectedFrom === null) {
      result.noPlace += 1;
      continue;
    }
    const back = image.rejectedFrom;
    const from = path.resolve(library, image.path);
    const to = path.resolve(library, back);
    if (existsSync(to) && existsSync(from)) {
      throw new CelforgeError('FILE_NOT_FOUND', `${to}: another file is there now, so the rejected image ${from} cannot go back; move one of them away and run unreject again. Nothing was moved.`, { file: to });
    }
    plan.push({ image, back });
  }
  for (const { image, back } of plan) {
    await moveWithCaption(path.resolve(library, image.path), path.resolve(library, back));
    await recordFrameKept(library, { frame: image.frame, source: image.source, keptPath: back, trashPath: image.path });
    catalog.markKept(image.hash, back);
    result.restored.push(image.hash);
  }
  return result;
}

/** Moves a picture and the Kohya caption beside it (`name.txt`), when they are there. */
export async function moveWithCaption(from: string, to: string): Promise<void> {
  await mkdir(path.dirname(to), { recursive: true });
  if (existsSync(from)) await rename(from, to);
  const caption = captionPathOf(from);
  if (existsSync(caption)) await rename(caption, captionPathOf(to));
}
