/**
 * The review page's server over real HTTP: status codes, bad input, path
 * traversal attempts, a missing or wrong token, another host name; and each
 * change reaching the frame map and the catalog.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
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

  const hashes = (await get('/api/search?q=1girl')).json.images.map((image: { hash: string }) => image.hash);
  assert.equal(hashes.length, 2);
  const bulk = await post('/api/tags', { hashes, add: ['reviewed'], remove: ['1girl'] });
  assert.equal(bulk.status, 200, bulk.body);
  assert.equal(catalog.count('1girl'), 0);
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
