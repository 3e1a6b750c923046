// Runs every test/**/*.test.ts (or the test files named) with node's test runner through tsx.
// Node 20 neither expands globs in --test nor finds .ts files by itself.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(fileURLToPath(import.meta.url));
const files = readdirSync(root, { recursive: true })
  .filter((name) => name.endsWith('.test.ts') && !name.split(path.sep).includes('node_modules'))
  .map((name) => path.join('test', name))
  .sort();
// Test files named on the command line run alone; other arguments go to node.
const named = process.argv.slice(2).filter((arg) => arg.endsWith('.test.ts'));
const extra = process.argv.slice(2).filter((arg) => !arg.endsWith('.test.ts'));
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=2', ...extra, ...(named.length ? named : files)],
  { stdio: 'inherit', cwd: path.dirname(root) },
);
process.exit(result.status ?? 1);
