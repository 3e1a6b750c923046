/** Model downloads on first need: one download per model however many ask at once, never a shipped model, never two processes on one model. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { acquireLock } from '../../src/adapters/lock-file.ts';
import { loadManifest, type ModelEntry } from '../../src/models/manifest.ts';
import type { DownloadProgress } from '../../src/models/download-progress.ts';
import { ModelFetcher } from '../../src/models/model-fetcher.ts';
import { FileServer } from '../fixtures/file-server.ts';
import { tempDir } from '../helpers.ts';

const body = randomBytes(2 * 1024 * 1024 + 5);

async function modelServedAt(t: Parameters<typeof tempDir>[0], extra: Record<string, unknown> = {}) {
  const server = await FileServer.start({ body });
  t.after(() => server.stop());
  const dir = tempDir(t);
  const manifest = path.join(dir, 'manifest.json');
  writeFileSync(manifest, JSON.stringify({ models: [{
    id: 'tagger-x', kind: 'tagger', licence: 'test', homepage: 'http://127.0.0.1/',
    input: { size: 448, layout: 'NHWC', channels: 'BGR', range: '0-255', pad: 'white' },
    files: [{ name: 'model.onnx', url: `${server.url}/model.onnx`, sha256: createHash('sha256').update(body).digest('hex'), size: body.length }],
    ...extra,
  }] }));
  const [model] = await loadManifest(manifest);
  return { server, dir, modelsDir: path.join(dir, 'models'), model: model! };
}

function recorder() {
  const events: string[] = [];
  const progress: DownloadProgress = {
    start: (name) => void events.push(`start ${name}`),
    update: () => {},
    done: (name) => void events.push(`done ${name}`),
    failed: (name) => void events.push(`failed ${name}`),
  };
  return { events, progress };
}

test('two stages needing the same model at once share one download', async (t) => {
  const { server, modelsDir, model } = await modelServedAt(t);
  const { events, progress } = recorder();
  const fetcher = new ModelFetcher(progress, 'start');
  await Promise.all([fetcher.fetch(modelsDir, [model]), fetcher.fetch(modelsDir, [model])]);
  assert.equal(server.requests.length, 1);
  assert.deepEqual(events, ['start tagger-x/model.onnx', 'done tagger-x/model.onnx']);
  assert.ok(readFileSync(path.join(modelsDir, 'tagger-x', 'model.onnx')).equals(body));
  await fetcher.fetch(modelsDir, [model]);
  assert.equal(server.requests.length, 1, 'a model in place is not downloaded again');
});

test('a shipped model is never downloaded: the fetch says to restore it', async (t) => {
  const { server, dir, modelsDir } = await modelServedAt(t);
  const manifest = path.join(dir, 'shipped.json');
  const entry = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')).models[0];
  entry.shipped = true;
  entry.files[0].path = 'shipped/model.onnx';
  writeFileSync(manifest, JSON.stringify({ models: [entry] }));
  const [shipped] = await loadManifest(manifest);
  await assert.rejects(new ModelFetcher(recorder().progress, 'start').fetch(modelsDir, [shipped as ModelEntry]), /model tagger-x is shipped with celforge, but .*model\.onnx is missing or changed; restore it/);
  assert.equal(server.requests.length, 0);
});

test('a download another celforge process has under way is not started twice; the refusal names that process', async (t) => {
  const { server, modelsDir, model } = await modelServedAt(t);
  const held = await acquireLock(path.join(modelsDir, 'tagger-x.fetch.lock'), 'models fetch', 'the download of model tagger-x');
  t.after(() => held.release());
  await assert.rejects(new ModelFetcher(recorder().progress, 'start').fetch(modelsDir, [model]), /the download of model tagger-x is in use by celforge models fetch \(pid \d+\)/);
  assert.equal(server.requests.length, 0);
});

test('a download that does not match its checksum is not made again at every re-check; a changed manifest entry is tried again', async (t) => {
  const { server, modelsDir, model } = await modelServedAt(t);
  const wrong: ModelEntry = { ...model, files: [{ ...model.files[0]!, sha256: 'f'.repeat(64) }] };
  const fetcher = new ModelFetcher(recorder().progress, 'start');
  await assert.rejects(fetcher.fetch(modelsDir, [wrong]), /the download does not match/);
  await assert.rejects(fetcher.fetch(modelsDir, [wrong]), /the download does not match .*; not downloaded again until its manifest entry changes, or run "celforge models fetch tagger-x"/);
  assert.equal(server.requests.length, 1, 'the whole file was downloaded once, not at each re-check');
  await fetcher.fetch(modelsDir, [model]);
  assert.equal(server.requests.length, 2);
  assert.ok(readFileSync(path.join(modelsDir, 'tagger-x', 'model.onnx')).equals(body));
});
