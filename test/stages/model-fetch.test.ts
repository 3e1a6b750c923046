/**
 * Models fetched on first need (models.autoFetch): the YOLO detector, which
 * the manifest says to download from a local HTTP server, is downloaded by
 * `celforge process` and by the daemon when the faces stage needs it, once,
 * checked against its pinned SHA-256; with the server down the job waits
 * naming the model and why, and goes on when the server is back; with
 * autoFetch off nothing is downloaded and the job waits as before.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { readFaces } from '../../src/adapters/faces-file.ts';
import { makeClip } from '../fixtures/clips.ts';
import { makeFacesClip } from '../fixtures/faces-clip.ts';
import { FileServer } from '../fixtures/file-server.ts';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { RecordServer } from '../fixtures/record-server.ts';
import { readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

const clip = await makeFacesClip();
const MODEL = 'anime-face-yolov8s';

/** An empty models folder, and a manifest whose YOLO model (pinned by SHA-256 and size) is served at `url`. */
function setup(t: Parameters<typeof tempDir>[0], url: string, extra: Record<string, unknown> = {}, autoFetch?: boolean) {
  const dir = tempDir(t);
  // Input 64x64; every picture gets one box.
  const built = writeModelFolder(path.join(dir, 'built'), { taggers: [], yolo: { size: 64, freeBatch: true, rows: [[32, 32, 8, 8, 0.9]] } });
  const body = readFileSync(path.join(built.dir, MODEL, 'model.onnx'));
  const manifest = JSON.parse(readFileSync(built.manifest, 'utf8'));
  manifest.models[0].files[0] = { name: 'model.onnx', url: `${url}/${MODEL}/model.onnx`, sha256: createHash('sha256').update(body).digest('hex'), size: body.length };
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  rmSync(path.join(dir, 'built'), { recursive: true });
  const configFile = writeConfig(dir, {
    inbox: './inbox', library: './library', disk: { reserve: 0 }, watch: { settleSeconds: 0.2 },
    models: { dir: './models', manifest: './manifest.json', ...(autoFetch === undefined ? {} : { autoFetch }) },
    faces: { detector: 'yolo', score: 0.5, iou: 0.5 }, tags: { taggers: [] }, inference: { batchSize: 2, workers: 1 },
    ...extra,
  });
  return {
    dir, body, configFile, library: path.join(dir, 'library'), modelFile: path.join(dir, 'models', MODEL, 'model.onnx'),
    cli: (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir }),
  };
}

/** The address of a server that is not there (a port free a moment ago), for serveAt() to bring up. */
async function vacantUrl(): Promise<string> {
  const probe = await FileServer.start({ body: Buffer.alloc(0) });
  await probe.stop();
  return probe.url;
}

async function serveAt(t: Parameters<typeof tempDir>[0], url: string, body: Buffer): Promise<FileServer> {
  const server = await FileServer.start({ body, port: Number(new URL(url).port) });
  t.after(() => server.stop());
  return server;
}

test('process downloads the missing YOLO model when the faces stage needs it, once, checked, and goes on', async (t) => {
  const url = await vacantUrl();
  const { cli, library, modelFile, body } = setup(t, url);
  const server = await serveAt(t, url, body);

  const result = await cli('process', clip.file);
  assert.equal(result.code, 0, result.stderr + result.stdout);
  assert.match(result.stdout, new RegExp(`${MODEL}/model\\.onnx: [\\d.]+ (B|KiB), sha256 ${createHash('sha256').update(body).digest('hex')}`));
  assert.equal(server.requests.length, 1, 'downloaded once');
  assert.ok(readFileSync(modelFile).equals(body));
  const job = readJobs(library)[0]!;
  assert.equal(job.state, 'ready-for-review');
  const faces = await readFaces(path.join(job.extract!.dir, 'faces.jsonl'));
  assert.deepEqual(faces.map((record) => record.faces.length), [1, 1, 1], 'the downloaded model found the faces');
});

test('process with the server down leaves the job waiting, naming the model and why (exit 3); once the server is back the next process fetches it and finishes', async (t) => {
  const url = await vacantUrl();
  const { cli, library, modelFile, body } = setup(t, url);

  const offline = await cli('process', clip.file);
  assert.equal(offline.code, 3, offline.stderr + offline.stdout);
  assert.match(offline.stdout, new RegExp(`faces/waiting-for-model .*model ${MODEL} is not in .* and its download failed \\(.*ECONNREFUSED.*\\); it is tried again at the next check, or run "celforge models fetch ${MODEL}"`));
  const waiting = readJobs(library)[0]!;
  assert.equal(waiting.state, 'waiting-for-model');
  assert.deepEqual(waiting.waitingFor?.models, [MODEL]);
  assert.match(waiting.waitingFor?.downloadError ?? '', /ECONNREFUSED/);
  assert.equal(waiting.extract?.kept, 3, 'the frames are kept while it waits');
  assert.ok(!existsSync(modelFile));

  const server = await serveAt(t, url, body);
  const online = await cli('process', clip.file);
  assert.equal(online.code, 0, online.stderr + online.stdout);
  assert.equal(server.requests.length, 1);
  assert.equal(readJobs(library)[0]!.state, 'ready-for-review');
});

test('with models.autoFetch false, process downloads nothing and leaves the job waiting for the model with the fetch command (exit 3)', async (t) => {
  const url = await vacantUrl();
  const { cli, library, modelFile, body } = setup(t, url, {}, false);
  const server = await serveAt(t, url, body);

  const result = await cli('process', clip.file);
  assert.equal(result.code, 3, result.stderr + result.stdout);
  assert.match(result.stdout, new RegExp(`faces/waiting-for-model .*model ${MODEL} is not in .*; run "celforge models fetch ${MODEL}"`));
  assert.equal(server.requests.length, 0);
  assert.ok(!existsSync(modelFile));
  assert.equal(readJobs(library)[0]!.waitingFor?.downloadError, undefined);
});

test('the daemon with the server down: two jobs wait naming why (status, notification); with the server back and a SIGHUP both go on, the model downloaded once', async (t) => {
  const hook = await RecordServer.start();
  t.after(() => hook.stop());
  const url = await vacantUrl();
  const { dir, configFile, library, cli, body } = setup(t, url, { notify: { desktop: false, webhook: { url: `${hook.url}/hook` }, groupSeconds: 0 } });
  mkdirSync(path.join(dir, 'inbox'));
  copyFileSync(clip.file, path.join(dir, 'inbox', 'Stills 01.m2ts'));
  copyFileSync(await makeClip({ width: 320, height: 180, seconds: 1, variant: 5 }), path.join(dir, 'inbox', 'Stills 02.m2ts'));

  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  const waiting = await waitFor('both jobs to wait for the model', () => {
    const jobs = readJobs(library);
    return jobs.length === 2 && jobs.every((job) => job.state === 'waiting-for-model') && jobs;
  }, 120_000);
  for (const job of waiting) {
    assert.equal(job.stage, 'faces');
    assert.match(job.waitingFor!.reason, new RegExp(`model ${MODEL} is not in .* and its download failed \\(.*ECONNREFUSED`));
  }
  const status = await cli('status');
  assert.match(status.stdout, /faces\/waiting-for-model .*its download failed \(.*ECONNREFUSED/);
  const events = await waitFor('two notifications', () => (hook.requests.length >= 2 ? hook.requests.map((request) => JSON.parse(request.body)) : false));
  for (const event of events) {
    assert.equal(event.events[0].kind, 'model-missing');
    assert.match(event.message, new RegExp(`its download failed \\(.*ECONNREFUSED.*\\).*celforge models fetch ${MODEL}`));
  }

  const server = await serveAt(t, url, body);
  daemon.child.kill('SIGHUP');
  await waitFor('both jobs to finish', () => {
    const jobs = readJobs(library);
    return jobs.every((job) => job.state === 'ready-for-review') && jobs;
  }, 120_000);
  assert.equal(server.requests.length, 1, 'one download for both jobs');
  assert.match(daemon.output(), new RegExp(`downloading ${MODEL}/model\\.onnx \\([\\d.]+ (B|KiB)\\) from http://127\\.0\\.0\\.1:\\d+/${MODEL}/model\\.onnx`));
  assert.match(daemon.output(), new RegExp(`downloaded ${MODEL}/model\\.onnx: [\\d.]+ (B|KiB), sha256 [0-9a-f]{64}`));
  assert.match(daemon.output(), /the models are there now; continuing/);
});
