/**
 * `celforge import <folder>`: images with their sidecars into the library and
 * the catalog. A file is stored once, by hash, under imported/ (hard-linked
 * when the folder is on the same volume, copied otherwise); importing the same
 * image again only merges its tags. The source folder is left as it was.
 * A file that is not a readable picture is named and leaves nothing behind;
 * a sidecar tag that could never be searched or captioned is named and
 * skipped (src/catalog/person-tags.ts).
 */
import { copyFile, link, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Catalog } from '../adapters/catalog-store.ts';
import { CelforgeError, errorMessage } from '../errors.ts';
import { sha256Of } from '../adapters/file-hash.ts';
import { personTagProblem } from './person-tags.ts';
import { readSidecar } from './sidecars.ts';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp']);

export interface ImportResult {
  images: number;
  added: number;
  merged: number;
  tags: number;
  problems: string[];
}

export async function importFolder(folder: string, library: string, catalog: Catalog): Promise<ImportResult> {
  const result: ImportResult = { images: 0, added: 0, merged: 0, tags: 0, problems: [] };
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  const images = entries
    .filter((entry) => entry.isFile() && IMAGE_EXTENSIONS.has(path.extname(entry.name).toLowerCase()))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .sort();
  for (const image of images) {
    let stored: Stored | null = null;
    try {
      const sidecar = await readSidecar(image);
      const tags = (sidecar?.tags ?? []).filter((tag) => {
        const problem = personTagProblem(tag);
        if (problem) result.problems.push(`${sidecar!.file}: tag ${JSON.stringify(tag)} skipped: it ${problem}`);
        return !problem;
      });
      const { width, height } = await imageSize(image);
      const hash = await sha256Of(image);
      stored = await storeOnce(image, hash, library);
      const { size } = await stat(image);
      const { isNew } = catalog.addImage(
        { hash, path: stored.relative, size, width, height, series: null, episode: null, scene: null, frame: null, source: image },
        tags,
        'import',
      );
      result.images += 1;
      result[isNew ? 'added' : 'merged'] += 1;
      result.tags += tags.length;
    } catch (error) {
      // A copy made for an image that did not enter the catalog would be a stray file in imported/.
      if (stored?.made) await rm(path.join(library, stored.relative), { force: true });
      result.problems.push(`${image}: ${errorMessage(error)}`);
    }
  }
  return result;
}

/** The picture's size, read before anything is stored: a file that is not a picture sharp reads is refused. */
async function imageSize(image: string): Promise<{ width: number; height: number }> {
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = await sharp(image).metadata());
  } catch (error) {
    throw new CelforgeError('IMAGE_UNREADABLE', `not a readable image (${errorMessage(error)}); nothing was imported from it`, { file: image, cause: error });
  }
  if (!width || !height) throw new CelforgeError('IMAGE_UNREADABLE', 'not a readable image (it has no width and height); nothing was imported from it', { file: image });
  return { width, height };
}

interface Stored {
  /** Relative to the library. */
  relative: string;
  /** Made now, rather than found from an earlier import. */
  made: boolean;
}

/** The library's copy of the file (made if missing). */
async function storeOnce(file: string, hash: string, library: string): Promise<Stored> {
  const relative = path.join('imported', hash.slice(0, 2), `${hash}${path.extname(file).toLowerCase()}`);
  const target = path.join(library, relative);
  if (existsSync(target)) return { relative, made: false };
  await mkdir(path.dirname(target), { recursive: true });
  const temporary = `${target}.tmp`;
  await rm(temporary, { force: true });
  try {
    await link(file, temporary);
  } catch {
    await copyFile(file, temporary);
  }
  await rename(temporary, target);
  return { relative, made: true };
}
