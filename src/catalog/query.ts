/**
 * The search language, as on an imageboard or in Hydrus: terms separated by
 * spaces, all of which must hold. `tag` and `namespace:value` must be
 * present, `-tag` absent, `namespace:*` means any tag in that namespace
 * (`-namespace:*`: none). A term with spaces goes in double quotes.
 */
import { CelforgeError } from '../errors.ts';
import { parseTag, type Tag } from './tags.ts';

export type QueryTerm =
  | { kind: 'tag'; tag: Tag; negated: boolean }
  | { kind: 'namespace'; namespace: string; negated: boolean };

export function parseQuery(text: string): QueryTerm[] {
  const terms: QueryTerm[] = [];
  for (const raw of splitTerms(text)) {
    const negated = raw.startsWith('-') && raw.length > 1;
    const body = negated ? raw.slice(1) : raw;
    const wildcard = /^([^:\s]+):\*$/.exec(body.trim().toLowerCase());
    if (wildcard) {
      terms.push({ kind: 'namespace', namespace: wildcard[1]!, negated });
      continue;
    }
    const tag = parseTag(body);
    if (!tag) throw new CelforgeError('CONFIG_INVALID', `query "${text}": the term "${raw}" names no tag`);
    terms.push({ kind: 'tag', tag, negated });
  }
  return terms;
}

function splitTerms(text: string): string[] {
  const terms: string[] = [];
  const pattern = /(-?)"([^"]*)"|(\S+)/g;
  for (const match of text.matchAll(pattern)) {
    terms.push(match[3] ?? `${match[1]}${match[2]}`);
  }
  return terms.filter((term) => term !== '-');
}
