/** The one check for tags a person hands in: refused are those search could not find again or Kohya would split. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkPersonTags, personTagProblem } from '../../src/catalog/person-tags.ts';
import { CelforgeError } from '../../src/errors.ts';

test('tags that could never be searched or captioned are refused, with the reason', () => {
  const refused: [string, RegExp][] = [
    ['', /empty/],
    ['   ', /empty/],
    ['smile, open mouth', /comma/],
    ['a\nb', /control character/],
    ['"quoted"', /double quote/],
    ['-solo', /starts with "-"/],
    ['-_-', /starts with "-"/],
    ['series:*', /ends in ":\*"/],
  ];
  for (const [tag, reason] of refused) assert.match(personTagProblem(tag) ?? 'accepted', reason, JSON.stringify(tag));
});

test('ordinary, namespaced, kaomoji and numbered tags are taken', () => {
  for (const tag of ['1girl', 'long hair', 'saber_(fate)', 'character:saber', ':d', '^_^', 'episode:3', 'scene:0001', 'a-b', ':*']) {
    assert.equal(personTagProblem(tag), null, tag);
  }
});

test('checkPersonTags names every refused tag and where it came from', () => {
  assert.throws(() => checkPersonTags(['ok', 'a,b', '-x'], 'celforge tag --add'), (error: unknown) =>
    error instanceof CelforgeError && error.code === 'CONFIG_INVALID'
      && error.message.startsWith('celforge tag --add: ') && error.message.includes('"a,b" contains a comma') && error.message.includes('"-x" starts with'));
  checkPersonTags(['ok', 'fine_tag'], 'x');
});
