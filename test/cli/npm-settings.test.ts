/**
 * The project's own npm settings (package.json, .npmrc) make npm print no
 * warnings: `npx celforge ...` in a project laid out as a user's clone is
 * (its package.json and .npmrc, the installed node_modules, the bin) prints
 * celforge's output and nothing from npm. npm 11.2+ warns about every
 * .npmrc key it does not know ("Unknown project config"), which the
 * `onnxruntime-node-install=skip` line used to be.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { projectRoot, tempDir } from '../helpers.ts';

/** This process's environment without what an npm above it (`npm test`) exported: only the project's settings count. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)));
}

function run(command: string, args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

test('npx celforge and node bin/celforge.js print no npm warnings in a fresh project', async (t) => {
  const dir = tempDir(t);
  for (const file of ['package.json', 'package-lock.json', '.npmrc']) {
    if (existsSync(path.join(projectRoot, file))) copyFileSync(path.join(projectRoot, file), path.join(dir, file));
  }
  symlinkSync(path.join(projectRoot, 'node_modules'), path.join(dir, 'node_modules'));
  symlinkSync(path.join(projectRoot, 'bin'), path.join(dir, 'bin'));
  const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

  const help = await run(npx, ['--no', '--', 'celforge', '--help'], dir);
  assert.equal(help.code, 0, help.output);
  assert.match(help.output, /Usage: celforge/);
  assert.doesNotMatch(help.output, /npm (warn|WARN)/);

  const status = await run(npx, ['--no', '--', 'celforge', '--library', path.join(dir, 'library'), 'status'], dir);
  assert.equal(status.code, 0, status.output);
  assert.doesNotMatch(status.output, /npm (warn|WARN)/);

  const direct = await run(process.execPath, [path.join('bin', 'celforge.js'), '--library', path.join(dir, 'library'), 'status'], dir);
  assert.equal(direct.code, 0, direct.output);
  assert.doesNotMatch(direct.output, /npm (warn|WARN)/);
});

test("every dependency with an install script is reviewed in package.json's allowScripts (on every platform); onnxruntime-node's is off", () => {
  const read = (file: string) => JSON.parse(readFileSync(path.join(projectRoot, file), 'utf8'));
  const allowScripts: Record<string, boolean> = read('package.json').allowScripts;
  const withScripts = Object.entries(read('package-lock.json').packages as Record<string, { hasInstallScript?: boolean }>)
    .filter(([, entry]) => entry.hasInstallScript)
    .map(([where]) => where.replace(/^.*node_modules\//, ''));
  // npm 11.16+ lists unreviewed ones after every install (npm 12 blocks them): the platform ffmpeg packages only chmod their binary.
  assert.deepEqual(withScripts.filter((name) => !(name in allowScripts)), []);
  // Its postinstall downloads the CUDA provider (linux/x64), failing an offline install; `celforge gpu install` runs it on request.
  assert.equal(allowScripts['onnxruntime-node'], false);
  assert.doesNotMatch(existsSync(path.join(projectRoot, '.npmrc')) ? readFileSync(path.join(projectRoot, '.npmrc'), 'utf8') : '', /onnxruntime/);
});
