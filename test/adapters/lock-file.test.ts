/** The lock file: one owner at a time, a dead owner's lock taken over once, by one process, however the race goes. */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { acquireLock, lockHolder } from '../../src/adapters/lock-file.ts';
import { isAlive } from '../../src/adapters/processes.ts';
import { tempDir } from '../helpers.ts';

const CONTENDER = path.join(import.meta.dirname, '..', 'fixtures', 'lock-contender.ts');
const TRIALS = Number(process.env.CELFORGE_LOCK_TRIALS ?? 30);
const CONTENDERS = Number(process.env.CELFORGE_LOCK_CONTENDERS ?? 3);

/** The pid of a process that has exited: what a crashed owner leaves in its lock. */
function deadPid(): number {
  const { pid } = spawnSync(process.execPath, ['-e', '']);
  assert.ok(pid && !isAlive(pid));
  return pid;
}

interface Contender {
  child: ChildProcessWithoutNullStreams;
  next: () => Promise<string>;
  send: (line: string) => void;
}

async function startContender(): Promise<Contender> {
  const child = spawn(process.execPath, ['--import', 'tsx', CONTENDER], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const waiter = waiting.shift();
    if (waiter) waiter(line);
    else lines.push(line);
  });
  const exited = new Promise<string>((resolve) => child.on('exit', (code) => resolve(`exited ${code}: ${stderr}`)));
  const next = () => {
    const line = lines.shift();
    return line !== undefined ? Promise.resolve(line) : Promise.race([new Promise<string>((resolve) => waiting.push(resolve)), exited]);
  };
  assert.equal(await next(), 'ready');
  return { child, next, send: (line) => child.stdin.write(`${line}\n`) };
}

test(`a stale lock is taken over by exactly one of ${CONTENDERS} processes starting together (${TRIALS} trials)`, { timeout: 600_000 }, async (t) => {
  const dir = tempDir(t);
  const contenders = await Promise.all(Array.from({ length: CONTENDERS }, startContender));
  t.after(() => contenders.forEach(({ child }) => child.kill()));
  const crashed = deadPid();
  for (let trial = 0; trial < TRIALS; trial += 1) {
    const file = path.join(dir, `trial-${trial}.lock`);
    writeFileSync(file, JSON.stringify({ pid: crashed, command: 'process', since: new Date().toISOString() }));
    for (const contender of contenders) contender.send(`take ${file}`);
    const answers = await Promise.all(contenders.map((contender) => contender.next()));
    const winners = answers.flatMap((answer, index) => (answer === 'won' ? [index] : []));
    assert.equal(winners.length, 1, `trial ${trial}: ${answers.join(', ')}`);
    assert.deepEqual(answers.filter((answer) => answer !== 'won'), Array(CONTENDERS - 1).fill('refused LIBRARY_LOCKED'), `trial ${trial}`);
    const winner = contenders[winners[0]!]!;
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).pid, winner.child.pid, `trial ${trial}: the lock names its winner`);
    winner.send('release');
    assert.equal(await winner.next(), 'released');
    assert.ok(!existsSync(file), `trial ${trial}: released`);
  }
  // Nothing is left beside the locks: no takeover, no drafts, nothing set aside.
  assert.deepEqual(readdirSync(dir), []);
});

test('a live owner keeps its lock; a lock with this pid from an earlier life is stale; release removes only its own lock', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'daemon.lock');
  const lock = await acquireLock(file, 'start', 'the library');
  // Held by this process: refused, even though the pid is ours.
  await assert.rejects(acquireLock(file, 'review', 'the library'), /the library is in use by celforge start \(pid \d+\)/);
  const written = JSON.parse(readFileSync(file, 'utf8'));
  assert.deepEqual(await lockHolder(file), { pid: process.pid, host: hostname(), command: 'start', since: written.since, nonce: written.nonce });
  await lock.release();
  assert.equal(await lockHolder(file), null);

  // Same pid, a nonce this process never made: a previous life's lock (a container's pid 1 after a restart).
  writeFileSync(file, JSON.stringify({ pid: process.pid, command: 'start', nonce: 'earlier' }));
  const again = await acquireLock(file, 'process', 'the library');
  // A lock that is not ours any more is left alone on release.
  const other = JSON.stringify({ pid: deadPid(), command: 'other' });
  writeFileSync(file, other);
  await again.release();
  assert.equal(readFileSync(file, 'utf8'), other);

  // An owner that died in the middle of taking over a stale lock left its takeover behind: both are taken over.
  writeFileSync(`${file}.takeover`, JSON.stringify({ pid: deadPid(), command: 'process' }));
  await (await acquireLock(file, 'process', 'the library')).release();
  assert.deepEqual(readdirSync(dir), []);
});

test('drafts and asides left by processes killed mid-lock are removed by the next owner; a live process\'s and another lock\'s stay', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, '.lock');
  const dead = deadPid();
  const uuid = '95d5f9ee-2ddc-480e-b8b5-c3abd54c6ee2';
  const left = [`.lock.${dead}.${uuid}.new`, `.lock.${dead}.${uuid}.old`, `.lock.takeover.${dead}.${uuid}.new`];
  const kept = [`.lock.${process.ppid}.${uuid}.new`, `other.lock.${dead}.${uuid}.new`, `.lock.${dead}.not-a-nonce.new`, 'frame-map.jsonl'];
  for (const name of [...left, ...kept]) writeFileSync(path.join(dir, name), '{}');
  const lock = await acquireLock(file, 'extract', 'its frames');
  await lock.release();
  assert.deepEqual(readdirSync(dir).sort(), [...kept].sort());
});
