/**
 * `celforge reject "<query>" [--yes]` takes images out of the dataset and
 * `celforge unreject "<query>"` brings them back (src/catalog/reject-images.ts).
 * An empty query is refused. A reject that takes more than
 * `catalog.rejectConfirmShare` of the library's images asks first on a
 * terminal; elsewhere (a script, a pipe) it needs --yes and otherwise exits
 * with REJECT_NOT_CONFIRMED, moving nothing.
 */
import { createInterface } from 'node:readline/promises';
import { refreshCaptions } from '../catalog/caption-refresh.ts';
import { rejectImages, unrejectImages } from '../catalog/reject-images.ts';
import { trashDir } from '../daemon/library-paths.ts';
import { CelforgeError } from '../errors.ts';
import type { GlobalOptions } from './context.ts';
import { withCatalog } from './catalog-context.ts';

/** Exit code of a reject that needed confirming and did not get it. */
export const REJECT_NOT_CONFIRMED = 2;

export async function rejectCommand(query: string, options: GlobalOptions & { yes?: boolean }): Promise<number> {
  if (!query.trim()) {
    throw new CelforgeError('CONFIG_INVALID', 'celforge reject: the query is empty, which would take every image; name the tags of the images to reject');
  }
  return withCatalog(options, async (catalog, config) => {
    const images = catalog.search(query);
    const library = catalog.count('');
    const share = config.catalog.rejectConfirmShare;
    if (images.length > 0 && images.length > share * library && !options.yes) {
      const what = `"${query}" takes ${images.length} of the library's ${library} images (${percent(images.length / library)}), more than catalog.rejectConfirmShare (${percent(share)})`;
      if (!process.stdin.isTTY) {
        process.stderr.write(`celforge reject: ${what}. Nothing was moved: run it again with --yes to confirm, or narrow the query.\n`);
        return REJECT_NOT_CONFIRMED;
      }
      if (!(await confirm(`celforge reject: ${what}. Move them to ${trashDir(config.library)}? [y/N] `))) {
        process.stderr.write('celforge reject: nothing was moved\n');
        return REJECT_NOT_CONFIRMED;
      }
    }
    const result = await rejectImages(catalog, config.library, images);
    process.stdout.write(`${result.moved} image${result.moved === 1 ? '' : 's'} moved to ${trashDir(config.library)}; \`celforge unreject\` brings them back\n`);
    return 0;
  });
}

export async function unrejectCommand(query: string, options: GlobalOptions): Promise<number> {
  return withCatalog(options, async (catalog, config) => {
    const result = await unrejectImages(catalog, config.library, catalog.search(query, { rejected: true }));
    await refreshCaptions(catalog, config, result.restored);
    process.stdout.write(`${result.restored.length} image${result.restored.length === 1 ? '' : 's'} back in the dataset\n`);
    if (result.noPlace > 0) {
      process.stderr.write(`celforge unreject: ${result.noPlace} more found out of the dataset with no place recorded to go back to: frames marked as duplicates (\`celforge restore <video> <frame>\` brings those back); they stay where they are\n`);
    }
    return 0;
  });
}

async function confirm(question: string): Promise<boolean> {
  const terminal = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await terminal.question(question)).trim());
  } finally {
    terminal.close();
  }
}

function percent(share: number): string {
  return `${Math.round(share * 1000) / 10}%`;
}
