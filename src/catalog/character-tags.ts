/**
 * The tags the `ccip` source gives an image, derived from the character
 * clusters: a crop gets `character:<name>` of its cluster, a frame those of
 * the crops cut from it (their origin), when the cluster is named and not
 * noise. Where the taggers' character tags and these disagree, the image also
 * gets CONFLICT_TAG, so that `search "review:character_conflict"` finds what a
 * person should look at. A person's word wins as everywhere in the catalog: a
 * character tag they removed is neither given nor counted, and removing
 * CONFLICT_TAG dismisses the flag for good.
 *
 * `refreshCharacterTags(catalog, hashes)` re-derives these tags for the
 * images (crops or frames; a crop's frame comes with it). The cluster store
 * calls it after every change, the characters stage after clustering, and
 * the tags stage after its taggers wrote their character tags.
 */
import type { Catalog } from '../adapters/catalog-store.ts';
import { formatTag, parseTag } from './tags.ts';

export const CONFLICT_TAG = 'review:character_conflict';

export function characterTag(name: string): string {
  return formatTag(parseTag(`character:${name}`)!);
}

/**
 * Disagreement: both name characters, and each names one the other does not.
 * A tagger naming fewer characters than the clusters (WD14 misses the
 * characters it was not trained on) or more (a face no cluster is named for
 * yet) is not a disagreement; a crop named A by its cluster and B by the
 * tagger is.
 */
export function charactersDisagree(clusters: ReadonlySet<string>, taggers: ReadonlySet<string>): boolean {
  if (clusters.size === 0 || taggers.size === 0) return false;
  return [...clusters].some((tag) => !taggers.has(tag)) && [...taggers].some((tag) => !clusters.has(tag));
}

export function refreshCharacterTags(catalog: Catalog, hashes: Iterable<string>): void {
  const db = catalog.database;
  const frameOf = db.prepare('SELECT origin_hash FROM images WHERE hash = ?').pluck();
  const known = db.prepare('SELECT 1 FROM images WHERE hash = ?').pluck();
  const names = db.prepare(`SELECT DISTINCT c.name FROM cluster_members m
    JOIN character_clusters c ON c.id = m.cluster_id
    JOIN images i ON i.id = m.image_id
    WHERE c.name IS NOT NULL AND c.noise = 0 AND (i.hash = @hash OR i.origin_hash = @hash)`).pluck();
  const images = new Set<string>();
  for (const hash of hashes) {
    images.add(hash);
    const frame = frameOf.get(hash) as string | null | undefined;
    if (frame && known.get(frame)) images.add(frame);
  }
  catalog.batch(() => {
    for (const hash of images) {
      const deleted = new Set(catalog.deletedTagsOf(hash));
      const given = (names.all({ hash }) as string[]).map(characterTag).filter((tag) => !deleted.has(tag));
      const tagged = catalog.tagSources(hash)
        .filter(({ tag, source }) => source.startsWith('tagger:') && tag.startsWith('character:') && !deleted.has(tag))
        .map(({ tag }) => tag);
      const conflict = charactersDisagree(new Set(given), new Set(tagged));
      catalog.setSourceTags(hash, 'ccip', conflict ? [...given, CONFLICT_TAG] : given);
    }
  });
}
