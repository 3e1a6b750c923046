/**
 * Lock files holding the pid of their owner: one writer per library (the
 * daemon or `celforge process`) and one per video's output (extraction or a
 * restore). A lock left by a process that is gone is taken over.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CelforgeError } from '../errors.ts';
import { isAlive } from './processes.ts';

export interface Lock {
  release(): Promise<void>;
}

/** `what` names the locked thing in the refusal: "the library /x", "the frames of /v.m2ts". */
export async function acquireLock(file: string, command: string, what: string): Promise<Lock> {
  await mkdir(path.dirname(file), { recursive: true });
  const mine = JSON.stringify({ pid: process.pid, command, since: new Date().toISOString() });
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      await writeFile(file, mine, { flag: 'wx' });
      return { release: () => rm(file, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = await readHolder(file);
      if (holder && isAlive(holder.pid) && holder.pid !== process.pid) {
        throw new CelforgeError(
          'LIBRARY_LOCKED',
          `${what} is in use by celforge ${holder.command} (pid ${holder.pid}). Stop it first, or wait for it to finish.`,
          { file },
        );
      }
      await rm(file, { force: true });
    }
  }
  throw new CelforgeError('LIBRARY_LOCKED', `${what}: could not take the lock ${file}`, { file });
}

async function readHolder(file: string): Promise<{ pid: number; command: string } | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as { pid: number; command: string };
  } catch {
    return null;
  }
}

/** Who holds a lock now (a live process), or null. */
export async function lockHolder(file: string): Promise<{ pid: number; command: string } | null> {
  const holder = await readHolder(file);
  return holder && isAlive(holder.pid) ? holder : null;
}
