/**
 * One writer per library: the daemon and `celforge process` hold a lock file
 * with their pid. A lock left by a process that is gone is taken over.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isAlive } from '../adapters/processes.ts';
import { CelforgeError } from '../errors.ts';
import { lockPath } from './library-paths.ts';

export interface LibraryLock {
  release(): Promise<void>;
}

export async function lockLibrary(library: string, command: string): Promise<LibraryLock> {
  const file = lockPath(library);
  await mkdir(path.dirname(file), { recursive: true });
  const mine = JSON.stringify({ pid: process.pid, command, since: new Date().toISOString() });
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      await writeFile(file, mine, { flag: 'wx' });
      return { release: () => rm(file, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = await readHolder(file);
      if (holder && holder.pid !== process.pid && isAlive(holder.pid)) {
        throw new CelforgeError(
          'LIBRARY_LOCKED',
          `${library}: the library is in use by celforge ${holder.command} (pid ${holder.pid}). Stop it first, or point this command at another library with --library.`,
          { file },
        );
      }
      await rm(file, { force: true });
    }
  }
  throw new CelforgeError('LIBRARY_LOCKED', `${library}: could not take the library lock ${file}`, { file });
}

async function readHolder(file: string): Promise<{ pid: number; command: string } | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as { pid: number; command: string };
  } catch {
    return null;
  }
}
