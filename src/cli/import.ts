/** `celforge import <folder>`: images and their sidecars (Kohya `frame.txt` or Hydrus `frame.png.txt`) into the catalog. */
import path from 'node:path';
import { importFolder } from '../catalog/importer.ts';
import type { GlobalOptions } from './context.ts';
import { withCatalog } from './catalog-context.ts';

export async function importCommand(folder: string, options: GlobalOptions): Promise<number> {
  return withCatalog(options, async (catalog, config) => {
    const result = await importFolder(path.resolve(folder), config.library, catalog);
    process.stdout.write(`${result.images} images: ${result.added} new, ${result.merged} already known (tags merged), ${result.tags} tags read\n`);
    for (const problem of result.problems) process.stderr.write(`celforge: ${problem}\n`);
    return result.problems.length ? 1 : 0;
  });
}
