/**
 * The one check for tags a person hands in (`celforge tag --add`, import
 * sidecars, the review page): a tag is taken only when the search language
 * finds it again and Kohya reads it back as one caption token. Anything else
 * would sit in the catalog unreachable, or split into two tags in training.
 */
import { CelforgeError } from '../errors.ts';
import { parseQuery } from './query.ts';
import { formatTag, parseTag } from './tags.ts';

/**
 * Kohya splits a caption on `caption_separator`, "," by default, and strips
 * each token (kohya-ss/sd-scripts library/train_util.py,
 * BaseDataset.process_caption: `tokens = [t.strip() for t in
 * caption.strip().split(subset.caption_separator)]`).
 */
const KOHYA_CAPTION_SEPARATOR = ',';

/** Why this tag cannot be taken, or null when it can. */
export function personTagProblem(text: string): string | null {
  const trimmed = text.trim();
  if (!trimmed) return 'is empty';
  if (trimmed.includes(KOHYA_CAPTION_SEPARATOR)) {
    return 'contains a comma, and Kohya splits captions on commas (its caption_separator), so it would become two tags';
  }
  if (/\p{Cc}/u.test(trimmed)) return 'contains a line break or another control character';
  if (trimmed.includes('"')) return 'contains a double quote, which search reads as the start or end of a quoted term';
  if (trimmed.startsWith('-')) return 'starts with "-", which search reads as "without", so it could never be searched';
  if (/^[^:]+:\*$/.test(trimmed)) return 'ends in ":*", which search reads as "any tag in that namespace", so it could never be searched';
  const tag = formatTag(parseTag(trimmed)!);
  const terms = parseQuery(tag);
  const found = terms.length === 1 && terms[0]!.kind === 'tag' && !terms[0]!.negated && formatTag(terms[0]!.tag) === tag;
  return found ? null : 'could never be searched: search reads it as something else';
}

/** Throws CONFIG_INVALID naming every tag that cannot be taken, and why; `where` names what handed them in. */
export function checkPersonTags(tags: readonly string[], where: string): void {
  const problems = tags.flatMap((tag) => {
    const problem = personTagProblem(tag);
    return problem ? [`${JSON.stringify(tag)} ${problem}`] : [];
  });
  if (problems.length === 0) return;
  throw new CelforgeError('CONFIG_INVALID', `${where}: ${problems.join('; ')}. Nothing was changed; write the tag another way (e.g. "_" for a space).`);
}
