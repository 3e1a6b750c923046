/**
 * Tags as the catalog stores them, booru-style: lower case, words joined by
 * underscores (`long_hair`), an optional namespace before the first colon
 * (`series:fate`, `episode:03`) when it is one of NAMESPACES. A leading colon
 * is part of the tag (`:d`), not an empty namespace. The numbered namespaces are
 * zero-padded as the pipeline writes them, so `episode:3` is `episode:03`.
 */
export interface Tag {
  namespace: string;
  name: string;
}

export function parseTag(text: string): Tag | null {
  const normal = text.trim().toLowerCase().replace(/\s+/g, '_');
  if (!normal) return null;
  const colon = normal.indexOf(':');
  if (colon > 0 && colon < normal.length - 1 && NAMESPACES.has(normal.slice(0, colon))) {
    const namespace = normal.slice(0, colon);
    return { namespace, name: padNumber(namespace, normal.slice(colon + 1)) };
  }
  return { namespace: '', name: normal };
}

/**
 * Digits the pipeline pads each numbered namespace to: `episode:` as
 * src/daemon/naming.ts normaliseEpisode writes it (`03`), `scene:` as
 * src/stages/catalog/catalog-stage.ts writes it (`0001`).
 */
const PADDED_NAMESPACES: Readonly<Record<string, number>> = { episode: 2, scene: 4 };

function padNumber(namespace: string, name: string): string {
  const width = PADDED_NAMESPACES[namespace];
  if (width === undefined || !/^\d+$/.test(name)) return name;
  return name.replace(/^0+(?=\d)/, '').padStart(width, '0');
}

/**
 * The namespaces there are; text before a colon is a namespace only when it
 * is one of them, so that WD14's general tags `>:(`, `>:)`,
 * `2b_(nier:automata)_(cosplay)` or `re:zero_kara_hajimeru_isekai_seikatsu`
 * stay whole. celforge writes `series:`, `episode:`, `scene:`, `faces:`,
 * `crop:`, `character:`, `rating:` and `review:` (what a person should look at,
 * kept out of captions); Hydrus's defaults add `creator:`, `studio:`,
 * `person:`, `meta:` (its namespace colours) and `title:`, `volume:`,
 * `chapter:`, `page:` (its namespace sort), hydrus/client/ClientDefaults.py.
 */
export const NAMESPACES: ReadonlySet<string> = new Set([
  'series', 'episode', 'scene', 'faces', 'crop', 'character', 'rating', 'review',
  'creator', 'studio', 'person', 'meta', 'title', 'volume', 'chapter', 'page',
]);

export function formatTag(tag: Tag): string {
  return tag.namespace ? `${tag.namespace}:${tag.name}` : tag.name;
}

/** Where a tag came from; a person's word always wins over the others. */
/** `crops`: a crop's `crop:<kind>`; `composition`: a composition tag the face size confirmed. */
export type TagSource = 'person' | 'import' | 'pipeline' | 'faces' | 'face-gate' | 'crops' | 'composition' | 'ccip' | 'hydrus' | `tagger:${string}`;
