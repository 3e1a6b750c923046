/** Finding and stopping a process left behind by a daemon that was killed. */
import { readFile } from 'node:fs/promises';

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Kills `pid` if it is still running and its command line mentions every one
 * of `mustMention` (so a reused pid is never hit). Only Linux exposes the
 * command line cheaply; elsewhere nothing is killed. Resolves once it is gone.
 */
export async function killOrphan(pid: number, mustMention: string[]): Promise<boolean> {
  if (process.platform !== 'linux' || !isAlive(pid)) return false;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline || !mustMention.every((text) => cmdline.includes(text))) return false;
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && isAlive(pid); i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
  return true;
}
