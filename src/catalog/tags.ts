/**
 * Tags as the catalog stores them, booru-style: lower case, words joined by
 * underscores (`long_hair`), an optional namespace before the first colon
 * (`series:fate`, `episode:03`), as Hydrus reads them. A leading colon is part
 * of the tag (`:d`), not an empty namespace.
 */
export interface Tag {
  namespace: string;
  name: string;
}

export function parseTag(text: string): Tag | null {
  const normal = text.trim().toLowerCase().replace(/\s+/g, '_');
  if (!normal) return null;
  const colon = normal.indexOf(':');
  if (colon > 0 && colon < normal.length - 1) {
    return { namespace: normal.slice(0, colon), name: normal.slice(colon + 1) };
  }
  return { namespace: '', name: normal };
}

export function formatTag(tag: Tag): string {
  return tag.namespace ? `${tag.namespace}:${tag.name}` : tag.name;
}

/** Where a tag came from; a person's word always wins over the others. */
export type TagSource = 'person' | 'import' | 'pipeline' | 'faces' | 'face-gate' | 'hydrus' | `tagger:${string}`;
