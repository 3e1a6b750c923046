/**
 * Lock files holding the host and pid of their owner: one writer per library
 * (the daemon or `celforge process`) and one per video's output (extraction
 * or a restore). A lock left by a process of this host that is gone is taken
 * over. A lock of another host (a worker on a shared library) is never taken
 * over by its pid, which means nothing here: only a caller that knows its
 * holder lost its claim (the job queue handed its job over) removes it, with
 * takeOverFromOtherHost.
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
import { createHash, randomUUID } from 'node:crypto';
import { link, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CelforgeError } from '../errors.ts';
import { hostName } from './host-name.ts';
import { isAlive } from './processes.ts';
import { readTextIfPresent } from './text-file.ts';

export interface Lock {
  release(): Promise<void>;
}

interface Holder {
  pid: number;
  command: string;
  /** Absent in locks of older versions: this host's. */
  host?: string;
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
  const { nonce, mine, draft } = await writeDraft(file, command);
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
          `${what} is in use by celforge ${seen.holder!.command} (${describeHolder(seen.holder!)}). Stop it first, or wait for it to finish.`,
          { file },
        );
      }
      const claimant = await takeOver(file, draft, mine, nonce, seen);
      if (claimant) {
        if (Date.now() > deadline) {
          throw new CelforgeError('LIBRARY_LOCKED', `${what}: celforge (${describeHolder(claimant)}) has been taking over the stale lock ${file} for ${TAKEOVER_WAIT_MS / 1000} s; stop it, or remove ${file}.takeover`, { file });
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  } finally {
    await rm(draft, { force: true });
  }
}

/**
 * Removes `file` when celforge `command` on another host holds it, for a
 * caller that knows that holder has lost its claim: the worker the job queue
 * handed a stalled job to (the queue's own lock on the job says that worker
 * alone owns it now). Returns the holder removed, or null when there was none
 * (no lock, or one of this host, which acquireLock judges by its pid).
 */
export async function takeOverFromOtherHost(file: string, command: string): Promise<{ host: string; pid: number } | null> {
  const seen = await readLock(file);
  const holder = seen?.holder;
  if (!holder || holder.host === undefined || holder.host === hostName() || holder.command !== command) return null;
  const { nonce, mine, draft } = await writeDraft(file, command);
  try {
    // Under <lock>.takeover like a stale lock's removal: looked at again before it goes, and only that lock goes.
    const claimant = await takeOver(file, draft, mine, nonce, seen);
    if (claimant) throw new CelforgeError('LIBRARY_LOCKED', `${file}: celforge (${describeHolder(claimant)}) is taking it over; try again`, { file });
  } finally {
    await rm(draft, { force: true });
  }
  return (await readLock(file))?.raw === seen.raw ? null : { host: holder.host, pid: holder.pid };
}

async function writeDraft(file: string, command: string): Promise<{ nonce: string; mine: string; draft: string }> {
  await mkdir(path.dirname(file), { recursive: true });
  const nonce = randomUUID();
  const mine = JSON.stringify({ pid: process.pid, host: hostName(), command, since: new Date().toISOString(), nonce });
  const draft = privateName(file, nonce, 'new');
  await writeFile(draft, mine);
  return { nonce, mine, draft };
}

/**
 * A name beside the lock for this process alone: <lock>.<host tag>-<pid>.<uuid>.<new|old>.
 * The host tag (a digest: any host name makes a short, safe file name) keeps
 * another host's drafts from being judged by a pid of this one.
 */
function privateName(file: string, uuid: string, kind: 'new' | 'old'): string {
  return `${file}.${hostTag(hostName())}-${process.pid}.${uuid}.${kind}`;
}

function hostTag(host: string): string {
  return createHash('sha256').update(host).digest('hex').slice(0, 12);
}

/**
 * The private drafts (`.new`) and asides (`.old`) of processes killed while
 * they made, took over or removed this lock: they hold nothing, but would
 * stay in the folder (a video's output folder) for good. Only this host's
 * (or, without a host tag, an older version's) are judged.
 */
async function removeDeadDrafts(file: string): Promise<void> {
  const base = path.basename(file).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const draft = new RegExp(`^${base}(?:\\.takeover)?\\.(?:([0-9a-f]{12})-)?(\\d+)\\.[0-9a-f-]{36}\\.(?:new|old)$`);
  const here = hostTag(hostName());
  for (const name of await readdir(path.dirname(file)).catch(() => [])) {
    const [, tag, pid] = draft.exec(name) ?? [];
    if (pid === undefined || (tag !== undefined && tag !== here)) continue;
    if (Number(pid) !== process.pid && !isAlive(Number(pid))) await rm(path.join(path.dirname(file), name), { force: true });
  }
}

/** Who holds a lock now (a live process, or any process of another host), or null. */
export async function lockHolder(file: string): Promise<{ pid: number; command: string; host?: string } | null> {
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
  const aside = privateName(file, randomUUID(), 'old');
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

/**
 * Another host's lock is live: its pid cannot be looked at from here. A lock with this process's pid is live only
 * if this process made it; otherwise it is a previous life's (same pid after a restart).
 */
function isLive(holder: Holder | null): boolean {
  if (!holder) return false;
  if (holder.host !== undefined && holder.host !== hostName()) return true;
  if (holder.pid === process.pid) return holder.nonce !== undefined && heldHere.has(holder.nonce);
  return isAlive(holder.pid);
}

function describeHolder(holder: Holder): string {
  return holder.host !== undefined && holder.host !== hostName() ? `pid ${holder.pid} on ${holder.host}` : `pid ${holder.pid}`;
}
