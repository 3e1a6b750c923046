/** `celforge hydrus push|pull "<query>"`: the catalog and a Hydrus client in step (see catalog/hydrus-sync.ts). */
import { HydrusClient, HydrusUnreachable } from '../adapters/hydrus-client.ts';
import { pullFromHydrus, pushToHydrus } from '../catalog/hydrus-sync.ts';
import { CelforgeError } from '../errors.ts';
import type { GlobalOptions } from './context.ts';
import { withCatalog } from './catalog-context.ts';

export async function hydrusCommand(direction: string, query: string, options: GlobalOptions): Promise<void> {
  if (direction !== 'push' && direction !== 'pull') {
    throw new CelforgeError('CONFIG_INVALID', `celforge hydrus: "${direction}" is not push or pull`);
  }
  await withCatalog(options, async (catalog, config) => {
    if (!config.hydrus) {
      throw new CelforgeError('CONFIG_INVALID', `${config.source ?? 'the configuration'}: no hydrus section; set hydrus.url and hydrus.accessKey to use Hydrus`);
    }
    const client = new HydrusClient(config.hydrus);
    try {
      const result = direction === 'push'
        ? await pushToHydrus(catalog, client, config.library, query)
        : await pullFromHydrus(catalog, client, query);
      process.stdout.write(`${direction}: ${result.images} images, ${result.tagsAdded} tags added` +
        (direction === 'pull' ? `, ${result.tagsRemoved} removed (recorded as a person's edits)` : '') + '\n');
    } catch (error) {
      if (error instanceof HydrusUnreachable) {
        throw new CelforgeError('FILE_NOT_FOUND', `${config.hydrus.url}: Hydrus does not answer (is its client open?). Nothing was lost; run "celforge hydrus ${direction}" again later.`, { cause: error });
      }
      throw error;
    }
  });
}
