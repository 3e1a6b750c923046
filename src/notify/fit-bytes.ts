/**
 * Shortens a text to at most a number of UTF-8 bytes for channels that count
 * bytes (ntfy). It keeps the beginning (what happened) and the end (a log's
 * last lines, where the error usually is) and puts a marker saying how much
 * was cut between them. Cuts fall between grapheme clusters, so no character
 * (and no emoji or accented letter made of several code points) is split,
 * and the result is always valid UTF-8.
 */

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
const bytesOf = (text: string) => Buffer.byteLength(text, 'utf8');

/** The marker in the middle of a shortened text; `cut` is the number of bytes left out. */
export function cutMarker(cut: number): string {
  return `\n… ${cut} bytes cut …\n`;
}

/** `text` when it fits in `maxBytes` UTF-8 bytes; otherwise its head and tail around a marker, within `maxBytes`. */
export function fitUtf8Bytes(text: string, maxBytes: number): string {
  const total = bytesOf(text);
  if (total <= maxBytes) return text;
  const graphemes = Array.from(segmenter.segment(text), (part) => part.segment);
  // The marker's own length depends on the count it shows; the count is at most `total`, so this is an upper bound.
  const budget = maxBytes - bytesOf(cutMarker(total));
  if (budget <= 0) return takeHead(graphemes, maxBytes).text;
  const head = takeHead(graphemes, Math.floor(budget / 2));
  const tail = takeTail(graphemes.slice(head.count), budget - head.bytes);
  return `${head.text}${cutMarker(total - head.bytes - tail.bytes)}${tail.text}`;
}

function takeHead(graphemes: string[], maxBytes: number): { text: string; bytes: number; count: number } {
  let bytes = 0;
  let count = 0;
  while (count < graphemes.length && bytes + bytesOf(graphemes[count]!) <= maxBytes) bytes += bytesOf(graphemes[count++]!);
  return { text: graphemes.slice(0, count).join(''), bytes, count };
}

function takeTail(graphemes: string[], maxBytes: number): { text: string; bytes: number } {
  let bytes = 0;
  let start = graphemes.length;
  while (start > 0 && bytes + bytesOf(graphemes[start - 1]!) <= maxBytes) bytes += bytesOf(graphemes[--start]!);
  return { text: graphemes.slice(start).join(''), bytes };
}
