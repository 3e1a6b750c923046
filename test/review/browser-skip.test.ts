/**
 * The browser tests without a browser: skipped with the reason on a plain
 * machine, failed in CI. Runs the real review-page test file with
 * CELFORGE_CHROMIUM pointing at a path that does not exist.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { projectRoot } from '../helpers.ts';

function runPageTests(ci: string | undefined): Promise<{ code: number | null; output: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, CELFORGE_CHROMIUM: '/nonexistent/chromium' };
  delete env.CI;
  if (ci !== undefined) env.CI = ci;
  // NODE_TEST_CONTEXT would make the child report to this runner instead of printing its own results.
  delete env.NODE_TEST_CONTEXT;
  const file = path.join('test', 'review', 'review-page.test.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', file], { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, output })));
}

test('without chromium the browser tests are skipped and say why; with CI=true they fail', async () => {
  const plain = await runPageTests(undefined);
  assert.equal(plain.code, 0, plain.output);
  assert.match(plain.output, /ℹ skipped 2/, plain.output);
  assert.match(plain.output, /ℹ fail 0/, plain.output);
  assert.match(plain.output, /# \/nonexistent\/chromium is missing: install Debian's chromium package \(apt-get install chromium\), as \.ci\/run does, or set CELFORGE_CHROMIUM/);

  const ci = await runPageTests('true');
  assert.notEqual(ci.code, 0, ci.output);
  assert.match(ci.output, /ℹ fail 2/, ci.output);
  assert.match(ci.output, /\/nonexistent\/chromium is missing: .*\(CI=true: a missing program fails here instead of skipping the test\)/);
});
