/**
 * `celforge reject "<query>"`: takes images out of the dataset. Each file is
 * moved into the library's trash/ (same relative path), never deleted, with
 * the caption beside it; the catalog keeps it, its tags and where it went.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { trashDir } from '../daemon/library-paths.ts';
import type { GlobalOptions } from './context.ts';
import { withCatalog } from './catalog-context.ts';

export async function rejectCommand(query: string, options: GlobalOptions): Promise<void> {
  await withCatalog(options, async (catalog, config) => {
    const images = catalog.search(query);
    for (const image of images) {
      const from = path.resolve(config.library, image.path);
      const relative = path.isAbsolute(image.path) ? path.join('outside', image.hash + path.extname(image.path)) : image.path;
      const to = path.join(trashDir(config.library), relative);
      await mkdir(path.dirname(to), { recursive: true });
      if (existsSync(from)) await rename(from, to);
      const caption = captionOf(from);
      if (existsSync(caption)) await rename(caption, captionOf(to));
      catalog.markRejected(image.hash, path.relative(config.library, to));
    }
    process.stdout.write(`${images.length} image${images.length === 1 ? '' : 's'} moved to ${trashDir(config.library)}\n`);
  });
}

function captionOf(image: string): string {
  return path.join(path.dirname(image), `${path.parse(image).name}.txt`);
}
