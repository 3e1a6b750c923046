/**
 * How an export puts files in place: an image hard-linked or copied from the
 * library, a caption written only when its text changed, each through a
 * temporary name that is renamed into place.
 *
 *   placeImage(source, target, mode)   'linked' or 'copied'
 *   sourceStat(source)                 the library image's stat, or FILE_NOT_FOUND
 *   writeIfChanged(file, text)
 *   removeTemporaries(dir)             what a run cut short left in dir
 */
import { constants } from 'node:fs';
import { copyFile, link, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeThenRename } from '../../adapters/durable-file.ts';
import { CelforgeError, errorMessage } from '../../errors.ts';

/** auto: a hard link, or a copy where linking fails (another volume: EXDEV; a file system without links: EPERM). */
export type LinkMode = 'hardlink' | 'copy' | 'auto';

/**
 * Link errors after which `auto` copies instead: another volume (EXDEV), a
 * file system without hard links (EPERM on FAT and exFAT, ENOTSUP on some
 * network and FUSE mounts), a source at its link limit (EMLINK).
 */
const LINK_UNSUPPORTED = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EMLINK']);
export const TEMPORARY_SUFFIX = '.celforge-tmp';

export async function placeImage(source: string, target: string, mode: LinkMode): Promise<'linked' | 'copied'> {
  const sourceInfo = await sourceStat(source);
  const targetInfo = await stat(target).catch(() => null);
  const sameFile = targetInfo !== null && targetInfo.dev === sourceInfo.dev && targetInfo.ino === sourceInfo.ino;
  const earlierCopy = targetInfo !== null && !sameFile && targetInfo.isFile() && targetInfo.size === sourceInfo.size;

  if (mode === 'copy') {
    if (earlierCopy) return 'copied';
    await viaTemporary(target, (temporary) => copyFile(source, temporary, constants.COPYFILE_FICLONE));
    return 'copied';
  }
  if (sameFile) return 'linked';
  try {
    await viaTemporary(target, (temporary) => link(source, temporary));
    return 'linked';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (!LINK_UNSUPPORTED.has(code)) throw error;
    if (mode === 'hardlink') {
      throw new CelforgeError('CONFIG_INVALID', `${target}: cannot hard-link ${source} (${code}); export to a folder on the library's volume, or set link to 'copy' or 'auto'.`, { file: source, cause: error });
    }
  }
  if (earlierCopy) return 'copied';
  await viaTemporary(target, (temporary) => copyFile(source, temporary, constants.COPYFILE_FICLONE));
  return 'copied';
}

export async function sourceStat(source: string) {
  const info = await stat(source).catch((error: unknown) => {
    throw new CelforgeError('FILE_NOT_FOUND', `${source}: the image to export cannot be read (${errorMessage(error)}); check the library or leave the image out.`, { file: source, cause: error });
  });
  if (!info.isFile()) throw new CelforgeError('FILE_NOT_FOUND', `${source}: the image to export is not a file.`, { file: source });
  return info;
}

async function viaTemporary(target: string, write: (temporary: string) => Promise<void>): Promise<void> {
  const temporary = `${target}.${process.pid}${TEMPORARY_SUFFIX}`;
  await rm(temporary, { force: true });
  try {
    await write(temporary);
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** What a run cut short left behind; the names are ours alone. */
export async function removeTemporaries(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (name.endsWith(TEMPORARY_SUFFIX)) await rm(path.join(dir, name), { force: true });
  }
}

export async function writeIfChanged(file: string, content: string): Promise<void> {
  const existing = await readFile(file, 'utf8').catch(() => null);
  if (existing === content) return;
  await writeThenRename(file, `${file}.${process.pid}${TEMPORARY_SUFFIX}`, content);
}
