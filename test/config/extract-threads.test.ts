/** extract.threads: the feature worker threads, one per core up to 8 by default; a bad value is named. */
import assert from 'node:assert/strict';
import os from 'node:os';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.ts';
import { CelforgeError } from '../../src/errors.ts';

test('extract.threads defaults to the cores (at most 8), takes 0 for inline, and refuses a negative or fractional count naming the key', () => {
  assert.equal(validateConfig({}, 'my.config.ts', '/').extract.threads, Math.min(8, os.availableParallelism()));
  assert.equal(validateConfig({ extract: { threads: 0 } }, 'my.config.ts', '/').extract.threads, 0);
  for (const threads of [-1, 1.5]) {
    assert.throws(() => validateConfig({ extract: { threads } }, 'my.config.ts', '/'), (error: unknown) => {
      assert.ok(error instanceof CelforgeError);
      assert.equal(error.code, 'CONFIG_INVALID');
      assert.match(error.message, new RegExp(`my\\.config\\.ts.*extract\\.threads = ${String(threads).replace('.', '\\.')}`, 's'));
      return true;
    });
  }
});
