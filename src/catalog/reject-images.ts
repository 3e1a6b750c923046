/**
 * Taking images out of the dataset: each file moves into the library's
 * trash/ (same relative path), never deleted, with its caption; the catalog
 * keeps the image, its tags and where it went.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import type { Catalog, CatalogImage } from '../adapters/catalog-store.ts';
import { trashDir } from '../daemon/library-paths.ts';
import { captionPathOf } from './sidecars.ts';

export async function rejectImages(catalog: Catalog, library: string, images: readonly CatalogImage[]): Promise<void> {
  for (const image of images) {
    const from = path.resolve(library, image.path);
    const relative = path.isAbsolute(image.path) ? path.join('outside', image.hash + path.extname(image.path)) : image.path;
    const to = path.join(trashDir(library), relative);
    await moveWithCaption(from, to);
    catalog.markRejected(image.hash, path.relative(library, to));
  }
}

/** Moves a picture and the Kohya caption beside it (`name.txt`), when they are there. */
export async function moveWithCaption(from: string, to: string): Promise<void> {
  await mkdir(path.dirname(to), { recursive: true });
  if (existsSync(from)) await rename(from, to);
  const caption = captionPathOf(from);
  if (existsSync(caption)) await rename(caption, captionPathOf(to));
}
