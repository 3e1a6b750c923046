/**
 * Everything a run leaves that a fault must not change: every file of the
 * video's output (frames, captions, previews, frame map, faces) by hash, and
 * every catalog image with its tags and their sources.
 */
import path from 'node:path';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { hashTree, readJobs } from '../helpers.ts';

export interface LibrarySnapshot {
  files: Record<string, string>;
  catalog: Record<string, { tags: string[]; sources: string[] }>;
}

export function snapshotLibrary(library: string): LibrarySnapshot {
  const job = readJobs(library)[0]!;
  const files = Object.fromEntries(hashTree(job.extract!.dir));
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  try {
    const images = Object.fromEntries(catalog.search('').map((image) => [image.hash, {
      tags: catalog.tagsOf(image.hash),
      sources: catalog.tagSources(image.hash).map(({ tag, source }) => `${source}:${tag}`),
    }]));
    return { files, catalog: images };
  } finally {
    catalog.close();
  }
}
