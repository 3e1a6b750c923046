/**
 * After a person's tag edit, the Kohya caption the tags stage wrote beside
 * each edited frame (`frame.txt`, see src/stages/tags/tags-stage.ts) is
 * written again from the catalog's tags, as that stage writes it: captionFor
 * with no trigger words and `tags.underscoresToSpaces`. The tags stage ranks
 * the tagger's tags (characters, then general tags by probability, then the
 * rating) and puts the others after them; the probabilities are not kept, so
 * the order the caption already has stands for that ranking, and tags new to
 * it follow in the catalog's order. A frame with no caption yet is left to the
 * tags stage, which reads the catalog's tags (these edits included) when it
 * gets there.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Catalog } from '../adapters/catalog-store.ts';
import { replaceFileDurably } from '../adapters/durable-file.ts';
import type { Config } from '../config/schema.ts';
import { captionFor, captionToken } from './captions.ts';
import { captionPathOf, parseKohyaCaption } from './sidecars.ts';

/** Returns how many captions were written. */
export async function refreshCaptions(catalog: Catalog, config: Config, hashes: Iterable<string>): Promise<number> {
  if (!config.tags.sidecars) return 0;
  let written = 0;
  for (const hash of new Set(hashes)) {
    const image = catalog.get(hash);
    if (!image || image.rejectedAt !== null) continue;
    const caption = captionPathOf(path.resolve(config.library, image.path));
    if (!existsSync(caption)) continue;
    const before = parseKohyaCaption(await readFile(caption, 'utf8')).map((token) => token.toLowerCase());
    const place = (tag: string) => {
      const index = before.indexOf(captionToken(tag, config.tags.underscoresToSpaces)?.toLowerCase() ?? '');
      return index === -1 ? before.length : index;
    };
    const tags = catalog.tagsOf(hash).map((tag, order) => ({ tag, order, place: place(tag) }))
      .sort((a, b) => a.place - b.place || a.order - b.order)
      .map(({ tag }) => tag);
    const text = captionFor(tags, { triggerWords: [], keepTokens: 0, underscoresToSpaces: config.tags.underscoresToSpaces });
    await replaceFileDurably(caption, `${text}\n`);
    written += 1;
  }
  return written;
}
