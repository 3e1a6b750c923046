/**
 * The record an export keeps of what it wrote (`<out>/.celforge-export.json`),
 * and the rule built on it: a file in the export folder may be overwritten
 * or removed only when it is missing, when this exporter wrote it and nobody
 * changed it since, or when it already holds exactly what would be written
 * (nothing is lost then). Everything else belongs to a person.
 *
 *   readManifest(out)                 the record, or an empty one
 *   writeManifest(out, manifest)      written to a temporary name, synced, renamed
 *   refuseConflicts(out, planned, stale, manifest)
 *                                     the rule, for every file an export would write or remove:
 *                                     throws EXPORT_CONFLICT naming the files that break it
 *   textFingerprint / statFingerprint what to record after writing a file
 */
import { createHash } from 'node:crypto';
import { lstat, readFile, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { writeThenRename } from '../../adapters/durable-file.ts';
import { sha256Of } from '../../adapters/file-hash.ts';
import { CelforgeError, errorMessage } from '../../errors.ts';

const MANIFEST = '.celforge-export.json';
/** How many conflicting paths the error lists before "and N more". */
const CONFLICTS_LISTED = 20;
/** A file named by the SHA-256 of its bytes, as the catalog names images. */
const CONTENT_NAMED = /^[0-9a-f]{64}\.[A-Za-z0-9]+$/;
const FORMAT = 'celforge-kohya-export/2';
/** The first format: image and caption names in images/, and whether meta_cap.json was written. */
const FORMAT_1 = 'celforge-kohya-export/1';

/** How a file looked when this exporter left it; any one that matches means "ours, unchanged". */
export type Fingerprint =
  /** Text files: the bytes written. */
  | { sha256: string }
  /** Images: hashing every linked frame on every export would read the whole dataset. */
  | { size: number; mtimeMs: number }
  /** From a format-1 record, which kept no fingerprints: not modified after that record was written. */
  | { notAfterMs: number };

/** A file an export writes, by its path relative to the export folder ("/"-separated): a text, or a copy or link of `source`. */
export type PlannedFile = { name: string; text: string } | { name: string; source: string };

export interface Manifest {
  /** Keyed by the path relative to the export folder, "/"-separated. */
  files: Map<string, Fingerprint[]>;
}

export function textFingerprint(text: string): Fingerprint {
  return { sha256: createHash('sha256').update(text, 'utf8').digest('hex') };
}

export function statFingerprint(info: Stats): Fingerprint {
  return { size: info.size, mtimeMs: info.mtimeMs };
}

/**
 * Stops an export, before it writes anything, when a file it would
 * overwrite (`planned`) or remove (`stale`) is not what it left there.
 */
export async function refuseConflicts(out: string, planned: PlannedFile[], stale: string[], manifest: Manifest): Promise<void> {
  const conflicts: string[] = [];
  // A file where a folder of the export goes (images/, images/scenery/) stands for everything under it.
  const foldersOf = (name: string) => name.split('/').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('/'));
  const blocked = new Set<string>();
  for (const folder of new Set([...planned.map((p) => p.name), ...stale].flatMap(foldersOf))) {
    if (foldersOf(folder).some((parent) => blocked.has(parent))) continue;
    const info = await lstat(path.join(out, folder)).catch(() => null);
    if (info !== null && !info.isDirectory()) blocked.add(folder);
  }
  conflicts.push(...[...blocked].map((folder) => `${folder} (not a folder)`));
  const checked = (name: string) => !foldersOf(name).some((folder) => blocked.has(folder));

  for (const p of planned.filter((p) => checked(p.name))) {
    const file = path.join(out, p.name);
    const same = 'text' in p
      ? async () => (await readFile(file, 'utf8').catch(() => null)) === p.text
      : (info: Stats) => holdsSameBytes(file, info, p.source);
    if (!(await mayReplace(file, manifest.files.get(p.name), same))) conflicts.push(p.name);
  }
  for (const name of stale.filter(checked)) {
    const file = path.join(out, name);
    // A catalog image whose bytes still hash to its name is the image as it was written.
    const base = path.basename(name);
    const same = CONTENT_NAMED.test(base) ? async () => (await sha256Of(file)) === base.slice(0, 64) : undefined;
    if (!(await mayReplace(file, manifest.files.get(name), same))) conflicts.push(name);
  }
  if (conflicts.length === 0) return;

  const one = conflicts.length === 1;
  const listed = conflicts.slice(0, CONFLICTS_LISTED).map((name) => `  ${name}`);
  if (conflicts.length > CONFLICTS_LISTED) listed.push(`  ... and ${conflicts.length - CONFLICTS_LISTED} more`);
  throw new CelforgeError('EXPORT_CONFLICT', [
    `${out}: ${one ? 'this file was' : `these ${conflicts.length} files were`} not written by celforge, or changed after celforge wrote ${one ? 'it' : 'them'}, and the export would overwrite or remove ${one ? 'it' : 'them'}:`,
    ...listed,
    `Nothing was written. Move ${one ? 'it' : 'them'} out of ${out} and export again (a caption corrected by hand belongs in the catalog: celforge tag), or export to another folder with --out.`,
  ].join('\n'), { file: out });
}

/** The image at `file` is `source`: the same file (a hard link), or a copy of the same bytes. */
async function holdsSameBytes(file: string, info: Stats, source: string): Promise<boolean> {
  const sourceInfo = await stat(source);
  if (info.dev === sourceInfo.dev && info.ino === sourceInfo.ino) return true;
  return info.size === sourceInfo.size && (await sha256Of(file)) === (await sha256Of(source));
}

/**
 * Whether `file` may be overwritten or removed. `same` says whether the file
 * already holds what would be written (for a removal: what was written).
 * Only regular files qualify: a folder or a link in the way belongs to a person.
 */
async function mayReplace(file: string, recorded: Fingerprint[] | undefined, same?: (info: Stats) => Promise<boolean>): Promise<boolean> {
  const info = await lstat(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (info === null) return true;
  if (!info.isFile()) return false;
  let sha256: string | undefined;
  for (const fingerprint of recorded ?? []) {
    if ('sha256' in fingerprint && (sha256 ??= await sha256Of(file)) === fingerprint.sha256) return true;
    if ('size' in fingerprint && info.size === fingerprint.size && info.mtimeMs === fingerprint.mtimeMs) return true;
    if ('notAfterMs' in fingerprint && info.mtimeMs <= fingerprint.notAfterMs) return true;
  }
  return same ? same(info) : false;
}

/** The record in the export folder `out`; an empty one for a new folder. A file in the folder's place is refused. */
export async function readManifest(out: string): Promise<Manifest> {
  const outInfo = await stat(out).catch(() => null);
  if (outInfo !== null && !outInfo.isDirectory()) {
    throw new CelforgeError('EXPORT_CONFLICT', `${out} is a file, not a folder; nothing was written. Export to a folder with --out.`, { file: out });
  }
  const file = path.join(out, MANIFEST);
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw new CelforgeError('FILE_NOT_FOUND', `${file}: cannot read the record of an earlier export (${error.message}).`, { file, cause: error });
  });
  if (text === null) return { files: new Map() };
  try {
    const parsed = JSON.parse(text) as { format?: unknown; files?: unknown; images?: unknown; metadataFile?: unknown };
    if (parsed.format === FORMAT && isRecord(parsed.files)) {
      const files = new Map<string, Fingerprint[]>();
      for (const [name, fingerprints] of Object.entries(parsed.files)) {
        if (safeRelative(name) && Array.isArray(fingerprints)) files.set(name, fingerprints.filter(isFingerprint));
      }
      return { files };
    }
    if (parsed.format === FORMAT_1 && Array.isArray(parsed.images)) return formatOne(parsed.images, parsed.metadataFile === true, (await stat(file)).mtimeMs);
    throw new Error('not a celforge export record');
  } catch (error) {
    throw new CelforgeError('CONFIG_INVALID', `${file}: cannot read the record of an earlier export (${errorMessage(error)}); move the file away and export to a new folder, or delete it to treat everything in ${out} as not celforge's.`, { file, cause: error });
  }
}

/**
 * A format-1 exporter wrote the images and captions it listed, meta_cap.json
 * when it says so, and dataset_config.toml and bucket_report.json on every
 * run, all before its record: a file modified after the record was not left
 * so by celforge.
 */
function formatOne(images: unknown[], metadataFile: boolean, recordMtimeMs: number): Manifest {
  const written = [
    ...images.filter((name): name is string => typeof name === 'string').map((name) => `images/${name}`),
    'dataset_config.toml', 'bucket_report.json', ...(metadataFile ? ['meta_cap.json'] : []),
  ];
  return { files: new Map(written.filter(safeRelative).map((name) => [name, [{ notAfterMs: recordMtimeMs }]])) };
}

export async function writeManifest(out: string, manifest: Manifest): Promise<void> {
  const file = path.join(out, MANIFEST);
  const files = Object.fromEntries([...manifest.files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const text = `${JSON.stringify({ format: FORMAT, files }, null, 1)}\n`;
  await writeThenRename(file, `${file}.${process.pid}.celforge-tmp`, text);
}

/** Plain relative paths inside the export folder: a hand-edited record must not reach outside it. */
function safeRelative(name: string): boolean {
  const parts = name.split('/');
  return name !== '' && !path.isAbsolute(name) && !name.includes('\\') && parts.every((part) => part !== '' && part !== '.' && part !== '..');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isFingerprint(value: unknown): value is Fingerprint {
  if (!isRecord(value)) return false;
  if (typeof value.sha256 === 'string') return true;
  if (typeof value.size === 'number' && typeof value.mtimeMs === 'number') return true;
  return typeof value.notAfterMs === 'number';
}
