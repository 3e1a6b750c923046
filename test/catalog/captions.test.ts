import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CelforgeError } from '../../src/errors.ts';
import { captionFor, isKaomoji, type CaptionOptions } from '../../src/catalog/captions.ts';

const options: CaptionOptions = { triggerWords: ['celchar'], keepTokens: 1, underscoresToSpaces: true };

test('trigger words come first, then the tags in the given order', () => {
  assert.equal(captionFor(['1girl', 'long_hair', 'smile'], options), 'celchar, 1girl, long hair, smile');
  assert.equal(
    captionFor(['solo', 'blue_eyes'], { ...options, triggerWords: ['celchar', 'cel style'], keepTokens: 2 }),
    'celchar, cel style, solo, blue eyes',
  );
  assert.equal(captionFor(['solo'], { triggerWords: [], keepTokens: 0, underscoresToSpaces: false }), 'solo');
  assert.equal(captionFor([], options), 'celchar');
  assert.equal(captionFor(['a', 'b'], { ...options, shuffleSeparator: ',' }), 'celchar,a,b');
});

test('keepTokens below the number of trigger words is refused, naming both', () => {
  assert.throws(
    () => captionFor(['solo'], { ...options, triggerWords: ['celchar', 'cel style'], keepTokens: 1 }),
    (error: unknown) => error instanceof CelforgeError && error.code === 'CONFIG_INVALID'
      && /keepTokens is 1 but there are 2 trigger words \(celchar, cel style\)/.test(error.message),
  );
  // More is fine: the first tags are then pinned too.
  assert.equal(captionFor(['solo', 'smile'], { ...options, keepTokens: 2 }), 'celchar, solo, smile');
});

test('trigger words and separators Kohya would split differently are refused', () => {
  const refused = (changes: Partial<CaptionOptions>) =>
    assert.throws(() => captionFor([], { ...options, ...changes }), (error: unknown) => error instanceof CelforgeError && error.code === 'CONFIG_INVALID');
  refused({ triggerWords: ['cel, char'] });
  refused({ triggerWords: [' '] });
  refused({ shuffleSeparator: ' | ' });
  refused({ keepTokens: -1 });
});

test('underscores become spaces, except in kaomoji', () => {
  const faces = ['^_^', '>_<', 'o_o', '0_0', '=_=', 'u_u', 'x_x', '._.', ';_;', '^_^;', '(o)_(o)'];
  assert.equal(captionFor(faces, options), `celchar, ${faces.join(', ')}`);
  assert.equal(captionFor(['long_hair', 'saber_(fate)', 'looking_at_viewer'], options), 'celchar, long hair, saber (fate), looking at viewer');
  assert.equal(captionFor(['long_hair', '^_^'], { ...options, underscoresToSpaces: false }), 'celchar, long_hair, ^_^');
});

test('the kaomoji rule: three characters or fewer, or mostly punctuation', () => {
  for (const face of ['^_^', '>_<', 'o_o', 'x_x', ';_;', '^_^;', '(o)_(o)', '>_<;;']) assert.ok(isKaomoji(face), face);
  for (const word of ['long_hair', '1girl', 'saber_(fate)', 'x_hair_ornament', 'open_mouth']) assert.ok(!isKaomoji(word), word);
});

test('namespaces: character and rating are written bare, the others are left out', () => {
  assert.equal(
    captionFor(['series:fate', 'episode:03', 'scene:0012', 'character:saber_(fate)', 'rating:general', 'creator:ufotable', 'armor'], options),
    'celchar, saber (fate), general, armor',
  );
  // A leading colon is part of the tag, not a namespace.
  assert.equal(captionFor([':d', ':3'], options), 'celchar, :d, :3');
});

test('a tag written twice appears once, the first time', () => {
  assert.equal(captionFor(['solo', 'solo', 'character:saber', 'saber', 'long_hair', 'long hair'], options), 'celchar, solo, saber, long hair');
  assert.equal(captionFor(['celchar', 'CelChar', 'smile'], options), 'celchar, smile');
  assert.equal(captionFor(['smile'], { ...options, triggerWords: ['celchar', 'celchar'] }), 'celchar, smile');
});
