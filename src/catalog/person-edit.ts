/**
 * A person's tag edit, from the command line (a query) or the review page
 * (chosen images): the tags added are checked first (src/catalog/person-tags.ts),
 * the catalog records the edit as the person's, and the captions beside the
 * edited frames are written again (src/catalog/caption-refresh.ts).
 * Removals are not checked: a person may remove any tag an image carries.
 */
import type { Catalog } from '../adapters/catalog-store.ts';
import type { Config } from '../config/schema.ts';
import { refreshCaptions } from './caption-refresh.ts';
import { checkPersonTags } from './person-tags.ts';

/** Edits every image the query finds; returns how many. */
export async function editTagsByQuery(catalog: Catalog, config: Config, query: string, add: readonly string[], remove: readonly string[], where: string): Promise<number> {
  checkPersonTags(add, where);
  const hashes = catalog.search(query).map((image) => image.hash);
  const count = catalog.personEdit(query, add, remove);
  await refreshCaptions(catalog, config, hashes);
  return count;
}

/** Edits these images (the caller made sure they are in the catalog). */
export async function editTagsOfImages(catalog: Catalog, config: Config, hashes: readonly string[], add: readonly string[], remove: readonly string[], where: string): Promise<void> {
  checkPersonTags(add, where);
  catalog.batch(() => {
    for (const hash of hashes) catalog.personEditImage(hash, add, remove);
  });
  await refreshCaptions(catalog, config, hashes);
}
