/**
 * `celforge import <folder>`: images with their sidecars into the library and
 * the catalog. A file is stored once, by hash, under imported/ (hard-linked
 * when the folder is on the same volume, copied otherwise); importing the same
 * image again only merges its tags. The source folder is left as it was.
 */
import { copyFile, link, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Catalog } from '../adapters/catalog-store.ts';
import { errorMessage } from '../errors.ts';
import { sha256Of } from '../adapters/file-hash.ts';
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
    try {
      const sidecar = await readSidecar(image);
      const hash = await sha256Of(image);
      const stored = await storeOnce(image, hash, library);
      const { width = 0, height = 0 } = await sharp(image).metadata();
      const { size } = await stat(image);
      const { isNew } = catalog.addImage(
        { hash, path: stored, size, width, height, series: null, episode: null, scene: null, frame: null, source: image },
        sidecar?.tags ?? [],
        'import',
      );
      result.images += 1;
      result[isNew ? 'added' : 'merged'] += 1;
      result.tags += sidecar?.tags.length ?? 0;
    } catch (error) {
      result.problems.push(`${image}: ${errorMessage(error)}`);
    }
  }
  return result;
}

/** Relative path of the library's copy of the file (made if missing). */
async function storeOnce(file: string, hash: string, library: string): Promise<string> {
  const relative = path.join('imported', hash.slice(0, 2), `${hash}${path.extname(file).toLowerCase()}`);
  const target = path.join(library, relative);
  if (existsSync(target)) return relative;
  await mkdir(path.dirname(target), { recursive: true });
  const temporary = `${target}.tmp`;
  await rm(temporary, { force: true });
  try {
    await link(file, temporary);
  } catch {
    await copyFile(file, temporary);
  }
  await rename(temporary, target);
  return relative;
}
