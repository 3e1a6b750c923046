/**
 * Folder names for the subsets of a per-character export, made from
 * character names that can hold anything a tag can (slashes, dots, unicode,
 * Windows' reserved names, hundreds of characters):
 *
 *   subsetFolders(names)   Map from each name to a folder name that is safe
 *                          on Linux, macOS and Windows, and distinct from the
 *                          others even where the file system ignores case
 *   groupFolder(names, folders)   the folder of images with several characters: "a+b+c"
 *
 * A name kept as it is stays readable; a name that had to change (a character
 * replaced, cut short, a reserved name) gets the first 8 hex digits of its
 * SHA-256 appended, so two names that change into the same text stay apart
 * (safeFolderName, src/library/safe-folder-name.ts).
 */
import { cutToBytes, nameDigest, safeFolderName, type FolderNameRules } from '../../library/safe-folder-name.ts';

/** Letters, marks and digits of any script, and `_ - ( )`: nothing a file system or a shell reads specially. */
const UNSAFE = /[^\p{L}\p{M}\p{N}_()-]/gu;
/**
 * UTF-8 bytes, digest suffix included: far under the 255 bytes a name may have
 * on every file system, and short enough that a dataset's paths stay within
 * Windows' 260 characters when the export folder's path is short.
 */
const MAX_NAME = 64;
const MAX_GROUP = 100;
const SUFFIX = 9;

const SUBSET_NAME: FolderNameRules = { clean: (name) => name.normalize('NFC').replace(UNSAFE, '_'), maxBytes: MAX_NAME, fallback: 'character' };
const safeName = (name: string) => safeFolderName(name, SUBSET_NAME);

export function subsetFolders(names: readonly string[]): Map<string, string> {
  const folders = new Map<string, string>();
  const taken = new Set<string>();
  for (const name of [...new Set(names)].sort()) {
    let folder = safeName(name);
    // Names differing only in case, or one that is literally another's folder name plus a digest: a count keeps them apart.
    for (let n = 2; taken.has(folder.toLowerCase()); n += 1) folder = `${safeName(name)}-${n}`;
    taken.add(folder.toLowerCase());
    folders.set(name, folder);
  }
  return folders;
}

export function groupFolder(names: readonly string[], folders: ReadonlyMap<string, string>): string {
  const sorted = [...names].sort();
  const joined = sorted.map((name) => folders.get(name) ?? safeName(name)).join('+');
  if (Buffer.byteLength(joined, 'utf8') <= MAX_GROUP) return joined;
  return `${cutToBytes(joined, MAX_GROUP - SUFFIX)}-${nameDigest(sorted.join('\n'))}`;
}
