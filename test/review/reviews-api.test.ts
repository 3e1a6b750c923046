/**
 * The Compare view's API (src/review/reviews-api.ts) over real HTTP, on
 * review folders made as the checkpoint review makes them (two versions, a
 * regression on v2): the versions newest first, one version's summary with
 * the URLs of both versions' renders per seed, each URL serving the stored
 * file's bytes, the sheet; empty answers without a train section or before
 * the first review; refusals of traversal, of files that are no stored
 * render and of symlinks leading out; and the login beyond loopback.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { Ledger } from '../../src/daemon/ledger.ts';
import { catalogPath, ledgerPath } from '../../src/daemon/library-paths.ts';
import { startReviewServer, type ReviewServerOptions } from '../../src/review/review-server.ts';
import { CHECKPOINTS, HOSTILE_NAME, checkpointReviews } from '../fixtures/checkpoint-reviews.ts';
import { tempDir } from '../helpers.ts';
import { rawRequest as raw } from '../fixtures/raw-request.ts';


/** The review server in this process, on a real ledger and catalog, with the config `current()` gives at each request. */
async function serve(t: TestContext, dir: string, current: () => Config, options: Partial<ReviewServerOptions> = {}): Promise<string> {
  const library = path.join(dir, 'server-library');
  const ledger = await Ledger.open(ledgerPath(library));
  const catalog = Catalog.open(catalogPath(library));
  t.after(() => catalog.close());
  const server = await startReviewServer(
    { config: current, ledger, catalog, training: null, wakeTraining: () => undefined },
    { host: '127.0.0.1', port: 0, token: 'c'.repeat(48), log: pino({ level: 'silent' }), ...options },
  );
  t.after(() => server.close());
  return options.host === '0.0.0.0' ? `http://127.0.0.1:${new URL(server.url).port}/` : server.url;
}

test('reviews API: versions newest first, a version\'s renders side by side served as stored, the sheet; refusals', async (t) => {
  const reviews = await checkpointReviews(t);
  const url = await serve(t, reviews.dir, () => reviews.config);
  const get = (pathname: string) => raw(url, { path: pathname });
  const [v1, v2] = reviews.summaries;

  const list = await get('/api/reviews');
  assert.equal(list.status, 200);
  assert.deepEqual(list.json, {
    versions: [
      { version: 'v2', previous: 'v1', reviewedAt: v2!.reviewedAt, checkpoint: CHECKPOINTS[1]!.name, kind: 'checkpoint', templates: 3, regressions: 1 },
      { version: 'v1', previous: null, reviewedAt: v1!.reviewedAt, checkpoint: CHECKPOINTS[0]!.name, kind: 'checkpoint', templates: 3, regressions: 0 },
    ],
  });

  const one = await get('/api/reviews/v2');
  assert.equal(one.status, 200);
  assert.deepEqual(one.json.checkpoint, { kind: 'checkpoint', name: CHECKPOINTS[1]!.name, sha256: CHECKPOINTS[1]!.sha256 }, 'no file path handed to the page');
  assert.deepEqual(one.json.regressions, v2!.regressions);
  assert.deepEqual(one.json.regressions.map((regression: { template: string }) => regression.template), ['portrait']);
  assert.equal(one.json.sheet, '/api/reviews/v2/sheet');
  assert.deepEqual(one.json.templates.map((template: { template: string }) => template.template), ['portrait', HOSTILE_NAME, 'scenery']);
  const portrait = one.json.templates[0];
  assert.deepEqual([portrait.current, portrait.previous], [v2!.templates[0]!.current, v1!.templates[0]!.current]);
  assert.ok(portrait.previous.found === 1 && portrait.current.found < 1, `the share found fell: ${JSON.stringify(portrait)}`);
  let pictures = 0;
  for (const [index, template] of one.json.templates.entries()) {
    assert.equal(template.prompt, v2!.templates[index]!.prompt);
    assert.deepEqual(template.renders.map((render: { seed: number }) => render.seed), v2!.templates[index]!.seeds);
    for (const render of template.renders) {
      for (const version of ['v1', 'v2'] as const) {
        const address = render[version === 'v2' ? 'current' : 'previous'];
        assert.equal(address, `/api/reviews/${version}/renders/${template.folder}/${render.seed}`);
        const served = await get(address);
        assert.equal(served.status, 200, address);
        assert.equal(served.type, 'image/png');
        assert.ok(served.body.equals(readFileSync(reviews.renderFile(version, template.template, render.seed))), `${address}: the stored render's bytes`);
        pictures += 1;
      }
    }
  }
  assert.equal(pictures, 8, 'four renders a version');
  const first = await get('/api/reviews/v1');
  assert.equal(first.json.previous, null);
  assert.ok(first.json.templates.every((template: { previous: unknown; renders: { previous: unknown; current: unknown }[] }) =>
    template.previous === null && template.renders.every((render) => render.previous === null && typeof render.current === 'string')), 'v1 has nothing to compare with');
  const sheet = await get('/api/reviews/v2/sheet');
  assert.equal(sheet.status, 200);
  assert.ok(sheet.body.equals(readFileSync(path.join(reviews.trainDir, 'reviews', 'v2', 'sheet.png'))), 'v2\'s comparison sheet');
  assert.ok(!sheet.body.equals(readFileSync(path.join(reviews.trainDir, 'reviews', 'v1', 'sheet.png'))));

  // Refusals: nothing but a stored render or a sheet is served, whatever the path says.
  const secret = path.join(reviews.dir, 'secret.png');
  writeFileSync(secret, 'SECRET: a file outside the reviews');
  const v2Folder = path.join(reviews.trainDir, 'reviews', 'v2');
  // A picture without its record, and a render copied under another template's folder (its record names another).
  copyFileSync(reviews.renderFile('v2', 'portrait', 11), path.join(v2Folder, 'portrait', '33.png'));
  copyFileSync(reviews.renderFile('v2', 'portrait', 11), reviews.renderFile('v2', 'scenery', 7));
  const portraitRecord = JSON.parse(readFileSync(path.join(v2Folder, 'portrait', '11.json'), 'utf8'));
  writeFileSync(path.join(v2Folder, 'scenery', '7.json'), JSON.stringify({ ...portraitRecord, seed: 7 }));
  // A render replaced by a symlink leading out, with its record left in place.
  rmSync(reviews.renderFile('v2', 'portrait', 22));
  symlinkSync(secret, reviews.renderFile('v2', 'portrait', 22));
  // A folder of a version never reviewed, linked to the outside.
  mkdirSync(path.join(reviews.dir, 'outside', 'portrait'), { recursive: true });
  copyFileSync(reviews.renderFile('v1', 'portrait', 11), path.join(reviews.dir, 'outside', 'portrait', '11.png'));
  writeFileSync(path.join(reviews.dir, 'outside', 'portrait', '11.json'), JSON.stringify({ version: 'v9', seed: 11, template: 'portrait' }));
  symlinkSync(path.join(reviews.dir, 'outside'), path.join(reviews.trainDir, 'reviews', 'v9'));
  for (const pathname of [
    '/api/reviews/v2/renders/portrait/33', '/api/reviews/v2/renders/scenery/7', '/api/reviews/v2/renders/portrait/22', '/api/reviews/v9/renders/portrait/11',
    '/api/reviews/v2/renders/portrait/99', '/api/reviews/v2/renders/portrait/11.png', '/api/reviews/v2/renders/portrait/11.json',
    '/api/reviews/v2/renders/..%2f..%2f..%2fsecret/11', '/api/reviews/v2/renders/../11', '/api/reviews/v2/renders/%2e%2e/11', '/api/reviews/v2/renders/.hidden/11',
    '/api/reviews/v2/../../secret.png', '/api/reviews/..%2Fv2/sheet', '/api/reviews/v0', '/api/reviews/v01', '/api/reviews/v3', '/api/reviews/v3/sheet', '/api/reviews/v9',
    '/api/reviews/v2/review.json', '/api/reviews/v2/sheet.png',
  ]) {
    const refused = await get(pathname);
    assert.equal(refused.status, 404, `${pathname}: ${refused.status} ${refused.body.toString('utf8').slice(0, 80)}`);
    assert.ok(!refused.body.includes('SECRET'), pathname);
    assert.equal(refused.type, 'application/json; charset=utf-8', `${pathname}: an error, not a picture`);
  }
  assert.match((await get('/api/reviews/v3')).json.error, /no checkpoint review v3/);
  const after = await get('/api/reviews/v2');
  assert.equal(after.json.templates[0].renders[1].current, null, 'a render that became a symlink is not offered');
  assert.equal(after.json.templates[2].renders[0].current, null, 'nor one whose record names another template');
  assert.equal((await raw(url, { method: 'POST', path: '/api/reviews/v2', headers: { 'X-Celforge-Token': 'c'.repeat(48) }, body: '{}' })).status, 405, 'read only');

  // A damaged summary is named, with what to do.
  mkdirSync(path.join(reviews.trainDir, 'reviews', 'v3'));
  writeFileSync(path.join(reviews.trainDir, 'reviews', 'v3', 'review.json'), '{"version": "v3", ');
  const damaged = await get('/api/reviews');
  assert.equal(damaged.status, 400);
  assert.match(damaged.json.error, /v3[/\\]review\.json: not a checkpoint review record .*delete it to review v3 again/);
});

test('reviews API: no train section, or no review yet, is an empty list; beyond loopback the login guards it', async (t) => {
  const dir = tempDir(t, 'celforge-reviews-api-');
  const bare = validateConfig({ library: './library' }, 'test config', dir);
  const training = validateConfig({ library: './library', train: { sdScripts: dir, maxTrainSteps: 10 } }, 'test config', dir);
  let config = bare;
  const url = await serve(t, dir, () => config);
  const get = (pathname: string) => raw(url, { path: pathname });

  assert.deepEqual((await get('/api/reviews')).json, { versions: [] }, 'no train section');
  const unconfigured = await get('/api/reviews/v1');
  assert.equal(unconfigured.status, 404);
  assert.match(unconfigured.json.error, /training is not configured/);
  assert.equal((await get('/api/reviews/v1/renders/portrait/1')).status, 404);
  assert.equal((await get('/api/reviews/v1/sheet')).status, 404);
  config = training;
  assert.equal(training.train!.dir, path.join(dir, 'library', 'training'));
  assert.deepEqual((await get('/api/reviews')).json, { versions: [] }, 'no reviews folder yet');
  mkdirSync(path.join(training.train!.dir!, 'reviews', 'v1'), { recursive: true });
  assert.deepEqual((await get('/api/reviews')).json, { versions: [] }, 'a review cut short (no review.json) is not listed');
  assert.equal((await get('/api/reviews/v1')).status, 404);

  const password = 'correct horse battery staple';
  const guarded = await serve(t, dir, () => training, { host: '0.0.0.0', allowedHosts: ['celforge.test'], password });
  const host = { Host: `celforge.test:${new URL(guarded).port}` };
  for (const pathname of ['/api/reviews', '/api/reviews/v1', '/api/reviews/v1/renders/portrait/1', '/api/reviews/v1/sheet']) {
    const refused = await raw(guarded, { path: pathname, headers: host });
    assert.equal(refused.status, 401, pathname);
    assert.match(refused.json.error, /log in first/);
  }
  const login = await raw(guarded, { method: 'POST', path: '/login', headers: { ...host, Origin: `http://${host.Host}`, 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ password }).toString() });
  assert.equal(login.status, 303);
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;
  const listed = await raw(guarded, { path: '/api/reviews', headers: { ...host, Cookie: cookie } });
  assert.equal(listed.status, 200);
  assert.deepEqual(listed.json, { versions: [] });
});
