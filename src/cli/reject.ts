/** `celforge reject "<query>"`: takes images out of the dataset (src/catalog/reject-images.ts). */
import { rejectImages } from '../catalog/reject-images.ts';
import { trashDir } from '../daemon/library-paths.ts';
import type { GlobalOptions } from './context.ts';
import { withCatalog } from './catalog-context.ts';

export async function rejectCommand(query: string, options: GlobalOptions): Promise<void> {
  await withCatalog(options, async (catalog, config) => {
    const images = catalog.search(query);
    await rejectImages(catalog, config.library, images);
    process.stdout.write(`${images.length} image${images.length === 1 ? '' : 's'} moved to ${trashDir(config.library)}\n`);
  });
}
