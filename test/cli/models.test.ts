import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { FileServer } from '../fixtures/file-server.ts';
import { runCli, tempDir, writeConfig } from '../helpers.ts';

test('models fetch downloads what the manifest names into the models folder; list shows it present', async (t) => {
  const cascade = readFileSync(path.join(import.meta.dirname, '..', '..', '..', 'shared', 'models', 'lbpcascade_animeface.xml'));
  const server = await FileServer.start({ body: cascade });
  t.after(() => server.stop());
  const dir = tempDir(t);
  const manifest = path.join(dir, 'manifest.json');
  writeFileSync(manifest, JSON.stringify({ models: [{
    id: 'lbpcascade-animeface', kind: 'face-cascade', licence: 'MIT', homepage: 'https://github.com/nagadomi/lbpcascade_animeface',
    input: { size: 0, layout: 'gray', channels: 'gray', range: '0-255', pad: 'none' },
    files: [{ name: 'lbpcascade_animeface.xml', url: `${server.url}/lbpcascade_animeface.xml`, sha256: createHash('sha256').update(cascade).digest('hex'), size: cascade.length }],
  }] }));
  const configFile = writeConfig(dir, { models: { dir: './models', manifest: './manifest.json' } });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });

  assert.match((await cli('models', 'list')).stdout, /lbpcascade-animeface\s+face-cascade\s+missing/);
  const fetched = await cli('models', 'fetch');
  assert.equal(fetched.code, 0, fetched.stderr);
  assert.match(fetched.stdout, /lbpcascade-animeface\/lbpcascade_animeface\.xml: 241\.2 KiB, sha256 9376d30a/);
  assert.ok(readFileSync(path.join(dir, 'models', 'lbpcascade-animeface', 'lbpcascade_animeface.xml')).equals(cascade));
  assert.match((await cli('models', 'list')).stdout, /lbpcascade-animeface\s+face-cascade\s+present/);
  assert.match((await cli('models', 'fetch', 'lbpcascade-animeface')).stdout, /already present/);
  const unknown = await cli('models', 'fetch', 'no-such-model');
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no model no-such-model; known: lbpcascade-animeface/);
});

test('the shipped manifest is valid and pins the cascade shared with the tests', async () => {
  const { loadManifest, BUNDLED_MANIFEST } = await import('../../src/models/manifest.ts');
  const models = await loadManifest(BUNDLED_MANIFEST);
  assert.deepEqual(models.map((m) => m.kind).sort(), ['face-cascade', 'face-yolo', 'tagger', 'tagger', 'tagger']);
  const cascade = readFileSync(path.join(import.meta.dirname, '..', '..', '..', 'shared', 'models', 'lbpcascade_animeface.xml'));
  const entry = models.find((m) => m.id === 'lbpcascade-animeface')!.files[0]!;
  assert.equal(entry.sha256, createHash('sha256').update(cascade).digest('hex'));
  assert.equal(entry.size, cascade.length);
});
