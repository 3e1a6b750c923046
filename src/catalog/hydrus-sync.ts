/**
 * Keeps a Hydrus client in step with the catalog. push: images (as bytes:
 * Hydrus may run on another machine) and their tags go to the configured tag
 * service. pull: what a person changed there (tags added, tags deleted) comes
 * back as that person's edits, which re-tagging never undoes. Hydrus only
 * answers while its client is open: then this fails with a clear message and
 * nothing is lost, the catalog being the record; run it again later.
 */
import path from 'node:path';
import type { Catalog } from '../adapters/catalog-store.ts';
import type { HydrusClient } from '../adapters/hydrus-client.ts';
import { parseTag, formatTag } from './tags.ts';

export interface SyncResult {
  images: number;
  tagsAdded: number;
  tagsRemoved: number;
}

export async function pushToHydrus(catalog: Catalog, client: HydrusClient, library: string, query: string): Promise<SyncResult> {
  const result: SyncResult = { images: 0, tagsAdded: 0, tagsRemoved: 0 };
  const images = catalog.search(query);
  const known = await client.tagsOf(images.map((image) => image.hash));
  for (const image of images) {
    if (!known.has(image.hash)) await client.addFile(path.resolve(library, image.path));
    const tags = catalog.tagsOf(image.hash);
    const there = new Set((known.get(image.hash)?.current ?? []).map(normal));
    const missing = tags.filter((tag) => !there.has(tag));
    if (missing.length) await client.addTags([image.hash], missing, []);
    result.images += 1;
    result.tagsAdded += missing.length;
  }
  return result;
}

export async function pullFromHydrus(catalog: Catalog, client: HydrusClient, query: string): Promise<SyncResult> {
  const result: SyncResult = { images: 0, tagsAdded: 0, tagsRemoved: 0 };
  const images = catalog.search(query);
  const remote = await client.tagsOf(images.map((image) => image.hash));
  for (const image of images) {
    const there = remote.get(image.hash);
    if (!there) continue;
    const here = new Set(catalog.tagsOf(image.hash));
    const add = there.current.map(normal).filter((tag) => tag && !here.has(tag));
    const remove = there.deleted.map(normal).filter((tag) => here.has(tag));
    if (add.length || remove.length) catalog.personEditImage(image.hash, add, remove);
    result.images += 1;
    result.tagsAdded += add.length;
    result.tagsRemoved += remove.length;
  }
  return result;
}

/** Hydrus keeps spaces where the catalog has underscores. */
function normal(tag: string): string {
  const parsed = parseTag(tag);
  return parsed ? formatTag(parsed) : '';
}
