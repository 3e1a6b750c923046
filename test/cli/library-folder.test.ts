/**
 * The library folder as a new user meets it: every command on a library
 * that does not exist yet and on an empty folder (what it needs is made on
 * first use), `--library` moving the training folder with it, and a
 * read-only library or export folder named as read-only.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { makeClip } from '../fixtures/clips.ts';
import { trainingProject } from '../fixtures/training-project.ts';
import { projectRoot, runCli, tempDir, waitFor, type CliResult } from '../helpers.ts';

async function setup(t: Parameters<typeof tempDir>[0]) {
  return trainingProject(t, { args: { fake_step_ms: 5 }, maxTrainSteps: 10, saveEveryNSteps: 5 }, { notify: { desktop: false } });
}

function noMissingFile(result: CliResult, what: string): void {
  assert.doesNotMatch(result.stdout + result.stderr, /ENOENT|no such file/i, what);
}

test('every command works on a library that does not exist yet and on an empty folder; --library moves the training folder', { timeout: 600_000 }, async (t) => {
  const { dir, pictures, configFile } = await setup(t);
  const clip = await makeClip({ width: 320, height: 180, seconds: 1 });
  mkdirSync(path.join(dir, 'empty'));
  // The two libraries side by side: nothing of one is the other's.
  await Promise.all(['missing/library', 'empty'].map(async (name) => {
    const library = path.join(dir, name);
    const cli = async (...args: string[]) => {
      const result = await runCli(['--config', configFile, '--library', library, ...args], { cwd: dir });
      noMissingFile(result, `${name}: celforge ${args.join(' ')}`);
      return result;
    };
    for (const args of [['status'], ['status', '--json'], ['search', ''], ['models', 'list'], ['doctor'], ['service', 'install', '--print']]) {
      const result = await cli(...args);
      assert.ok(result.code === 0 || (args[0] === 'doctor' && result.code !== null), `${name}: ${args.join(' ')}: ${result.stderr}`);
    }
    // Nothing to train on yet: said at once instead of trying at every check for ever.
    const early = await cli('train', '--now');
    assert.equal(early.code, 1);
    assert.match(early.stderr, /no images in .* to train on; import pictures or process videos first/);

    for (const args of [['tag', '1girl', '--add', 'checked'], ['import', pictures], ['search', 'checked'], ['train']]) {
      const result = await cli(...args);
      assert.equal(result.code, 0, `${name}: ${args.join(' ')}: ${result.stderr}`);
    }
    const trained = await cli('train', '--now');
    assert.equal(trained.code, 0, `${name}: train --now: ${trained.stderr}`);
    assert.match(trained.stdout, /training finished/);
    assert.ok(existsSync(path.join(library, 'training', 'runs', 'run-0001')), `${name}: training went into the --library folder`);
    assert.ok(existsSync(path.join(library, '.celforge', 'training.json')));

    const exported = await cli('export', '', '--out', path.join(library, 'dataset'));
    assert.equal(exported.code, 0, exported.stderr);
    const processed = await cli('process', clip);
    assert.equal(processed.code, 0, `${name}: process: ${processed.stderr}`);
    const frames = await cli('frames', clip, '--json');
    assert.equal(frames.code, 0, frames.stderr);
  }));
  // The configured library (./library) was never written: --library took its place everywhere.
  assert.ok(!existsSync(path.join(dir, 'library')), `written under the config's library: ${existsSync(path.join(dir, 'library')) ? readdirSync(path.join(dir, 'library')) : ''}`);
});

test('the daemon starts on a library that does not exist yet', { timeout: 240_000 }, async (t) => {
  const { dir, configFile } = await setup(t);
  const library = path.join(dir, 'not', 'yet');
  const child = spawn(process.execPath, [path.join(projectRoot, 'bin', 'celforge.js'), '--config', configFile, '--library', library, 'start'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.after(() => child.kill('SIGKILL'));
  await waitFor('the daemon to watch the inbox', () => output.includes('watching the inbox') || child.exitCode !== null, 120_000);
  child.kill('SIGTERM');
  assert.equal(await exited, 0, output);
  assert.doesNotMatch(output, /ENOENT/);
  assert.ok(existsSync(path.join(library, '.celforge')) && existsSync(path.join(library, 'catalog.sqlite')));
});

/**
 * chmod does not stop root, so as root the commands run as `nobody`, when
 * that user can read this checkout; otherwise the test is skipped.
 */
const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const nobodyCanRun = asRoot && spawnSync(process.execPath, ['-e', `require('fs').readFileSync(${JSON.stringify(path.join(projectRoot, 'bin', 'celforge.js'))})`], { uid: NOBODY, gid: NOBODY }).status === 0;
const chmodSkip = process.platform === 'win32' ? 'chmod does not make folders read-only on Windows'
  : asRoot && !nobodyCanRun ? 'running as root, where chmod does not block writing, and user nobody cannot read this checkout' : false;

function runAs(args: string[], cwd: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const ids = asRoot ? { uid: NOBODY, gid: NOBODY } : {};
    const child = spawn(process.execPath, [path.join(projectRoot, 'bin', 'celforge.js'), ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('a read-only library or export folder (chmod 555) is named read-only, not "ENOENT ... mkdir"', { timeout: 300_000, skip: chmodSkip }, async (t) => {
  const { dir, pictures, configFile } = await setup(t);
  chmodSync(dir, 0o755);
  const readOnly = path.join(dir, 'read-only');
  const writable = path.join(dir, 'writable');
  mkdirSync(readOnly);
  mkdirSync(writable);
  chmodSync(writable, 0o777);
  chmodSync(readOnly, 0o555);
  const cli = (...args: string[]) => runAs(['--config', configFile, ...args], dir);

  for (const library of [readOnly, path.join(readOnly, 'library')]) {
    for (const args of [['import', pictures], ['start'], ['search', ''], ['train', '--now']]) {
      const result = await cli('--library', library, ...args);
      assert.equal(result.code, 1, `${library}: ${args.join(' ')}: ${result.stdout}`);
      // train names its training folder, <library>/training, first.
      assert.match(result.stderr, new RegExp(`${library.replaceAll('.', '\\.')}(/training)?: the (library|training folder \\(train\\.dir\\)) is read-only or not writable`), `${args.join(' ')}`);
      assert.doesNotMatch(result.stderr, /ENOENT/);
    }
  }
  assert.deepEqual(readdirSync(readOnly), []);

  assert.equal((await cli('--library', writable, 'import', pictures)).code, 0);
  for (const out of [readOnly, path.join(readOnly, 'dataset')]) {
    const result = await cli('--library', writable, 'export', '', '--out', out);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stderr, new RegExp(`${out.replaceAll('.', '\\.')}: the export folder is read-only or not writable`));
  }
  assert.deepEqual(readdirSync(readOnly), []);
  chmodSync(readOnly, 0o755);
});

/** A read-only tmpfs, where mounting is allowed (root on Linux); else the test is skipped. */
function mountReadOnly(dir: string): boolean {
  if (process.platform !== 'linux' || !asRoot) return false;
  return spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', dir], { stdio: 'ignore' }).status === 0;
}

test('a library or export folder on a read-only mount is named read-only', { timeout: 300_000 }, async (t) => {
  const { dir, pictures, configFile } = await setup(t);
  const mount = path.join(dir, 'mount');
  mkdirSync(mount);
  if (!mountReadOnly(mount)) {
    t.skip('mounting a read-only tmpfs is not allowed here (needs root on Linux)');
    return;
  }
  try {
    await readOnlyMountRefused(dir, mount, pictures, configFile);
  } finally {
    // Before the temporary folder is removed.
    spawnSync('umount', [mount]);
  }
});

async function readOnlyMountRefused(dir: string, mount: string, pictures: string, configFile: string): Promise<void> {
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  for (const library of [mount, path.join(mount, 'library')]) {
    for (const args of [['import', pictures], ['start'], ['tag', '1girl', '--add', 'x']]) {
      const result = await cli('--library', library, ...args);
      assert.equal(result.code, 1, `${library}: ${args.join(' ')}: ${result.stdout}`);
      assert.match(result.stderr, new RegExp(`${library.replaceAll('.', '\\.')}: the library is read-only or not writable`));
      assert.doesNotMatch(result.stderr, /ENOENT/);
    }
  }
  const writable = path.join(dir, 'writable');
  assert.equal((await cli('--library', writable, 'import', pictures)).code, 0);
  for (const out of [mount, path.join(mount, 'dataset')]) {
    const result = await cli('--library', writable, 'export', '', '--out', out);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stderr, new RegExp(`${out.replaceAll('.', '\\.')}: the export folder is read-only or not writable`));
  }
}
