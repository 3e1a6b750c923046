/**
 * Locks on a library shared by several machines (two hosts simulated with
 * CELFORGE_HOST_NAME): another host's lock is never taken over by its pid,
 * whatever that pid means here; takeOverFromOtherHost removes it for the
 * caller that knows its holder lost its claim, and only a lock of that
 * command; this host's locks still go by their pid; a dead process's drafts
 * are removed only when they are this host's.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { acquireLock, lockHolder, takeOverFromOtherHost } from '../../src/adapters/lock-file.ts';
import { isAlive } from '../../src/adapters/processes.ts';
import { tempDir } from '../helpers.ts';

const CONTENDER = path.join(import.meta.dirname, '..', 'fixtures', 'lock-contender.ts');

/** A process of `host` that takes the lock and is then SIGKILLed, as a worker whose machine died: its pid, dead. */
async function lockLeftBy(host: string, file: string): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', CONTENDER], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, CELFORGE_HOST_NAME: host } });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  assert.equal((await lines.next()).value, 'ready');
  child.stdin.write(`take ${file}\n`);
  assert.equal((await lines.next()).value, 'won');
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  assert.ok(!isAlive(child.pid!));
  return child.pid!;
}

process.env.CELFORGE_HOST_NAME = 'host-b';

test("another host's lock is not taken over by its (dead) pid; the queue job's owner takes it over, and only a lock of its command", async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, '.lock');
  const pid = await lockLeftBy('host-a', file);
  const left = readFileSync(file, 'utf8');
  assert.equal(JSON.parse(left).host, 'host-a', 'the lock records its host');

  await assert.rejects(acquireLock(file, 'extract', 'its frames'), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'LIBRARY_LOCKED');
    assert.match(error.message, new RegExp(`its frames is in use by celforge contender \\(pid ${pid} on host-a\\)`));
    return true;
  });
  assert.equal((await lockHolder(file))?.host, 'host-a');
  assert.equal(await takeOverFromOtherHost(file, 'restore'), null, 'a lock of another command stays');
  assert.equal(readFileSync(file, 'utf8'), left);

  assert.deepEqual(await takeOverFromOtherHost(file, 'contender'), { host: 'host-a', pid });
  const lock = await acquireLock(file, 'extract', 'its frames');
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).host, 'host-b');
  assert.equal(await takeOverFromOtherHost(file, 'extract'), null, "this host's lock is not another host's to take over");
  await lock.release();
  assert.deepEqual(readdirSync(dir), [], 'no takeover, draft or aside left');
});

test("this host's locks still go by their pid: a dead one is taken over, takeOverFromOtherHost leaves it to that", async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, '.lock');
  await lockLeftBy('host-b', file);
  assert.equal(await takeOverFromOtherHost(file, 'contender'), null);
  assert.equal(await lockHolder(file), null, 'a dead process of this host holds nothing');
  await (await acquireLock(file, 'extract', 'its frames')).release();
  assert.deepEqual(readdirSync(dir), []);
});

test("a dead process's drafts are removed only when they are this host's", async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, '.lock');
  const uuid = '95d5f9ee-2ddc-480e-b8b5-c3abd54c6ee2';
  const deadHere = await lockLeftBy('host-b', path.join(dir, 'other.lock'));
  // A draft's name carries a digest of its host (lock-file.ts privateName).
  const tagOf = (host: string) => createHash('sha256').update(host).digest('hex').slice(0, 12);
  const [tagA, tagB] = [tagOf('host-a'), tagOf('host-b')];
  const left = [`.lock.${tagB}-${deadHere}.${uuid}.new`, `.lock.takeover.${tagB}-${deadHere}.${uuid}.old`, `.lock.${deadHere}.${uuid}.new`];
  const kept = [`.lock.${tagA}-${deadHere}.${uuid}.new`, `.lock.${tagA}-${deadHere}.${uuid}.old`];
  for (const name of [...left, ...kept]) writeFileSync(path.join(dir, name), '{}');
  await (await acquireLock(file, 'extract', 'its frames')).release();
  assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('.lock')).sort(), kept.sort());
});
