/**
 * Lock files holding the pid of their owner: one writer per library (the
 * daemon or `celforge process`) and one per video's output (extraction or a
 * restore). A lock left by a process that is gone is taken over.
 *
 * A lock appears whole: it is written under a private name and hard-linked to
 * its own (link(2) fails when the name exists, the same promise as O_EXCL,
 * and a reader never meets a half-written lock). Taking over a stale lock is
 * two steps, removing it and creating one's own, and two processes that both
 * saw it stale could each remove it and each create theirs (or remove the
 * other's new one). So a takeover is done holding `<lock>.takeover`, made the
 * same way, and looks at the lock again before it removes it; and what is
 * removed is first renamed aside and read again, and put back when it turns
 * out not to be the stale lock that was seen.
 */
import { randomUUID } from 'node:crypto';
import { link, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CelforgeError } from '../errors.ts';
import { isAlive } from './processes.ts';
import { readTextIfPresent } from './text-file.ts';

export interface Lock {
  release(): Promise<void>;
}

interface Holder {
  pid: number;
  command: string;
  nonce?: string;
}

interface Seen {
  /** The file's text as read: the identity checked before anything is removed. */
  raw: string;
  holder: Holder | null;
}

/** Nonces of the locks (and takeovers) this process holds now: its pid alone cannot tell them from a previous life's. */
const heldHere = new Set<string>();

/** How long to wait for another process that is taking over the same stale lock; it needs milliseconds. */
const TAKEOVER_WAIT_MS = 30_000;

/** `what` names the locked thing in the refusal: "the library /x", "the frames of /v.m2ts". */
export async function acquireLock(file: string, command: string, what: string): Promise<Lock> {
  await mkdir(path.dirname(file), { recursive: true });
  const nonce = randomUUID();
  const mine = JSON.stringify({ pid: process.pid, command, since: new Date().toISOString(), nonce });
  const draft = `${file}.${process.pid}.${nonce}.new`;
  await writeFile(draft, mine);
  try {
    const deadline = Date.now() + TAKEOVER_WAIT_MS;
    for (;;) {
      if (await createFrom(draft, mine, file)) {
        heldHere.add(nonce);
        await removeDeadDrafts(file);
        return { release: () => releaseLock(file, mine, nonce) };
      }
      const seen = await readLock(file);
      if (!seen) continue;
      if (isLive(seen.holder)) {
        throw new CelforgeError(
          'LIBRARY_LOCKED',
          `${what} is in use by celforge ${seen.holder!.command} (pid ${seen.holder!.pid}). Stop it first, or wait for it to finish.`,
          { file },
        );
      }
      const claimant = await takeOver(file, draft, mine, nonce, seen);
      if (claimant) {
        if (Date.now() > deadline) {
          throw new CelforgeError('LIBRARY_LOCKED', `${what}: celforge (pid ${claimant.pid}) has been taking over the stale lock ${file} for ${TAKEOVER_WAIT_MS / 1000} s; stop it, or remove ${file}.takeover`, { file });
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  } finally {
    await rm(draft, { force: true });
  }
}

/**
 * The private drafts (`.new`) and asides (`.old`) of processes killed while
 * they made, took over or removed this lock: they hold nothing, but would
 * stay in the folder (a video's output folder) for good.
 */
async function removeDeadDrafts(file: string): Promise<void> {
  const base = path.basename(file).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const draft = new RegExp(`^${base}(?:\\.takeover)?\\.(\\d+)\\.[0-9a-f-]{36}\\.(?:new|old)$`);
  for (const name of await readdir(path.dirname(file)).catch(() => [])) {
    const pid = draft.exec(name)?.[1];
    if (pid !== undefined && Number(pid) !== process.pid && !isAlive(Number(pid))) await rm(path.join(path.dirname(file), name), { force: true });
  }
}

/** Who holds a lock now (a live process), or null. */
export async function lockHolder(file: string): Promise<{ pid: number; command: string } | null> {
  const seen = await readLock(file);
  return seen && isLive(seen.holder) ? seen.holder : null;
}

/**
 * Removes the stale lock `seen`, holding the takeover lock while it does.
 * Returns the live process that holds the takeover instead of us (wait and
 * try again), or null when the caller may try to create its lock again.
 */
async function takeOver(file: string, draft: string, mine: string, nonce: string, seen: Seen): Promise<Holder | null> {
  const takeover = `${file}.takeover`;
  if (!(await createFrom(draft, mine, takeover))) {
    const claim = await readLock(takeover);
    if (!claim) return null;
    if (isLive(claim.holder)) return claim.holder;
    // Its holder died in the middle of a takeover.
    await removeIfUnchanged(takeover, claim.raw);
    return null;
  }
  heldHere.add(nonce);
  try {
    // Another process may have finished its own takeover since we looked: its new lock stays.
    if ((await readLock(file))?.raw === seen.raw) await removeIfUnchanged(file, seen.raw);
  } finally {
    heldHere.delete(nonce);
    await removeIfUnchanged(takeover, mine);
  }
  return null;
}

/** Creates `file` with the draft's content, or returns false when it exists. */
async function createFrom(draft: string, content: string, file: string): Promise<boolean> {
  try {
    await link(draft, file);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    // File systems without hard links (FAT, some network shares): O_EXCL, where a reader can meet an empty file for a moment.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
  }
  try {
    await writeFile(file, content, { flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/**
 * Removes `file` only if it still holds `raw`: it is renamed aside (only one
 * process can move a given file), read, and put back when it is another one.
 */
async function removeIfUnchanged(file: string, raw: string): Promise<void> {
  const aside = `${file}.${process.pid}.${randomUUID()}.old`;
  try {
    await rename(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  try {
    const moved = await readFile(aside, 'utf8').catch(() => null);
    if (moved !== raw) await link(aside, file).catch(() => undefined);
  } finally {
    await rm(aside, { force: true });
  }
}

async function releaseLock(file: string, mine: string, nonce: string): Promise<void> {
  heldHere.delete(nonce);
  if ((await readLock(file))?.raw === mine) await removeIfUnchanged(file, mine);
}

async function readLock(file: string): Promise<Seen | null> {
  const raw = await readTextIfPresent(file);
  if (raw === null) return null;
  try {
    const holder = JSON.parse(raw) as Holder;
    return { raw, holder: Number.isInteger(holder.pid) ? holder : null };
  } catch {
    return { raw, holder: null };
  }
}

/** A lock with this process's pid is live only if this process made it; otherwise it is a previous life's (same pid after a restart). */
function isLive(holder: Holder | null): boolean {
  if (!holder) return false;
  if (holder.pid === process.pid) return holder.nonce !== undefined && heldHere.has(holder.nonce);
  return isAlive(holder.pid);
}
