/** Folder names from character names, and a character's core tags. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { coreTags, withoutCoreTags } from '../../../src/stages/export/core-tags.ts';
import { groupFolder, subsetFolders } from '../../../src/stages/export/subset-folders.ts';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 8);

test('a name that is safe stays as it is; one that is not is cleaned and tagged with its digest, so no two meet', () => {
  const names = ['alice', 'saber_(fate)', 'ツンデレ', 'a/b', 'a_b', 'a\\b', '..', '.', '', 'con', 'Con', 'lpt1', 'k.o.', 'x'.repeat(300), `${'x'.repeat(300)}y`, 'A', 'a', 'é', 'e\u0301', `a_b-${digest('a/b')}`];
  const folders = subsetFolders(names);
  assert.equal(folders.size, names.length);
  assert.equal(folders.get('alice'), 'alice');
  assert.equal(folders.get('saber_(fate)'), 'saber_(fate)');
  assert.equal(folders.get('ツンデレ'), 'ツンデレ');
  assert.equal(folders.get('a_b'), 'a_b');
  assert.equal(folders.get('a/b'), `a_b-${digest('a/b')}`);
  assert.equal(folders.get('..'), `__-${digest('..')}`);
  assert.equal(folders.get(''), `character-${digest('')}`);
  assert.equal(folders.get('con'), `con-${digest('con')}`);
  // NFD is turned to NFC, so it is not the same name as written: it gets a digest and stays apart from the NFC é.
  assert.equal(folders.get('é'), 'é');
  assert.equal(folders.get('e\u0301'), `é-${digest('e\u0301')}`);
  const lower = [...folders.values()].map((folder) => folder.toLowerCase());
  assert.equal(new Set(lower).size, names.length, `distinct ignoring case: ${[...folders.values()]}`);
  for (const folder of folders.values()) {
    assert.match(folder, /^[\p{L}\p{M}\p{N}_()-]+$/u);
    assert.ok(Buffer.byteLength(folder) <= 64);
  }
  // A name that is literally another's cleaned folder name still gets its own.
  assert.notEqual(folders.get(`a_b-${digest('a/b')}`), folders.get('a/b'));

  const group = groupFolder(['bob', 'alice'], folders);
  assert.equal(group, 'alice+bob');
  const long = groupFolder(['x'.repeat(300), `${'x'.repeat(300)}y`, 'alice'], folders);
  assert.ok(Buffer.byteLength(long) <= 100, long);
  assert.notEqual(long, groupFolder(['x'.repeat(300), 'alice'], folders));
});

test('core tags: plain tags on at least the share of the images with the character alone, counted without rounding error', () => {
  const images = [
    ...Array.from({ length: 10 }, (_, i) => ({ tags: ['character:a', 'rating:general', ...(i < 3 ? ['hat'] : []), ...(i < 2 ? ['bow'] : [])] })),
    { tags: ['hat', 'bow'] },
    // Not counted: a tag on an image with two characters may be either's. c is never alone, so has none.
    ...Array.from({ length: 5 }, () => ({ tags: ['character:a', 'character:c', 'bow', 'hat'] })),
  ];
  // 3 of 10 is exactly 0.3: 0.3 * 10 is 3.0000000000000004 in floating point.
  assert.deepEqual(coreTags(images, 0.3), new Map([['a', ['hat']]]));
  assert.deepEqual(coreTags(images, 0.2), new Map([['a', ['bow', 'hat']]]));
  assert.deepEqual(coreTags(images, 1), new Map([['a', []]]));
  const core = coreTags(images, 0.2);
  assert.deepEqual(withoutCoreTags(['character:a', 'hat', 'bow', 'smile', 'rating:general'], core), ['character:a', 'smile', 'rating:general']);
  assert.deepEqual(withoutCoreTags(['hat', 'bow'], core), ['hat', 'bow'], 'no character, nothing absorbed');
  assert.throws(() => coreTags(images, 0), /pruneCoreTags must be a share above 0 and at most 1/);
});
