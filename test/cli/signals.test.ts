/**
 * SIGTERM to the commands the README gives for the daemon (`node
 * bin/celforge.js start`, `npm start`, `npx celforge start`) stops celforge:
 * the review page's port is free again, the library lock is gone and no
 * celforge process is left.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { isAlive } from '../../src/adapters/processes.ts';
import { lockPath } from '../../src/daemon/library-paths.ts';
import { projectRoot, tempDir, waitFor, writeConfig } from '../helpers.ts';

const hasNpm = spawnSync('npm', ['--version'], { stdio: 'ignore' }).status === 0;

/** Starts the daemon through `command`, SIGTERMs what was started, and checks that everything is gone. */
async function stopsOnSigterm(t: Parameters<typeof tempDir>[0], command: string, args: (config: string) => string[], inboxFiles = 0): Promise<void> {
  const dir = tempDir(t);
  const library = path.join(dir, 'library');
  const inbox = path.join(dir, 'inbox');
  for (let i = 0; i < inboxFiles; i += 1) {
    if (i % 100 === 0) mkdirSync(path.join(inbox, `folder-${i / 100}`), { recursive: true });
    writeFileSync(path.join(inbox, `folder-${Math.floor(i / 100)}`, `notes-${i}.txt`), '');
  }
  const config = writeConfig(dir, { library, inbox, notify: { desktop: false } });
  // detached: its own process group, so the test can clean up whatever is left if it fails.
  const child = spawn(command, args(config), { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  t.after(() => {
    for (const pid of celforgeProcesses(dir)) process.kill(pid, 'SIGKILL');
  });

  const port = Number((await waitFor('the review page', () => /review page: http:\/\/127\.0\.0\.1:(\d+)\//.exec(output)?.[1], 120_000)));
  const daemon = (JSON.parse(readFileSync(lockPath(library), 'utf8')) as { pid: number }).pid;
  assert.ok(await canConnect(port), 'the review page answers');

  child.kill('SIGTERM');
  await exited;
  await waitFor(`the daemon (pid ${daemon}) to exit\n${output}`, () => !isAlive(daemon), 60_000);
  assert.ok(!existsSync(lockPath(library)), 'the library lock is gone');
  assert.equal(await canConnect(port), false, 'the port is free');
  assert.deepEqual(celforgeProcesses(dir), [], 'no celforge process is left');
  assert.match(output, /shutting down[\s\S]*stopped/);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Processes whose command line names this test's folder (Linux: /proc; elsewhere none are found). */
function celforgeProcesses(dir: string): number[] {
  if (process.platform !== 'linux') return [];
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

test('node bin/celforge.js start stops on SIGTERM', { timeout: 240_000 }, async (t) => {
  await stopsOnSigterm(t, process.execPath, (config) => [path.join(projectRoot, 'bin', 'celforge.js'), '--config', config, 'start']);
});

test('npm start stops on SIGTERM, though npm runs it through a shell that does not pass the signal on', { timeout: 240_000, skip: !hasNpm && 'npm is not on the PATH' }, async (t) => {
  await stopsOnSigterm(t, 'npm', (config) => ['start', '--', '--config', config]);
});

test('npx celforge start stops on SIGTERM', { timeout: 240_000, skip: !hasNpm && 'npm is not on the PATH' }, async (t) => {
  // --no: the celforge of this folder, never one from the registry.
  await stopsOnSigterm(t, 'npx', (config) => ['--no', 'celforge', 'start', '--config', config]);
});

test('a SIGTERM while the watcher makes its first scan of a large inbox stops the daemon', { timeout: 240_000 }, async (t) => {
  // chokidar never reports `ready` once closed: the daemon used to wait for it for ever.
  await stopsOnSigterm(t, process.execPath, (config) => [path.join(projectRoot, 'bin', 'celforge.js'), '--config', config, 'start'], 5000);
});
