/**
 * `celforge tag "<query>" --add a,b --remove c,d`: a person's bulk edit on
 * every image the query finds. Recorded as the person's: re-tagging never
 * undoes it; the captions beside the edited frames are written again. A tag
 * that search could not find again or Kohya would split is refused.
 */
import { editTagsByQuery } from '../catalog/person-edit.ts';
import { CelforgeError } from '../errors.ts';
import type { GlobalOptions } from './context.ts';
import { withCatalog } from './catalog-context.ts';

export async function tagCommand(query: string, options: GlobalOptions & { add?: string; remove?: string }): Promise<void> {
  const add = splitList(options.add);
  const remove = splitList(options.remove);
  if (add.length === 0 && remove.length === 0) {
    throw new CelforgeError('CONFIG_INVALID', 'celforge tag: nothing to do; give --add and/or --remove with comma-separated tags');
  }
  await withCatalog(options, async (catalog, config) => {
    const images = await editTagsByQuery(catalog, config, query, add, remove, 'celforge tag --add');
    const said = [add.length ? `added ${add.join(', ')}` : '', remove.length ? `removed ${remove.join(', ')}` : ''].filter(Boolean).join('; ');
    process.stdout.write(`${images} image${images === 1 ? '' : 's'}: ${said}\n`);
  });
}

function splitList(text: string | undefined): string[] {
  return (text ?? '').split(',').map((tag) => tag.trim()).filter(Boolean);
}
