/**
 * Folder names made from names that can hold anything (a character's tag, a
 * review template's name): safe on Linux, macOS and Windows, readable where
 * the name allows, and apart from each other where the name had to change.
 *
 * API: `safeFolderName(name, rules)`: the name as it is when it is already
 * clean, within `rules.maxBytes`, not a name Windows refuses or alters, and
 * (with `lowerCaseOnly`) all lower case; otherwise `<cleaned>-<digest>`, the
 * cleaned name cut to whole code points and the first 8 hex digits of the
 * name's SHA-256, so that two names that clean to the same text stay apart.
 * `cutToBytes` and `nameDigest` are those two parts, for names built from
 * several (the export's "a+b+c" folders).
 */
import { createHash } from 'node:crypto';

export interface FolderNameRules {
  /** The name with what the folder may not hold replaced; only a name this leaves as it is can be kept. */
  clean(name: string): string;
  /** The longest folder name in UTF-8 bytes, digest suffix included. */
  maxBytes: number;
  /** Stands for a name that cleaning leaves empty, before the digest. */
  fallback: string;
  /** Only an all lower-case name is kept as it is: two names differing in case stay apart on a case-blind disk without knowing of each other. */
  lowerCaseOnly?: boolean;
}

/**
 * Windows refuses its device names as a file or folder name, in any case and with any extension
 * ("NUL.txt", "nul.tar.gz" are NUL), and drops a trailing dot or space ("a." is "a"): Microsoft,
 * "Naming Files, Paths, and Namespaces".
 */
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\.|$)/i;
const TRAILING = /[. ]$/;
/** "-" and 8 hex digits. */
const SUFFIX = 9;

export function safeFolderName(name: string, rules: FolderNameRules): string {
  const cleaned = rules.clean(name);
  const keep = cleaned === name && name !== '' && !RESERVED.test(name) && !TRAILING.test(name) &&
    Buffer.byteLength(name, 'utf8') <= rules.maxBytes && !(rules.lowerCaseOnly && name !== name.toLowerCase());
  if (keep) return name;
  const folder = `${cutToBytes(cleaned, rules.maxBytes - SUFFIX) || rules.fallback}-${nameDigest(name)}`;
  // "nul.txt-1a2b3c4d" is still NUL with an extension to Windows.
  return RESERVED.test(folder) ? folder.replace('.', '_') : folder;
}

/** The first 8 hex digits of the text's SHA-256 (of its UTF-8 bytes). */
export function nameDigest(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 8);
}

/** The longest start of `text`, whole code points, of at most `max` UTF-8 bytes. */
export function cutToBytes(text: string, max: number): string {
  let out = '';
  for (const point of text) {
    if (Buffer.byteLength(out + point, 'utf8') > max) break;
    out += point;
  }
  return out;
}
