/**
 * The Characters view's API over real HTTP, on a library with seven clusters in two series:
 * reads (series, clusters with sample crops served by hash, members);
 * refusals (no token, a foreign Origin, malformed bodies, unknown clusters,
 * series and crops, a name no tag can carry) that change nothing; and each
 * change reaching the catalog's `character:` tags at once. Beyond loopback,
 * the same login guards these routes as the others.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { CharacterClusters } from '../../src/catalog/character-clusters.ts';
import { captionPathOf } from '../../src/catalog/sidecars.ts';
import { SECOND_SERIES, SERIES, TAGGER_CHARACTER, characterLibrary, type CharacterLibrary } from '../fixtures/character-library.ts';
import { rawRequest as raw } from '../fixtures/raw-request.ts';


const sorted = (values: Iterable<string>) => [...values].sort();
const found = (library: CharacterLibrary, tag: string) => sorted(library.catalog.search(tag, { limit: 1000 }).map((image) => image.hash));
const withFrames = (library: CharacterLibrary, crops: string[]) => sorted(crops.flatMap((crop) => [crop, library.frameOf.get(crop)!]));

test('characters API: reads, refusals that change nothing, and changes the catalog follows at once', async (t) => {
  const library = await characterLibrary(t);
  const { url, clusterOf, crops } = library;
  const get = (pathname: string) => raw(url, { path: pathname });
  const token = /name="celforge-token" content="([0-9a-f]+)"/.exec((await get('/')).body.toString('utf8'))![1]!;
  const post = (pathname: string, body: unknown, headers: Record<string, string> = { 'X-Celforge-Token': token }) =>
    raw(url, { method: 'POST', path: pathname, headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const clusters = async () => (await get(`/api/characters/clusters?series=${encodeURIComponent(SERIES)}`)).json.clusters as { id: number; name: string | null; noise: boolean; size: number; samples: { hash: string; picture: string }[] }[];

  assert.deepEqual((await get('/api/characters')).json, { series: [SECOND_SERIES, SERIES] });
  const listed = await get(`/api/characters/clusters?series=${encodeURIComponent(SERIES)}&samples=2`);
  assert.equal(listed.status, 200);
  const red = listed.json.clusters.find((cluster: { id: number }) => cluster.id === clusterOf.red);
  assert.deepEqual({ size: red.size, name: red.name, noise: red.noise, samples: red.samples.length }, { size: 4, name: null, noise: false, samples: 2 });
  assert.ok(red.samples.every((sample: { hash: string }) => crops.red.includes(sample.hash)));
  assert.ok(!JSON.stringify(listed.json).includes('crops/face'), 'no library paths handed to the page');
  const picture = await get(red.samples[0].picture);
  assert.equal(picture.status, 200);
  const file = library.catalog.get(red.samples[0].hash)!.path;
  assert.ok(picture.body.equals(readFileSync(path.join(library.library, file))), 'the crop itself, by hash');
  const samples = async (query: string) => (await get(`/api/characters/clusters?series=${encodeURIComponent(SERIES)}${query}`)).json.clusters[0].samples.length;
  assert.deepEqual([await samples(''), await samples('&samples=3'), await samples('&samples=1000'), await samples('&samples=zero')], [8, 3, 10, 8], 'the largest cluster: 8 samples unless asked');
  const members = await get(`/api/characters/clusters/${clusterOf.green}/members`);
  assert.deepEqual(sorted(members.json.members.map((member: { hash: string }) => member.hash)), sorted(crops.green));
  assert.deepEqual(members.json.members.map((member: { byPerson: boolean }) => member.byPerson), [false, false, false]);

  // Refusals: each answers JSON with what is wrong, and nothing changes.
  const nameRed = `/api/characters/clusters/${clusterOf.red}/name`;
  assert.equal((await post(nameRed, { name: 'Saber' }, {})).status, 403, 'no token');
  assert.equal((await post(nameRed, { name: 'Saber' }, { 'X-Celforge-Token': 'f'.repeat(48) })).status, 403, 'wrong token');
  const foreign = await post(nameRed, { name: 'Saber' }, { 'X-Celforge-Token': token, Origin: 'http://evil.example' });
  assert.equal(foreign.status, 403, 'a POST from another page, even with the token');
  assert.match(foreign.json.error, /another web page/);
  const refusals: [string, unknown, number, RegExp][] = [
    [nameRed, { name: '' }, 400, /name: a name cannot be empty/],
    [nameRed, { name: '   ' }, 400, /a name cannot be empty/],
    [nameRed, { name: 'x'.repeat(101) }, 400, /at most 100 characters/],
    [nameRed, { name: 'Saber', extra: 1 }, 400, /extra/],
    [nameRed, {}, 400, /expected \{"name": "<character name>"\}/],
    [nameRed, '{not json', 400, /not JSON/],
    [nameRed, { name: 'Saber, Rin' }, 400, /comma/],
    [nameRed, { name: 'say "hi"' }, 400, /double quote/],
    [nameRed, { name: 'line\nbreak' }, 400, /line break/],
    ['/api/characters/clusters/99999/name', { name: 'Saber' }, 404, /no character cluster with id 99999/],
    [`/api/characters/clusters/${clusterOf.red}/merge`, { other: clusterOf.red }, 400, /cannot be merged into itself/],
    [`/api/characters/clusters/${clusterOf.red}/merge`, { other: 99999 }, 404, /no character cluster with id 99999/],
    [`/api/characters/clusters/${clusterOf.red}/merge`, { other: clusterOf.orange }, 400, /different series/],
    [`/api/characters/clusters/${clusterOf.red}/merge`, { other: 'blue' }, 400, /other:/],
    [`/api/characters/clusters/${clusterOf.red}/move-out`, { hashes: [crops.green[0]] }, 404, new RegExp(`no crop with hash ${crops.green[0]} in cluster ${clusterOf.red}`)],
    [`/api/characters/clusters/${clusterOf.red}/move-out`, { hashes: ['../../catalog.sqlite'] }, 400, /64 hex digits/],
    [`/api/characters/clusters/${clusterOf.red}/move-out`, { hashes: [] }, 400, /at least one crop/],
    [`/api/characters/clusters/${clusterOf.red}/noise`, { noise: 'yes' }, 400, /noise:/],
  ];
  for (const [pathname, body, status, message] of refusals) {
    const response = await post(pathname, body);
    assert.equal(response.status, status, `${pathname} ${JSON.stringify(body)}: ${response.body}`);
    assert.match(response.json.error, message);
  }
  for (const change of ['name', 'merge', 'move-out', 'noise']) {
    for (const body of ['null', '[]', '"str"', '1', 'true', '[{}]', '{}']) {
      const response = await post(`/api/characters/clusters/${clusterOf.red}/${change}`, body);
      assert.equal(response.status, 400, `${change} ${body}: ${response.body}`);
      assert.match(response.json.error, /expected/, `${change} ${body}: says what is expected`);
    }
  }
  assert.equal((await get('/api/characters/clusters/99999/members')).status, 404);
  const noSeries = await get('/api/characters/clusters?series=Other');
  assert.equal(noSeries.status, 404);
  assert.match(noSeries.json.error, /no character clusters in series "Other"/);
  assert.equal((await get('/api/characters/clusters/1/../../../catalog.sqlite')).status, 404);
  assert.equal((await get(`/api/characters/clusters/${clusterOf.red}/name`)).status, 405, 'a change is a POST');
  assert.deepEqual((await clusters()).map((cluster) => [cluster.name, cluster.noise, cluster.size]),
    [[null, false, 10], [null, false, 4], [null, false, 3], [null, false, 2], [null, false, 2], [null, false, 1]], 'nothing changed');
  assert.deepEqual(found(library, 'character:*'), [crops.red[0]], "only the tagger's");
  assert.equal((await clusters()).length, 6);

  // Changes. Captions as the tags stage writes them beside a red crop, its frame and a green crop follow each one.
  const captionOf = (hash: string) => captionPathOf(path.join(library.library, library.catalog.get(hash)!.path));
  const captioned = [crops.red[0]!, library.frameOf.get(crops.red[0]!)!, crops.green[0]!];
  for (const hash of captioned) writeFileSync(captionOf(hash), '1girl, solo\n');
  const caption = (hash: string) => readFileSync(captionOf(hash), 'utf8');
  const named = await post(nameRed, { name: 'Saber Alter' });
  assert.match(caption(captioned[0]!), /\bsaber alter\b/, 'the crop caption names the character');
  assert.match(caption(captioned[1]!), /\bsaber alter\b/, 'and so does its frame');
  assert.doesNotMatch(caption(captioned[2]!), /saber/, 'a crop of another cluster is left as it was');
  assert.deepEqual(named.json, { id: clusterOf.red, tag: 'character:saber_alter' });
  assert.deepEqual(found(library, 'character:saber_alter'), withFrames(library, crops.red));
  assert.equal((await clusters())[0]!.name, 'saber_alter', 'named first');
  const searched = await library.cli('search', 'character:saber_alter', '--json');
  assert.equal(searched.code, 0, searched.stderr);
  assert.deepEqual(sorted(searched.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { hash: string }).hash)), withFrames(library, crops.red), 'celforge search finds the crops and their frames');
  const listed2 = (await get(`/api/characters/clusters?series=${encodeURIComponent(SERIES)}`)).json;
  assert.deepEqual(listed2.conflicts, { tag: 'review:character_conflict', count: 1 }, `the red crop the tagger called ${TAGGER_CHARACTER}`);

  assert.equal((await post(`/api/characters/clusters/${clusterOf.green}/merge`, { other: clusterOf.red })).status, 200);
  assert.deepEqual(found(library, 'character:saber_alter'), withFrames(library, [...crops.red, ...crops.green]), 'the merged cluster keeps the name');
  assert.match(caption(captioned[2]!), /\bsaber alter\b/, 'a crop merged in is captioned with the name');
  assert.equal((await get(`/api/characters/clusters/${clusterOf.red}/members`)).status, 404, 'the other cluster is gone');
  const merged = await get(`/api/characters/clusters/${clusterOf.green}/members`);
  assert.equal(merged.json.members.filter((member: { byPerson: boolean }) => member.byPerson).length, 4, "the red crops placed by a person's merge");

  const moved = await post(`/api/characters/clusters/${clusterOf.green}/move-out`, { hashes: crops.green.slice(0, 2) });
  assert.deepEqual(moved.json, { id: clusterOf.green, moved: 2 });
  assert.deepEqual(found(library, 'character:saber_alter'), withFrames(library, [...crops.red, crops.green[2]!]));
  assert.ok(library.catalog.deletedTagsOf(crops.green[0]!).includes('character:saber_alter'), "recorded as a person's removal");
  assert.doesNotMatch(caption(captioned[2]!), /saber/, 'a crop moved out loses the name in its caption');

  assert.deepEqual((await post(`/api/characters/clusters/${clusterOf.green}/noise`, { noise: true })).json, { id: clusterOf.green, noise: true });
  assert.equal(library.catalog.count('character:saber_alter'), 0);
  assert.doesNotMatch(caption(captioned[0]!), /saber/, 'noise names no one in the captions either');
  assert.equal((await get(`/api/characters/clusters?series=${encodeURIComponent(SERIES)}`)).json.conflicts.count, 0, 'noise names no one, so nothing disagrees');
  assert.equal((await clusters()).find((cluster) => cluster.id === clusterOf.green)!.noise, true);
});

test('characters API beyond loopback: no session, no clusters; no Origin, no change', async (t) => {
  const library = await characterLibrary(t, { review: { port: 0, host: '0.0.0.0', allowedHosts: ['celforge.test'], password: 'correct horse battery staple' } });
  const port = new URL(library.url).port;
  const local = `http://127.0.0.1:${port}/`;
  const headers = { Host: `celforge.test:${port}` };
  const reads = await raw(local, { path: '/api/characters', headers });
  assert.equal(reads.status, 401);
  assert.match(reads.json.error, /log in first/);
  assert.equal((await raw(local, { path: `/api/characters/clusters/${library.clusterOf.red}/members`, headers })).status, 401);
  const change = await raw(local, { method: 'POST', path: `/api/characters/clusters/${library.clusterOf.red}/noise`, headers: { ...headers, 'Content-Type': 'application/json' }, body: '{"noise":true}' });
  assert.equal(change.status, 403);
  assert.match(change.json.error, /without an Origin header/);
  assert.ok(new CharacterClusters(library.catalog).clusters(SERIES).every((cluster) => !cluster.noise), 'no cluster marked noise');
  assert.equal(new Set(library.catalog.search('crop:face').map((image) => image.hash)).size, 24, 'the crops are all still there');
});
