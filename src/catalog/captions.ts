/**
 * Caption text for one image, from its catalog tags, in the form Kohya
 * sd-scripts reads from a `.txt` sidecar: tags joined by ", ", trigger words
 * first so that `keep_tokens` pins them when `shuffle_caption` shuffles the
 * rest (`library/train_util.py` `BaseDataset.process_caption`: the caption is
 * split on `caption_separator`, "," by default, each token stripped, and the
 * first `keep_tokens` tokens stay in front).
 *
 * Which tags are written:
 * - plain booru tags (`long_hair`, `1girl`, `:d`), as they are;
 * - `character:name` as `name`, as the WD14 tagger writes character tags;
 * - `rating:x` as `x` (`general`, `sensitive`, `questionable`, `explicit`):
 *   Kohya's WD14 tagger writes the bare rating name with `--use_rating_tags`
 *   (`finetune/tag_images_by_wd14_tagger.py`), which is what WD14-captioned
 *   LoRAs and their users' prompts use;
 * - every other namespace (`series:`, `episode:`, `scene:`, Hydrus's
 *   `creator:` ...) is organisation, not description, and is left out. The
 *   namespace is read as the catalog reads it (src/catalog/tags.ts): only a
 *   known namespace is one, so `>:(` and `re:zero_...` are plain tags.
 *
 * With `underscoresToSpaces`, `long_hair` becomes `long hair` except in
 * kaomoji (see isKaomoji). A tag written twice (`saber` and `character:saber`,
 * or a tag equal to a trigger word, ignoring case) appears once, first place
 * wins.
 */
import { parseTag } from './tags.ts';
import { CelforgeError } from '../errors.ts';

export interface CaptionOptions {
  triggerWords: string[];
  /** Kohya's `keep_tokens`: at least the number of trigger words. */
  keepTokens: number;
  underscoresToSpaces: boolean;
  /** Joins the tokens; must be "," with optional spaces, Kohya's default caption_separator. Default ", ". */
  shuffleSeparator?: string;
}

const DEFAULT_SEPARATOR = ', ';
/** `BaseSubset.caption_separator` default (library/train_util.py, config docs). */
const KOHYA_CAPTION_SEPARATOR = ',';

/** Throws CONFIG_INVALID where Kohya would read the caption differently from what we mean. */
export function checkCaptionOptions(options: CaptionOptions): void {
  const separator = options.shuffleSeparator ?? DEFAULT_SEPARATOR;
  if (separator.trim() !== KOHYA_CAPTION_SEPARATOR) {
    throw new CelforgeError('CONFIG_INVALID', `caption.shuffleSeparator is ${JSON.stringify(separator)}, but Kohya splits captions on "${KOHYA_CAPTION_SEPARATOR}" (its caption_separator): use ", " or ",".`);
  }
  if (!Number.isSafeInteger(options.keepTokens) || options.keepTokens < 0) {
    throw new CelforgeError('CONFIG_INVALID', `caption.keepTokens must be a whole number, 0 or more; got ${options.keepTokens}.`);
  }
  for (const word of options.triggerWords) {
    if (!word.trim()) throw new CelforgeError('CONFIG_INVALID', 'caption.triggerWords has an empty trigger word; remove it.');
    if (word.includes(KOHYA_CAPTION_SEPARATOR) || /[\r\n]/.test(word)) {
      throw new CelforgeError('CONFIG_INVALID', `caption.triggerWords: ${JSON.stringify(word)} contains a comma or a line break, so Kohya would read it as more than one token; write it as separate trigger words.`);
    }
  }
  const triggers = uniqueTriggers(options.triggerWords);
  if (options.keepTokens < triggers.length) {
    throw new CelforgeError('CONFIG_INVALID', `caption.keepTokens is ${options.keepTokens} but there are ${triggers.length} trigger words (${triggers.join(', ')}): Kohya would shuffle trigger words away from the front. Set keepTokens to ${triggers.length} or more.`);
  }
}

export function captionFor(tags: string[], options: CaptionOptions): string {
  checkCaptionOptions(options);
  const tokens: string[] = [];
  const seen = new Set<string>();
  const add = (token: string | null) => {
    if (!token) return;
    const key = token.toLowerCase();
    if (seen.has(key)) return;
    seen.add(key);
    tokens.push(token);
  };
  for (const word of uniqueTriggers(options.triggerWords)) add(word);
  for (const tag of tags) add(captionToken(tag, options.underscoresToSpaces));
  return tokens.join(options.shuffleSeparator ?? DEFAULT_SEPARATOR);
}

/** What one catalog tag becomes in a caption, or null when it is not written. */
export function captionToken(tag: string, underscoresToSpaces: boolean): string | null {
  const parsed = parseTag(tag);
  if (!parsed) return null;
  if (parsed.namespace !== '' && parsed.namespace !== 'character' && parsed.namespace !== 'rating') return null;
  const name = parsed.name;
  return underscoresToSpaces && !isKaomoji(name) ? name.replaceAll('_', ' ') : name;
}

/**
 * A face made of symbols, whose underscore is a mouth, not a space: a tag of
 * three characters or fewer (`^_^`, `>_<`, `o_o`, `0_0`, `x_x`, `;_;`, `._.`),
 * which is the rule of Kohya's WD14 tagger `--remove_underscore`
 * (`tag.replace("_", " ") if len(tag) > 3`), or a longer tag that is mostly
 * punctuation: fewer letters and digits than other characters (`^_^;`,
 * `(o)_(o)`). `long_hair`, `1girl`, `saber_(fate)` are words.
 */
export function isKaomoji(tag: string): boolean {
  const characters = [...tag];
  if (characters.length <= 3) return true;
  const wordCharacters = characters.filter((c) => /[\p{L}\p{N}]/u.test(c)).length;
  return wordCharacters * 2 < characters.length;
}

function uniqueTriggers(words: string[]): string[] {
  const seen = new Set<string>();
  const unique: string[] = [];
  for (const word of words.map((w) => w.trim())) {
    if (seen.has(word.toLowerCase())) continue;
    seen.add(word.toLowerCase());
    unique.push(word);
  }
  return unique;
}
