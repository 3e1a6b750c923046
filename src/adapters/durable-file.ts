/** fsync helpers: what must survive a power cut is synced, with its folder. */
import { open } from 'node:fs/promises';
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
