/**
 * Catalog commands open the catalog directly: SQLite lets them work beside
 * a running daemon (WAL; a writer waits for the other).
 */
import { Catalog } from '../adapters/catalog-store.ts';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { catalogPath } from '../daemon/library-paths.ts';
import { prepareLibrary, type GlobalOptions } from './context.ts';

export async function withCatalog<T>(options: GlobalOptions, use: (catalog: Catalog, config: Config) => Promise<T> | T): Promise<T> {
  const config = await loadConfig({ configPath: options.config, library: options.library });
  await prepareLibrary(config.library);
  const catalog = Catalog.open(catalogPath(config.library));
  try {
    return await use(catalog, config);
  } finally {
    catalog.close();
  }
}
