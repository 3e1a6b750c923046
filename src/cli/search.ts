/** `celforge search "<query>" [--json] [--limit N]`: the images a query finds, as paths or JSON lines. */
import path from 'node:path';
import type { GlobalOptions } from './context.ts';
import { withCatalog } from './catalog-context.ts';

export async function searchCommand(query: string, options: GlobalOptions & { json?: boolean; limit?: string }): Promise<void> {
  await withCatalog(options, (catalog, config) => {
    const limit = options.limit === undefined ? undefined : Number(options.limit);
    for (const image of catalog.search(query, { limit })) {
      const file = path.resolve(config.library, image.path);
      if (!options.json) {
        process.stdout.write(`${file}\n`);
        continue;
      }
      const { id: _id, rejectedAt: _rejected, rejectedFrom: _from, ...rest } = image;
      process.stdout.write(`${JSON.stringify({ ...rest, path: file, tags: catalog.tagsOf(image.hash) })}\n`);
    }
  });
}
