import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { download } from '../../src/adapters/downloader.ts';
import { CelforgeError } from '../../src/errors.ts';
import { FileServer, type FileServerOptions } from '../fixtures/file-server.ts';
import { tempDir } from '../helpers.ts';

const body = randomBytes(3 * 1024 * 1024 + 17);
const sha256 = createHash('sha256').update(body).digest('hex');

async function serve(t: Parameters<typeof tempDir>[0], options: Partial<FileServerOptions> = {}) {
  const server = await FileServer.start({ body, ...options });
  t.after(() => server.stop());
  return { server, dest: path.join(tempDir(t), 'models', 'm', 'model.onnx') };
}

test('downloads with progress up to the full size and verifies the pinned checksum', async (t) => {
  const { server, dest } = await serve(t);
  const progress: number[] = [];
  const result = await download({ url: `${server.url}/model.onnx`, dest, sha256, size: body.length, onProgress: (n) => progress.push(n) });
  assert.ok(readFileSync(dest).equals(body));
  assert.equal(result.sha256, sha256);
  assert.ok(progress.length > 1);
  assert.deepEqual(progress, [...progress].sort((a, b) => a - b), 'progress went backwards');
  assert.equal(progress.at(-1), body.length);
  assert.ok(!existsSync(`${dest}.part`));
});

test('a connection cut part-way is resumed with a Range request', async (t) => {
  const { server, dest } = await serve(t, { cutAfter: 1_000_000 });
  const result = await download({ url: `${server.url}/model.onnx`, dest, sha256 });
  assert.ok(readFileSync(dest).equals(body));
  assert.equal(result.attempts, 2);
  assert.equal(server.requests.length, 2);
  assert.match(server.requests[1]!.range ?? '', /^bytes=\d+-$/);
  assert.ok(Number(/\d+/.exec(server.requests[1]!.range!)![0]) >= 1_000_000 - 65536, 'the second request started over');
});

test('an earlier partial download is resumed, not restarted', async (t) => {
  const { server, dest } = await serve(t);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(path.dirname(dest), { recursive: true });
  writeFileSync(`${dest}.part`, body.subarray(0, 2_000_000));
  const result = await download({ url: `${server.url}/model.onnx`, dest, sha256 });
  assert.equal(result.resumedFrom, 2_000_000);
  assert.equal(server.requests[0]!.range, 'bytes=2000000-');
  assert.ok(readFileSync(dest).equals(body));
});

test('a checksum mismatch is refused with both hashes, and the partial file removed', async (t) => {
  const { server, dest } = await serve(t);
  const wrong = 'f'.repeat(64);
  await assert.rejects(download({ url: `${server.url}/model.onnx`, dest, sha256: wrong }), (error: unknown) => {
    assert.ok(error instanceof CelforgeError);
    assert.match(error.message, new RegExp(`model\\.onnx: the download does not match \\(SHA-256 ${sha256}, expected ${wrong}\\); the partial file was removed`));
    return true;
  });
  assert.ok(!existsSync(dest));
  assert.ok(!existsSync(`${dest}.part`));
});

test('without a pinned hash, the SHA-256 the server publishes (X-Linked-Etag) is checked', async (t) => {
  const good = await serve(t, { linkedEtag: sha256 });
  assert.equal((await download({ url: `${good.server.url}/m`, dest: good.dest })).sha256, sha256);
  const bad = await serve(t, { linkedEtag: '0'.repeat(64) });
  await assert.rejects(download({ url: `${bad.server.url}/m`, dest: bad.dest }), /does not match/);
  assert.ok(!existsSync(bad.dest));
});

test('a missing file names the URL and the status', async (t) => {
  const server = await FileServer.start({ body });
  const url = server.url;
  await server.stop();
  await assert.rejects(download({ url: `${url}/gone`, dest: path.join(tempDir(t), 'x'), retries: 1 }), /gone: download failed after 2 attempts/);
});
