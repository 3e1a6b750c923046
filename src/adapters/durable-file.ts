/** fsync helpers: what must survive a power cut is synced, with its folder. */
import { open, rename } from 'node:fs/promises';
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

/** Replaces a file whole: written to `<file>.tmp`, synced, renamed over it, the folder synced. */
export async function replaceFileDurably(file: string, data: string | Uint8Array): Promise<void> {
  const temporary = `${file}.tmp`;
  const handle = await open(temporary, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
  await fsyncDir(path.dirname(file));
}
