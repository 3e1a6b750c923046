import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { Catalog, type NewImage } from '../../src/adapters/catalog-store.ts';
import { parseQuery } from '../../src/catalog/query.ts';
import { tempDir } from '../helpers.ts';

function image(n: number, extra: Partial<NewImage> = {}): NewImage {
  return {
    hash: n.toString(16).padStart(64, '0'), path: `s/01/frames/scene-0001/s_01_${n}.png`, size: 100 + n, width: 1920, height: 1080,
    series: 'ubw', episode: '03', scene: 1, frame: n, source: '/inbox/ubw 03.m2ts', ...extra,
  };
}

function open(t: Parameters<typeof tempDir>[0]) {
  const catalog = Catalog.open(path.join(tempDir(t), 'catalog.sqlite'));
  t.after(() => catalog.close());
  return catalog;
}

test('an image is keyed by its hash: adding it again merges tags instead of making a second image', (t) => {
  const catalog = open(t);
  const first = catalog.addImage(image(1), ['1girl', 'series:ubw'], 'pipeline');
  const again = catalog.addImage(image(1, { path: 'elsewhere.png' }), ['Long Hair', 'solo'], 'import');
  assert.equal(first.isNew, true);
  assert.equal(again.isNew, false);
  assert.equal(again.id, first.id);
  assert.deepEqual(catalog.tagsOf(image(1).hash), ['1girl', 'long_hair', 'solo', 'series:ubw']);
  assert.equal(catalog.get(image(1).hash)!.path, image(1).path, 'the first path stays');
});

test("re-tagging never overrides a person: removed stays removed, added stays", (t) => {
  const catalog = open(t);
  const { hash } = image(1);
  catalog.addImage(image(1), [], 'pipeline');
  catalog.setSourceTags(hash, 'tagger:wd-vit', ['1girl', 'solo', 'sky']);
  catalog.personEdit(`hash_is_not_a_tag`, [], []); // a query matching nothing changes nothing
  assert.equal(catalog.personEdit('solo', ['red_hair'], ['solo']), 1);
  assert.deepEqual(catalog.tagsOf(hash), ['1girl', 'red_hair', 'sky']);
  assert.deepEqual(catalog.deletedTagsOf(hash), ['solo']);

  // The tagger runs again, with a different opinion: its own tags change, the person's word holds.
  catalog.setSourceTags(hash, 'tagger:wd-vit', ['1girl', 'solo', 'outdoors']);
  assert.deepEqual(catalog.tagsOf(hash), ['1girl', 'outdoors', 'red_hair']);
  // Another source saying "solo" does not bring it back either, and an import is merged the same way.
  catalog.setSourceTags(hash, 'tagger:wd-swinv2', ['solo', 'red_hair']);
  catalog.addImage(image(1), ['solo', 'smile'], 'import');
  assert.deepEqual(catalog.tagsOf(hash), ['1girl', 'outdoors', 'red_hair', 'smile']);
  // The tagger dropping "red_hair" leaves the person's addition alone.
  catalog.setSourceTags(hash, 'tagger:wd-swinv2', []);
  assert.ok(catalog.tagsOf(hash).includes('red_hair'));
  // The person changes their mind.
  catalog.personEdit('1girl', ['solo'], []);
  assert.ok(catalog.tagsOf(hash).includes('solo'));
  assert.deepEqual(catalog.deletedTagsOf(hash), []);
});

test('queries: tags, negation, namespaces and namespace:*', (t) => {
  const catalog = open(t);
  catalog.addImage(image(1), ['1girl', 'solo', 'series:ubw', 'episode:3'], 'import');
  catalog.addImage(image(2), ['1girl', '1boy', 'series:ubw', 'episode:4'], 'import');
  catalog.addImage(image(3), ['scenery', 'series:zero', 'episode:3'], 'import');
  catalog.addImage(image(4), ['1girl', 'solo', 'series:zero', 'character:saber'], 'import');
  const frames = (query: string) => catalog.search(query).map((img) => img.frame);
  assert.deepEqual(frames('1girl'), [1, 2, 4]);
  assert.deepEqual(frames('1girl -solo'), [2]);
  assert.deepEqual(frames('1girl -solo series:ubw episode:4'), [2]);
  assert.deepEqual(frames('series:ubw episode:3'), [1]);
  assert.deepEqual(frames('character:*'), [4]);
  assert.deepEqual(frames('-character:* 1girl'), [1, 2]);
  assert.deepEqual(frames('-1girl'), [3]);
  assert.deepEqual(frames('"Series:UBW" "1girl"'), [1, 2], 'quoted, any case');
  assert.deepEqual(frames('no_such_tag'), []);
  assert.equal(catalog.count('1girl'), 3);
  assert.deepEqual(frames('1girl').slice(0, 2), catalog.search('1girl', { limit: 2 }).map((img) => img.frame));
});

test('rejected images leave every search but keep their tags', (t) => {
  const catalog = open(t);
  catalog.addImage(image(1), ['1girl'], 'import');
  catalog.markRejected(image(1).hash, 'trash/s_01_1.png');
  assert.deepEqual(catalog.search('1girl'), []);
  assert.equal(catalog.get(image(1).hash)!.path, 'trash/s_01_1.png');
  assert.deepEqual(catalog.tagsOf(image(1).hash), ['1girl']);
});

test('bulk removal of subject tags over a whole batch is one person edit', (t) => {
  const catalog = open(t);
  for (let n = 0; n < 500; n += 1) catalog.addImage(image(n), ['1girl', 'solo', n % 2 ? 'scenery' : 'indoors'], 'tagger:wd-vit');
  assert.equal(catalog.personEdit('scenery', [], ['1girl', 'solo']), 250);
  assert.equal(catalog.count('scenery 1girl'), 0);
  assert.equal(catalog.count('indoors 1girl solo'), 250);
});

test('the query parser reads negation, quotes and wildcards', () => {
  assert.deepEqual(parseQuery('1girl -solo series:* "long hair"'), [
    { kind: 'tag', tag: { namespace: '', name: '1girl' }, negated: false },
    { kind: 'tag', tag: { namespace: '', name: 'solo' }, negated: true },
    { kind: 'namespace', namespace: 'series', negated: false },
    { kind: 'tag', tag: { namespace: '', name: 'long_hair' }, negated: false },
  ]);
  assert.deepEqual(parseQuery(':d'), [{ kind: 'tag', tag: { namespace: '', name: ':d' }, negated: false }]);
});

test('episode:3 finds episode:03 and scene:1 finds scene:0001, as the pipeline stores them', (t) => {
  const catalog = open(t);
  catalog.addImage(image(1), ['series:ubw', 'episode:03', 'scene:0001'], 'pipeline');
  catalog.addImage(image(2, { frame: 2 }), ['series:ubw', 'episode:13', 'scene:0012'], 'pipeline');
  catalog.addImage(image(3, { frame: 3 }), ['series:ubw', 'episode:sp1'], 'pipeline');
  const frames = (query: string) => catalog.search(query).map((img) => img.frame);
  assert.deepEqual(frames('episode:3'), [1]);
  assert.deepEqual(frames('episode:003'), [1]);
  assert.deepEqual(frames('episode:03 scene:1'), [1]);
  assert.deepEqual(frames('episode:13 scene:12'), [2]);
  assert.deepEqual(frames('episode:SP1'), [3], 'a named episode is left as it is');
  assert.deepEqual(frames('-episode:3 series:ubw'), [2, 3]);
});

test('a catalog of schema 1 is upgraded in place: images rejected into the trash remember where they were', async (t) => {
  const file = path.join(tempDir(t), 'catalog.sqlite');
  const catalog = Catalog.open(file);
  catalog.addImage(image(1), ['1girl'], 'import');
  catalog.addImage(image(2), ['1girl'], 'import');
  catalog.markRejected(image(1).hash, `trash/${image(1).path}`);
  catalog.close();
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(file);
  db.exec('DROP INDEX images_by_origin; DROP TABLE crop_features; DROP TABLE moved_out; DROP TABLE cluster_members; DROP TABLE character_clusters;');
  db.exec('ALTER TABLE images DROP COLUMN rejected_from; ALTER TABLE images DROP COLUMN origin_hash; ALTER TABLE images DROP COLUMN origin_box; PRAGMA user_version = 1;');
  db.close();

  const upgraded = Catalog.open(file);
  t.after(() => upgraded.close());
  assert.equal(upgraded.get(image(1).hash)!.rejectedFrom, image(1).path);
  assert.equal(upgraded.get(image(2).hash)!.rejectedFrom, null);
  assert.equal(upgraded.get(image(2).hash)!.origin, null, 'version 3 adds the crop origin, empty for what was there');
  assert.deepEqual(upgraded.search('1girl', { rejected: true }).map((img) => img.hash), [image(1).hash]);
  assert.deepEqual(upgraded.search('1girl').map((img) => img.hash), [image(2).hash]);
});
