/** Shortening text to a number of UTF-8 bytes: within the limit, valid UTF-8, head and tail kept, no character split. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cutMarker, fitUtf8Bytes } from '../../src/notify/fit-bytes.ts';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const bytesOf = (text: string) => Buffer.byteLength(text, 'utf8');

test('a text that fits comes back unchanged', () => {
  assert.equal(fitUtf8Bytes('', 10), '');
  assert.equal(fitUtf8Bytes('abc', 3), 'abc');
  assert.equal(fitUtf8Bytes('é日😀', 9), 'é日😀', '2 + 3 + 4 bytes');
});

test('every limit gives valid UTF-8 within the limit, cut only between whole characters', () => {
  // 1-, 2-, 3- and 4-byte characters, a combining accent and a ZWJ family emoji (one grapheme of several code points)
  const unit = 'a é 日本 😀 e\u0301 👨‍👩‍👧 ';
  const text = unit.repeat(40);
  const graphemes = new Set(Array.from(new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(unit), (part) => part.segment));
  for (let limit = 0; limit <= bytesOf(text) + 1; limit += 1) {
    const fitted = fitUtf8Bytes(text, limit);
    const bytes = Buffer.from(fitted, 'utf8');
    assert.ok(bytes.length <= limit, `limit ${limit}: ${bytes.length} bytes`);
    assert.equal(strictUtf8.decode(bytes), fitted);
    if (fitted === text) continue;
    const marker = /\n… (\d+) bytes cut …\n/.exec(fitted);
    if (!marker) {
      // too small for a marker: only whole graphemes from the start
      assert.ok(text.startsWith(fitted), `limit ${limit}`);
      continue;
    }
    const [head, tail] = [fitted.slice(0, marker.index), fitted.slice(marker.index + marker[0].length)];
    assert.ok(text.startsWith(head) && text.endsWith(tail), `limit ${limit}`);
    assert.equal(Number(marker[1]), bytesOf(text) - bytesOf(head) - bytesOf(tail), `limit ${limit}: the marker counts what was cut`);
    for (const part of [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(head + tail)].map((p) => p.segment)) {
      assert.ok(graphemes.has(part), `limit ${limit}: ${JSON.stringify(part)} is a split character`);
    }
  }
});

test('the marker shows, and the end of the text (a log\'s last line) is kept', () => {
  const lines = Array.from({ length: 200 }, (_, i) => `line ${i}: 処理中 ${'x'.repeat(20)}`);
  const text = ['training failed: exit code 1', ...lines, 'RuntimeError: CUDA out of memory'].join('\n');
  const fitted = fitUtf8Bytes(text, 4095);
  assert.ok(bytesOf(fitted) <= 4095);
  assert.ok(bytesOf(fitted) > 4095 - bytesOf(cutMarker(bytesOf(text))) - 8, 'the room is used');
  assert.ok(fitted.startsWith('training failed: exit code 1\n'));
  assert.ok(fitted.endsWith('\nRuntimeError: CUDA out of memory'));
  assert.match(fitted, /… \d+ bytes cut …/);
});
