/**
 * The review page's server over real HTTP: status codes, bad input, path
 * traversal attempts, a missing or wrong token, another host name or origin;
 * each change reaching the frame map and the catalog; every POST route's
 * refusal of malformed bodies; symlinks in the library not followed out of it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { readFrameMap } from '../../src/adapters/frame-map-file.ts';
import { reviewedLibrary } from '../fixtures/reviewed-library.ts';

/** A raw request (fetch would normalise the path and refuse to set Host). */
function raw(url: string, options: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; body: string; type: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, method: options.method ?? 'GET', path: options.path, headers: options.headers }, (response) => {
      let body = '';
      response.setEncoding('latin1');
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body, type: String(response.headers['content-type'] ?? '') }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

test('review API: reads, refusals, and changes that reach the frame map and the catalog', async (t) => {
  const { url, token, job, library } = await reviewedLibrary(t);
  const post = (pathname: string, body: unknown, headers: Record<string, string> = { 'X-Celforge-Token': token }) =>
    raw(url, { method: 'POST', path: pathname, headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const get = async (pathname: string) => {
    const response = await raw(url, { path: pathname });
    return { ...response, json: response.type.startsWith('application/json') ? JSON.parse(response.body) : null };
  };

  const status = await get('/api/status');
  assert.equal(status.status, 200);
  assert.equal(status.json.jobs.length, 1);
  assert.equal(status.json.jobs[0].state, 'ready-for-review');
  assert.deepEqual(status.json.models.map((model: { state: string }) => model.state), ['present', 'present', 'present']);

  const scenes = await get(`/api/jobs/${job.id}/scenes`);
  assert.equal(scenes.status, 200);
  assert.equal(scenes.json.scenes.length, 3);
  const [first] = scenes.json.scenes[1].frames;
  assert.equal(first.status, 'kept');
  const picture = await raw(url, { path: first.picture });
  assert.equal(picture.status, 200);
  assert.equal(picture.type, 'image/png');
  const byHash = await raw(url, { path: `/api/images/${first.hash}` });
  assert.equal(byHash.body, picture.body, 'the same picture by hash');
  const duplicatePreview = await raw(url, { path: scenes.json.scenes[1].frames[1].picture });
  assert.equal(duplicatePreview.type, 'image/jpeg');

  // Refusals.
  assert.equal((await post('/api/tags', { hashes: [first.hash], add: ['x'] }, {})).status, 403, 'no token');
  assert.equal((await post('/api/tags', { hashes: [first.hash], add: ['x'] }, { 'X-Celforge-Token': 'f'.repeat(48) })).status, 403, 'wrong token');
  const rebound = await post('/api/tags', { hashes: [first.hash], add: ['x'] }, { 'X-Celforge-Token': token, Origin: 'http://evil.example:8642' });
  assert.equal(rebound.status, 403, 'a POST from another page, even with the token');
  assert.match(JSON.parse(rebound.body).error, /another web page/);
  assert.equal((await raw(url, { method: 'POST', path: `/api/images/${first.hash}/reject`, headers: { Origin: 'http://evil.example' } })).status, 403);
  assert.equal((await raw(url, { path: '/api/status', headers: { Host: 'evil.example' } })).status, 421, 'another host name (DNS rebinding)');
  assert.equal((await post('/api/tags', '{not json')).status, 400);
  assert.equal((await post('/api/tags', { hashes: ['../../etc/passwd'], add: ['x'] })).status, 400);
  assert.equal((await post('/api/tags', { hashes: [first.hash] })).status, 400, 'nothing to add or remove');
  assert.equal((await post(`/api/jobs/${job.id}/frames/0/duplicate`, { of: 'zero' })).status, 400);
  assert.equal((await post('/api/export', { query: '1girl', name: '../outside' })).status, 400);
  assert.equal((await post('/api/train', { now: true })).status, 409, 'no training configured');
  assert.equal((await raw(url, { method: 'DELETE', path: '/api/status', headers: { 'X-Celforge-Token': token } })).status, 405);
  for (const attempt of [
    '/api/images/../../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/app.js/../../package.json', '/api/images/..%2f..%2fcatalog.sqlite',
    `/api/images/${'0'.repeat(64)}`, `/api/jobs/${job.id}/frames/99999/picture`, '/../src/review/review-server.ts', '/api/jobs/..%2F..%2F/scenes',
  ]) {
    const response = await raw(url, { path: attempt });
    assert.equal(response.status, 404, attempt);
    assert.ok(!response.body.includes('root:') && !response.body.includes('"dependencies"') && !response.body.includes('SQLite'), attempt);
  }

  // Changes.
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  const restored = await post(`/api/jobs/${job.id}/frames/13/restore`, {});
  assert.equal(restored.status, 200, restored.body);
  const map = await readFrameMap(path.join(job.extract!.dir, 'frame-map.jsonl'));
  assert.equal(map[13]!.status, 'kept');
  assert.ok(catalog.get(map[13]!.sha256!), 'the restored frame is in the catalog');

  const marked = await post(`/api/jobs/${job.id}/frames/13/duplicate`, { of: 12 });
  assert.equal(marked.status, 200, marked.body);
  const after = await readFrameMap(path.join(job.extract!.dir, 'frame-map.jsonl'));
  assert.deepEqual([after[13]!.status, after[13]!.duplicateOf], ['duplicate', 12]);
  assert.ok(existsSync(path.join(library, after[13]!.file!)) && after[13]!.file!.includes('duplicates'), 'moved, not deleted');
  assert.ok(catalog.get(map[13]!.sha256!)!.rejectedAt, 'out of the dataset');
  assert.equal((await post(`/api/jobs/${job.id}/frames/13/duplicate`, { of: 12 })).status, 404, 'not a kept frame any more');

  // The frames (the crops of their faces have 1girl too).
  const hashes = (await get(`/api/search?q=${encodeURIComponent('1girl -crop:*')}`)).json.images.map((image: { hash: string }) => image.hash);
  assert.equal(hashes.length, 2);
  const bulk = await post('/api/tags', { hashes, add: ['reviewed'], remove: ['1girl'] });
  assert.equal(bulk.status, 200, bulk.body);
  assert.equal(catalog.count('1girl -crop:*'), 0);
  assert.equal(catalog.count('reviewed'), 2);
  const search = (await get('/api/search?q=reviewed')).json;
  assert.equal(search.count, 2);
  assert.deepEqual(search.tagCounts.find((entry: { tag: string }) => entry.tag === 'reviewed'), { tag: 'reviewed', count: 2 });
  const one = await post(`/api/images/${hashes[0]}/tags`, { add: ['1girl'] });
  assert.ok(JSON.parse(one.body).tags.includes('1girl'));
  const tags = (await get(`/api/images/${hashes[1]}/tags`)).json;
  assert.deepEqual(tags.deleted, ['1girl'], "a person's removal is remembered");

  const exported = await post('/api/export', { query: 'reviewed', name: 'ds' });
  assert.equal(exported.status, 200, exported.body);
  assert.ok(readFileSync(path.join(library, 'exports', 'ds', 'dataset_config.toml'), 'utf8').includes('[[datasets]]'));

  const rejected = await post(`/api/images/${hashes[1]}/reject`, {});
  assert.equal(rejected.status, 200);
  assert.equal(catalog.count('reviewed'), 1);
});

test('every POST route answers a malformed body with 400 and the reason, never 500, and changes nothing', async (t) => {
  const { url, token, job, library } = await reviewedLibrary(t);
  const post = (pathname: string, body: string) =>
    raw(url, { method: 'POST', path: pathname, headers: { 'Content-Type': 'application/json', 'X-Celforge-Token': token }, body });
  const scenes = JSON.parse((await raw(url, { path: `/api/jobs/${job.id}/scenes` })).body).scenes;
  const hash: string = scenes[0].frames.find((frame: { status: string }) => frame.status === 'kept').hash;
  const frameMap = path.join(job.extract!.dir, 'frame-map.jsonl');
  const mapBefore = readFileSync(frameMap, 'utf8');
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  const tagsBefore = catalog.tagsOf(hash);

  const common = ['null', '[]', '"str"', '1', 'true', '[{}]'];
  const routes: Record<string, unknown[]> = {
    [`/api/jobs/${job.id}/frames/1/restore`]: [{ frames: [1] }],
    [`/api/jobs/${job.id}/frames/0/duplicate`]: [{}, { of: 'zero' }, { of: 1.5 }, { of: -1 }, { of: null }, { of: [1] }],
    [`/api/images/${hash}/tags`]: [{}, { add: 'x' }, { add: [1] }, { add: ['  '] }, { remove: {} }, { add: ['x'], extra: 1 }, { add: ['x'.repeat(201)] }],
    [`/api/images/${hash}/reject`]: [{ really: true }],
    '/api/tags': [{}, { hashes: hash, add: ['x'] }, { hashes: [], add: ['x'] }, { hashes: [1], add: ['x'] }, { hashes: [hash] }, { hashes: [hash], add: [null] }],
    '/api/export': [{}, { query: 1, name: 'ds' }, { query: 'x', name: '../up' }, { query: 'x' }, { query: 'x', name: '.hidden' }, { query: null, name: 'ds' }],
    '/api/train': [{ now: 'yes' }, { now: 1 }, { later: true }],
  };
  for (const [route, specific] of Object.entries(routes)) {
    for (const body of [...common, ...specific.map((value) => JSON.stringify(value))]) {
      const response = await post(route, body);
      assert.equal(response.status, 400, `${route} ${body}: ${response.status} ${response.body}`);
      const { error } = JSON.parse(response.body) as { error: string };
      assert.match(error, /expected/, `${route} ${body}: says what is expected (${error})`);
    }
  }
  const named = JSON.parse((await post(`/api/jobs/${job.id}/frames/0/duplicate`, '{"of":"zero"}')).body).error;
  assert.match(named, /^of: /, 'the field is named');
  assert.match(JSON.parse((await post('/api/train', 'null')).body).error, /^the body: .*null/);

  assert.equal(readFileSync(frameMap, 'utf8'), mapBefore, 'the frame map is unchanged');
  assert.deepEqual(catalog.tagsOf(hash), tagsBefore, 'the tags are unchanged');
  assert.equal(catalog.get(hash)!.rejectedAt ?? null, null, 'not rejected');
  assert.ok(!existsSync(path.join(library, 'exports')), 'nothing exported');
});

test('pictures: a symlink leading out of the library, or a FIFO, is not served; a symlink inside it is', async (t) => {
  const { url, job, library, dir } = await reviewedLibrary(t);
  const scenes = JSON.parse((await raw(url, { path: `/api/jobs/${job.id}/scenes` })).body).scenes as { frames: { frame: number; status: string; hash: string | null; picture: string }[] }[];
  const kept = scenes.map((scene) => scene.frames.find((frame) => frame.status === 'kept')!);
  const duplicates = scenes[0]!.frames.filter((frame) => frame.status === 'duplicate');
  const map = await readFrameMap(path.join(job.extract!.dir, 'frame-map.jsonl'));
  const fileOf = (frame: number) => path.join(library, map[frame]!.file ?? map[frame]!.preview!);
  const outside = path.join(dir, 'outside');
  mkdirSync(outside);
  const secret = path.join(outside, 'secret.png');
  writeFileSync(secret, 'SECRET: the bytes of a file outside the library');
  const refused = async (what: string, ...paths: string[]) => {
    for (const pathname of paths) {
      const response = await raw(url, { path: pathname });
      assert.equal(response.status, 404, `${what}: ${pathname}`);
      assert.ok(!response.body.includes('SECRET'), what);
    }
  };

  // A picture replaced by a symlink to a file outside the library.
  rmSync(fileOf(kept[0]!.frame));
  symlinkSync(secret, fileOf(kept[0]!.frame));
  await refused('a symlink to a file outside', kept[0]!.picture, `/api/images/${kept[0]!.hash}`);

  // A scene folder moved out of the library and linked back in.
  const folder = path.dirname(fileOf(kept[1]!.frame));
  const moved = path.join(outside, 'scene');
  renameSync(folder, moved);
  symlinkSync(moved, folder);
  writeFileSync(path.join(moved, path.basename(fileOf(kept[1]!.frame))), 'SECRET: outside through a linked folder');
  await refused('a symlinked folder leading outside', kept[1]!.picture, `/api/images/${kept[1]!.hash}`);

  // A FIFO in a picture's place: refused without waiting for a writer.
  rmSync(fileOf(kept[2]!.frame));
  execFileSync('mkfifo', [fileOf(kept[2]!.frame)]);
  await refused('a FIFO', kept[2]!.picture);

  // A duplicate's preview as a symlink to another picture inside the library: served, with that picture's bytes.
  const [one, other] = duplicates;
  const inside = path.join(library, 'linked-target.jpg');
  copyFileSync(fileOf(other!.frame), inside);
  rmSync(fileOf(one!.frame));
  symlinkSync(path.relative(path.dirname(fileOf(one!.frame)), inside), fileOf(one!.frame));
  const served = await raw(url, { path: one!.picture });
  assert.equal(served.status, 200);
  assert.equal(served.type, 'image/jpeg');
  assert.equal(served.body, readFileSync(inside, 'latin1'));
});
