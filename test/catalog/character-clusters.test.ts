import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { Catalog, type NewImage } from '../../src/adapters/catalog-store.ts';
import { captionToken } from '../../src/catalog/captions.ts';
import { CharacterClusters } from '../../src/catalog/character-clusters.ts';
import { CONFLICT_TAG, refreshCharacterTags } from '../../src/catalog/character-tags.ts';
import { CropFeatures } from '../../src/catalog/crop-features.ts';
import { CelforgeError } from '../../src/errors.ts';
import { tempDir } from '../helpers.ts';

const hashOf = (kind: string, n: number) => `${kind === 'frame' ? 'f' : 'c'}${String(n).padStart(63, '0')}`;

function frame(n: number, series = 'ubw'): NewImage {
  return {
    hash: hashOf('frame', n), path: `${series}/01/frames/scene-0001/${series}_01_${n}.png`, size: 1, width: 1920, height: 1080,
    series, episode: '01', scene: 1, frame: n, source: null,
  };
}

/** Crop `index` of frame n. */
function crop(n: number, index: number, series = 'ubw'): NewImage {
  return {
    ...frame(n, series), hash: hashOf('crop', n * 10 + index), path: `${series}/01/crops/face/scene-0001/${series}_01_${n}_${index}.png`,
    width: 256, height: 256, origin: { hash: hashOf('frame', n), box: [100 * index, 0, 100, 100] },
  };
}

/**
 * Frames 1..4, each with crops 0 and 1; cluster A holds crop 0 of every
 * frame, cluster B crop 1 of frames 1 and 2.
 */
function setUp(t: Parameters<typeof tempDir>[0]) {
  const catalog = Catalog.open(path.join(tempDir(t), 'catalog.sqlite'));
  t.after(() => catalog.close());
  for (const n of [1, 2, 3, 4]) {
    catalog.addImage(frame(n), ['series:ubw'], 'pipeline');
    for (const index of [0, 1]) catalog.addImage(crop(n, index), ['crop:face'], 'crops');
  }
  const clusters = new CharacterClusters(catalog);
  const a = clusters.create('ubw', [1, 2, 3, 4].map((n) => crop(n, 0).hash));
  const b = clusters.create('ubw', [1, 2].map((n) => crop(n, 1).hash));
  const found = (query: string) => catalog.search(query).map((image) => image.hash).sort();
  return { catalog, clusters, a, b, found };
}

test('naming a cluster tags its crops and their frames at once; renaming replaces the tag', (t) => {
  const { catalog, clusters, a, b, found } = setUp(t);
  assert.deepEqual(found('character:*'), [], 'unnamed clusters give no tag');
  clusters.name(a, 'Tohsaka Rin');
  assert.deepEqual(found('character:tohsaka_rin'), [...[1, 2, 3, 4].map((n) => frame(n).hash), ...[1, 2, 3, 4].map((n) => crop(n, 0).hash)].sort());
  assert.ok(catalog.tagSources(crop(1, 0).hash).some(({ tag, source }) => tag === 'character:tohsaka_rin' && source === 'ccip'));
  assert.ok(!catalog.tagsOf(crop(1, 1).hash).includes('character:tohsaka_rin'), "the other face's crop is not hers");

  clusters.name(b, 'saber');
  assert.deepEqual(catalog.tagsOf(frame(1).hash).filter((tag) => tag.startsWith('character:')), ['character:saber', 'character:tohsaka_rin'], 'a frame gets the characters of all its crops');
  clusters.name(a, 'rin');
  assert.deepEqual(found('character:tohsaka_rin'), []);
  assert.equal(found('character:rin').length, 8);
  assert.deepEqual(clusters.clusters('ubw').map((c) => [c.name, c.size]), [['rin', 4], ['saber', 2]]);
});

test('clusters: named first, then by size, with stable samples; members list their crops', (t) => {
  const { catalog, clusters, a, b } = setUp(t);
  const c = clusters.create('ubw', [crop(3, 1).hash, crop(4, 1).hash]);
  catalog.addImage(crop(5, 0), [], 'crops');
  const d = clusters.create('ubw', [crop(5, 0).hash]);
  clusters.name(d, 'archer');
  const list = clusters.clusters('ubw', 3);
  assert.deepEqual(list.map((cluster) => cluster.id), [d, a, b, c]);
  assert.deepEqual(list[1]!.samples, [1, 2, 3].map((n) => ({ hash: crop(n, 0).hash, path: crop(n, 0).path })));
  assert.deepEqual(clusters.clusters('ubw', 3)[1]!.samples, list[1]!.samples, 'the same samples again');
  assert.equal(list[1]!.noise, false);
  assert.deepEqual(clusters.seriesList(), ['ubw']);
  assert.deepEqual(clusters.members(b), [1, 2].map((n) => ({ hash: crop(n, 1).hash, path: crop(n, 1).path, frame: n, episode: '01', byPerson: false })));
});

test('merge: the other cluster joins the target and disappears; the target takes its name when it has none', (t) => {
  const { clusters, a, b, found } = setUp(t);
  clusters.name(b, 'rin');
  clusters.merge(a, b);
  assert.deepEqual(clusters.clusters('ubw').map((c) => [c.id, c.name, c.size]), [[a, 'rin', 6]]);
  assert.equal(found('character:rin').length, 4 + 6);
  assert.ok(clusters.members(a).filter((member) => member.byPerson).length === 2, 'the merged crops were placed by a person');
  assert.throws(() => clusters.members(b), (error: unknown) => error instanceof CelforgeError && error.message.includes(`id ${b}`));
  assert.throws(() => clusters.merge(a, a), CelforgeError);
});

test('moveOut: the crops lose the tag as a person removed it and never rejoin that cluster automatically', (t) => {
  const { catalog, clusters, a, found } = setUp(t);
  clusters.name(a, 'rin');
  clusters.moveOut(a, [crop(3, 0).hash]);
  assert.ok(!found('character:rin').includes(crop(3, 0).hash));
  assert.ok(!found('character:rin').includes(frame(3).hash), 'its frame has no other crop of her');
  assert.deepEqual(catalog.deletedTagsOf(crop(3, 0).hash), ['character:rin']);
  assert.equal(clusters.add(a, [crop(3, 0).hash]), 0, 'an automatic assignment does not bring it back');
  assert.equal(clusters.assignments('ubw').clusterOf.has(crop(3, 0).hash), false);
  assert.deepEqual([...clusters.assignments('ubw').movedOut.get(crop(3, 0).hash)!], [a]);
  // It may join another cluster, named otherwise.
  const c = clusters.create('ubw', [crop(3, 0).hash]);
  clusters.name(c, 'sakura');
  assert.deepEqual(catalog.tagsOf(crop(3, 0).hash).filter((tag) => tag.startsWith('character:')), ['character:sakura']);
  assert.throws(() => clusters.moveOut(a, [crop(3, 0).hash]), (error: unknown) => error instanceof CelforgeError && error.message.includes(crop(3, 0).hash));
  assert.throws(() => clusters.moveOut(a, ['0'.repeat(64)]), CelforgeError);
});

test('markNoise takes the character tags of its members away, and back', (t) => {
  const { clusters, a, found } = setUp(t);
  clusters.name(a, 'rin');
  clusters.markNoise(a, true);
  assert.deepEqual(found('character:rin'), []);
  assert.equal(clusters.clusters('ubw')[0]!.noise, true);
  clusters.markNoise(a, false);
  assert.equal(found('character:rin').length, 8);
});

test("a person's word wins: a reference name never replaces theirs, and a tag they removed stays removed", (t) => {
  const { catalog, clusters, a, b, found } = setUp(t);
  assert.equal(clusters.nameFromReference(b, 'saber'), true);
  assert.equal(found('character:saber').length, 4);
  clusters.name(a, 'rin');
  assert.equal(clusters.nameFromReference(a, 'sakura'), false);
  assert.equal(clusters.clusters('ubw').find((c) => c.id === a)!.name, 'rin');

  catalog.personEditImage(crop(2, 0).hash, [], ['character:rin']);
  clusters.add(a, [crop(2, 0).hash]);
  refreshCharacterTags(catalog, [crop(2, 0).hash]);
  assert.ok(!found('character:rin').includes(crop(2, 0).hash), 'the automatic source does not bring back what a person removed');
});

test('a WD14 character tag that disagrees with the cluster flags the image for review; a person can dismiss the flag', (t) => {
  const { catalog, clusters, a, found } = setUp(t);
  catalog.setSourceTags(crop(1, 0).hash, 'tagger:ensemble', ['character:saber', '1girl']);
  catalog.setSourceTags(crop(2, 0).hash, 'tagger:ensemble', ['character:rin']);
  catalog.setSourceTags(frame(1).hash, 'tagger:ensemble', ['character:saber']);
  clusters.name(a, 'rin');
  assert.deepEqual(found(CONFLICT_TAG), [frame(1).hash, crop(1, 0).hash].sort(), 'the tagger says saber where the cluster says rin');
  assert.equal(captionToken(CONFLICT_TAG, true), null, 'the flag is for a person, never in a caption');
  // The tagger changes its mind (the tags stage calls refreshCharacterTags after writing its tags).
  catalog.setSourceTags(crop(1, 0).hash, 'tagger:ensemble', ['character:rin']);
  refreshCharacterTags(catalog, [crop(1, 0).hash]);
  assert.deepEqual(found(CONFLICT_TAG), [frame(1).hash]);
  catalog.personEditImage(frame(1).hash, [], [CONFLICT_TAG]);
  refreshCharacterTags(catalog, [frame(1).hash]);
  assert.deepEqual(found(CONFLICT_TAG), [], 'dismissed');
});

test('unknown ids, hashes and unusable names are refused by name', (t) => {
  const { clusters, a } = setUp(t);
  const refused = (fn: () => unknown, text: string) => assert.throws(fn, (error: unknown) => error instanceof CelforgeError && error.message.includes(text));
  refused(() => clusters.name(999, 'rin'), '999');
  refused(() => clusters.merge(a, 999), '999');
  refused(() => clusters.markNoise(999, true), '999');
  refused(() => clusters.members(999), '999');
  refused(() => clusters.add(a, ['e'.repeat(64)]), 'e'.repeat(64));
  refused(() => clusters.name(a, 'rin, saber'), 'comma');
  refused(() => clusters.name(a, '  '), 'empty');
  refused(() => clusters.name(a, 'rin\nsaber'), 'line break');
  assert.equal(clusters.clusters('ubw').find((c) => c.id === a)!.name, null, 'nothing was changed');
});

test('crop features keep float32 vectors per model', (t) => {
  const { catalog } = setUp(t);
  const features = new CropFeatures(catalog, 'ccip-test');
  const vector = Float32Array.from({ length: 768 }, (_, i) => Math.sin(i));
  features.put(new Map([[crop(1, 0).hash, vector]]));
  const back = features.get([crop(1, 0).hash, crop(1, 1).hash]);
  assert.deepEqual([...back.keys()], [crop(1, 0).hash]);
  assert.deepEqual(back.get(crop(1, 0).hash), vector);
  assert.equal(new CropFeatures(catalog, 'other-model').get([crop(1, 0).hash]).size, 0);
  assert.throws(() => features.put(new Map([['e'.repeat(64), vector]])), CelforgeError);
});
