import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { BUNDLED_MANIFEST, loadManifest } from '../../src/models/manifest.ts';
import { modelsAvailable } from '../../src/models/model-availability.ts';
import { FileServer } from '../fixtures/file-server.ts';
import { CASCADE_FILE } from '../fixtures/model-folder.ts';
import { projectRoot, runCli, tempDir, writeConfig } from '../helpers.ts';

test('models fetch downloads what the manifest names into the models folder; list shows it present', async (t) => {
  const cascade = readFileSync(CASCADE_FILE);
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

test('the shipped manifest is valid and pins every shipped file at its SHA-256 and size', async () => {
  const models = await loadManifest(BUNDLED_MANIFEST);
  assert.deepEqual(models.map((m) => m.kind).sort(), ['ccip', 'face-cascade', 'face-detector', 'face-detector', 'face-yolo', 'tagger', 'tagger', 'tagger']);
  const shipped = models.filter((m) => m.shipped);
  assert.deepEqual(shipped.map((m) => m.id).sort(), ['anime-faceboxes-1024', 'anime-faceboxes-1536', 'lbpcascade-animeface']);
  for (const file of shipped.flatMap((m) => m.files)) {
    assert.ok(file.path!.startsWith(path.join(projectRoot, 'models') + path.sep), `${file.path} is in the repository's models/`);
    const bytes = readFileSync(file.path!);
    assert.equal(bytes.length, file.size, file.path);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), file.sha256, file.path);
  }
  assert.equal(models.find((m) => m.id === 'lbpcascade-animeface')!.files[0]!.path, CASCADE_FILE);
});

test('shipped models are present with an empty models folder, and fetch never downloads them', async (t) => {
  const dir = tempDir(t);
  const configFile = writeConfig(dir, { models: { dir: './models' } });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });

  const listed = await cli('models', 'list');
  assert.equal(listed.code, 0, listed.stderr);
  for (const id of ['lbpcascade-animeface', 'anime-faceboxes-1024', 'anime-faceboxes-1536']) {
    assert.match(listed.stdout, new RegExp(`^${id}\\s+face-(cascade|detector)\\s+present\\s+shipped\\s`, 'm'));
  }
  assert.match(listed.stdout, /^wd-vit-tagger-v3\s+tagger\s+missing\s+download\s/m);
  const fetched = await cli('models', 'fetch', 'lbpcascade-animeface', 'anime-faceboxes-1024', 'anime-faceboxes-1536');
  assert.equal(fetched.code, 0, fetched.stderr);
  assert.equal(fetched.stdout, ['lbpcascade-animeface', 'anime-faceboxes-1024', 'anime-faceboxes-1536'].map((id) => `${id}: shipped with celforge, present\n`).join(''));
  assert.ok(!existsSync(path.join(dir, 'models')), 'nothing was written to the models folder');

  const config = await loadConfig({ configPath: configFile });
  const availability = await modelsAvailable(config, ['lbpcascade-animeface', 'anime-faceboxes-1536'], ['face-cascade', 'face-detector']);
  assert.ok(availability.ready, JSON.stringify(availability));
  assert.equal(availability.models[0]!.files['lbpcascade_animeface.xml'], CASCADE_FILE);
});

test('a shipped model whose file is gone is not downloaded: fetch, the stages and doctor say to restore it', async (t) => {
  const server = await FileServer.start({ body: readFileSync(CASCADE_FILE) });
  t.after(() => server.stop());
  const dir = tempDir(t);
  const manifest = path.join(dir, 'manifest.json');
  const entry = (file: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    id: 'lbpcascade-animeface', kind: 'face-cascade', licence: 'MIT', homepage: 'https://github.com/nagadomi/lbpcascade_animeface', shipped: true,
    input: { size: 0, layout: 'gray', channels: 'gray', range: '0-255', pad: 'none' },
    files: [{ name: 'lbpcascade_animeface.xml', url: `${server.url}/lbpcascade_animeface.xml`, sha256: 'a'.repeat(64), size: 246945, ...file }],
    ...extra,
  });
  writeFileSync(manifest, JSON.stringify({ models: [entry({ path: 'shipped/lbpcascade_animeface.xml' })] }));
  const configFile = writeConfig(dir, { models: { dir: './models', manifest: './manifest.json' }, faces: { detector: 'cascade' } });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });

  assert.match((await cli('models', 'list')).stdout, /lbpcascade-animeface\s+face-cascade\s+missing\s+shipped/);
  const fetched = await cli('models', 'fetch');
  assert.equal(fetched.code, 1);
  const missing = path.join(dir, 'shipped', 'lbpcascade_animeface.xml');
  assert.match(fetched.stderr, new RegExp(`model lbpcascade-animeface is shipped with celforge, but ${missing.replaceAll('.', '\\.')} is missing or changed; restore it \\(git checkout -- `));
  assert.equal(server.requests.length, 0, 'no download was tried');
  assert.ok(!existsSync(path.join(dir, 'models')));
  const config = await loadConfig({ configPath: configFile });
  const availability = await modelsAvailable(config, ['lbpcascade-animeface'], ['face-cascade']);
  assert.ok(!availability.ready && availability.command === null && /is shipped with celforge/.test(availability.reason), JSON.stringify(availability));
  const doctor = await cli('doctor');
  assert.match(doctor.stdout, /FAIL\s+model lbpcascade-animeface\s+lbpcascade_animeface\.xml missing: model lbpcascade-animeface is shipped with celforge/);

  for (const [file, extra, problem] of [
    [{}, {}, 'a shipped file needs its path inside the repository'],
    [{ path: '../elsewhere.xml' }, {}, "a shipped file's path is relative to the manifest's folder and stays inside it"],
    [{ path: 'x.xml', sha256: null }, {}, 'a shipped file needs its sha256 and size pinned'],
    [{ path: 'x.xml' }, { shipped: false }, 'only a shipped model \\("shipped": true\\) has file paths'],
    [{ url: null }, { shipped: false }, 'a file that is not shipped needs a url to download it from'],
  ] as const) {
    writeFileSync(manifest, JSON.stringify({ models: [entry(file, extra)] }));
    const refused = await cli('models', 'list');
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, new RegExp(`manifest\\.json: models\\.0\\.files\\.0: ${problem}`));
  }
});
