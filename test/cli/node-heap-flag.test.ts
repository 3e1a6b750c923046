/**
 * The ways of starting celforge outside the service units (tested in
 * test/service/service-units.test.ts) give node the heap flag
 * (src/cli/node-heap-flag.ts): the bin's shebang, run as a program here
 * (env -S), really hands it to node, and `npm start` names it before the
 * script (after it, node would hand it to celforge).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { NODE_HEAP_FLAG } from '../../src/cli/node-heap-flag.ts';
import { PROJECT } from '../../src/service/service-units.ts';
import { tempDir } from '../helpers.ts';

test('the bin run as a program starts node with the heap flag', { skip: process.platform === 'win32' && 'no shebangs' }, (t) => {
  const seen = path.join(tempDir(t), 'exec-argv.json');
  // A preload (NODE_OPTIONS takes --require, not the heap flag) writes down what node was started with.
  const preload = path.join(tempDir(t), 'record-argv.cjs');
  writeFileSync(preload, `require('node:fs').writeFileSync(${JSON.stringify(seen)}, JSON.stringify(process.execArgv));\n`);
  const help = execFileSync(path.join(PROJECT, 'bin', 'celforge.js'), ['--help'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: `--require ${preload}` } });
  assert.match(help, /Usage: celforge/);
  assert.deepEqual(JSON.parse(readFileSync(seen, 'utf8')), [NODE_HEAP_FLAG]);
});

test('npm start names the heap flag before the script', () => {
  const scripts = (JSON.parse(readFileSync(path.join(PROJECT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  assert.equal(scripts.start, `node ${NODE_HEAP_FLAG} bin/celforge.js start`);
});
