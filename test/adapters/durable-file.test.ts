/** replaceFileDurably: whole files, from writers that overlap, into folders that do not exist yet. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { replaceFileDurably } from '../../src/adapters/durable-file.ts';
import { tempDir } from '../helpers.ts';

test('overlapping writes of one file all succeed and leave one whole version, nothing beside it', async (t) => {
  const dir = tempDir(t);
  // A library's state folder on first use: it does not exist yet.
  const file = path.join(dir, '.celforge', 'training.json');
  const versions = Array.from({ length: 20 }, (_, index) => JSON.stringify({ version: index, padding: 'x'.repeat(10_000) }));
  // With one shared `<file>.tmp`, a writer whose temporary file another had already renamed failed with ENOENT.
  await Promise.all(versions.map((text) => replaceFileDurably(file, text)));
  assert.ok(versions.includes(readFileSync(file, 'utf8')));
  assert.deepEqual(readdirSync(path.dirname(file)), ['training.json']);
});
