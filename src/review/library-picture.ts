/**
 * Reads a picture of the library for the review page: only a regular file
 * whose real path (every symlink resolved) lies inside the library's real
 * path. A symlink pointing out of the library, a FIFO or a device reads as
 * "not there".
 */
import { constants } from 'node:fs';
import { lstat, open, realpath } from 'node:fs/promises';
import path from 'node:path';

// O_NOFOLLOW and O_NONBLOCK are 0/absent on Windows; there the realpath check stands alone.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

export async function readLibraryPicture(library: string, stored: string): Promise<Buffer | null> {
  const [realLibrary, real] = await Promise.all([realpath(library).catch(() => null), realpath(path.resolve(library, stored)).catch(() => null)]);
  if (!realLibrary || !real || !isInside(realLibrary, real)) return null;
  if (!(await lstat(real).catch(() => null))?.isFile()) return null;
  const handle = await open(real, OPEN_FLAGS).catch(() => null);
  if (!handle) return null;
  try {
    if (!(await handle.stat()).isFile()) return null;
    // A folder on the way may have been swapped for a symlink since realpath; where the system names
    // an open file's path (Linux /proc), the file actually opened must still be inside.
    const opened = await realpath(`/proc/self/fd/${handle.fd}`).catch(() => null);
    if (opened !== null && !isInside(realLibrary, opened)) return null;
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

function isInside(folder: string, file: string): boolean {
  const relative = path.relative(folder, file);
  return relative !== '' && relative.split(path.sep)[0] !== '..' && !path.isAbsolute(relative);
}
