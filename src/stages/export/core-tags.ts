/**
 * A character's core tags: the plain tags (hair colour, eye colour, outfit)
 * on at least a given share of the images where the character is alone. In a
 * per-character dataset whose captions start with the character's name,
 * pruning them lets the name absorb what always comes with it, so a prompt
 * with the name alone brings the look. As anime_screenshot_pipeline's
 * CoreTagProcessor (cyber-meow/anime_screenshot_pipeline at 2b0afde,
 * anime2sd/captioning/tagging_character.py): counted on images with one
 * character only, since in an image with two a tag may belong to either
 * ("Only update for single character image"); a tag is core when
 * `count >= frequency_threshold * total`; an image loses the core tags of
 * every character in it (drop_character_core_tags). Unlike it, no list of
 * words is kept back (it never prunes `1girl`, `smile`, `sky` ...): every
 * plain tag at or above the share goes, so choose the share with that in mind.
 *
 *   coreTags(images, share)          Map from character name to its core tags, sorted;
 *                                    a character never seen alone has none
 *   withoutCoreTags(tags, core)      the tags minus the core tags of every character among them
 *
 * Namespaced tags (`character:`, `rating:`, `series:` ...) are never core tags.
 */
import { parseTag } from '../../catalog/tags.ts';
import { CelforgeError } from '../../errors.ts';

/** The names of the `character:` tags among `tags`, sorted, each once. */
export function charactersOf(tags: readonly string[]): string[] {
  const names = new Set<string>();
  for (const tag of tags) {
    const parsed = parseTag(tag);
    if (parsed?.namespace === 'character') names.add(parsed.name);
  }
  return [...names].sort();
}

export function coreTags(images: readonly { tags: readonly string[] }[], share: number): Map<string, string[]> {
  if (!(share > 0 && share <= 1)) throw new CelforgeError('CONFIG_INVALID', `export.pruneCoreTags must be a share above 0 and at most 1, or null; got ${share}.`);
  const counts = new Map<string, { images: number; tags: Map<string, number> }>();
  for (const image of images) {
    const plain = new Set(image.tags.filter((tag) => parseTag(tag)?.namespace === '').map((tag) => parseTag(tag)!.name));
    const characters = charactersOf(image.tags);
    if (characters.length !== 1) continue;
    for (const name of characters) {
      const entry = counts.get(name) ?? { images: 0, tags: new Map<string, number>() };
      entry.images += 1;
      for (const tag of plain) entry.tags.set(tag, (entry.tags.get(tag) ?? 0) + 1);
      counts.set(name, entry);
    }
  }
  const core = new Map<string, string[]>();
  for (const [name, entry] of counts) {
    // count / images >= share, without the rounding of a division: 0.3 * 10 is 3.0000000000000004.
    core.set(name, [...entry.tags].filter(([, count]) => count >= share * entry.images - 1e-9).map(([tag]) => tag).sort());
  }
  return core;
}

export function withoutCoreTags(tags: readonly string[], core: ReadonlyMap<string, readonly string[]>): string[] {
  const pruned = new Set(charactersOf(tags).flatMap((name) => core.get(name) ?? []));
  return tags.filter((tag) => {
    const parsed = parseTag(tag);
    return !(parsed?.namespace === '' && pruned.has(parsed.name));
  });
}
