/** fsync helpers: what must survive a power cut is synced, with its folder. */
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

export async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a rename or a new file in `dir` durable. Not possible on Windows, where it is skipped. */
export async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  await fsyncFile(path.resolve(dir));
}

/** Numbers this process's temporary files. */
let writes = 0;

/**
 * Replaces a file whole: written to a temporary name beside it, synced,
 * renamed over it, the folder synced. The folder is made on first use. Each
 * write has its own temporary name: two writers sharing `<file>.tmp` would
 * have the second rename fail with ENOENT once the first took it away.
 */
export async function replaceFileDurably(file: string, data: string | Uint8Array): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeThenRename(file, `${file}.${process.pid}-${(writes += 1)}.tmp`, data);
  await fsyncDir(path.dirname(file));
}

/**
 * Writes `data` under `temporary` (synced unless told not to) and renames it
 * over `file`, so a reader sees the old file or the new one, never half.
 * A failed write (a full disk) leaves nothing behind.
 */
export async function writeThenRename(file: string, temporary: string, data: string | Uint8Array, options: { sync?: boolean } = {}): Promise<void> {
  try {
    const handle = await open(temporary, 'w');
    try {
      await handle.writeFile(data);
      if (options.sync ?? true) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
