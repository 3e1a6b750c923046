/**
 * Names from reference pictures: a person puts pictures of a character in
 * `<library>/characters/<series>/<name>/` (PNG, JPEG or WebP; the folder's
 * name is the character's, as its tag spells it: `Saber Alter` ->
 * `character:saber_alter`). A cluster takes the name when at least `share`
 * of its crops (a sample of them) are the same character as one of the
 * name's pictures: a CCIP difference at or below the model's threshold, as
 * imgutils' `ccip_same` decides (deepghs/imgutils@525c042e
 * imgutils/metrics/ccip.py, `ccip_same`: `return diff <= threshold`). Where
 * several names qualify, the one most of the sample matches wins.
 *
 * `readReferences(library, series)` lists the folders; `chooseName` decides
 * from the differences between a cluster's sample and every reference picture.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { personTagProblem } from '../../catalog/person-tags.ts';

export interface ReferenceSet {
  name: string;
  /** Absolute paths, sorted. */
  files: string[];
}

const PICTURE = /\.(png|jpe?g|webp)$/i;

export function referencesDir(library: string, series: string): string {
  return path.join(library, 'characters', series);
}

/** The series' reference folders that hold pictures, by name; `refused` names folders no tag can carry, and why. */
export async function readReferences(library: string, series: string): Promise<{ sets: ReferenceSet[]; refused: string[] }> {
  const dir = referencesDir(library, series);
  if (!existsSync(dir)) return { sets: [], refused: [] };
  const sets: ReferenceSet[] = [];
  const refused: string[] = [];
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isDirectory()) continue;
    const problem = personTagProblem(`character:${entry.name}`);
    if (problem) {
      refused.push(`${path.join(dir, entry.name)}: the name ${problem}`);
      continue;
    }
    const files = (await readdir(path.join(dir, entry.name), { withFileTypes: true }))
      .filter((file) => file.isFile() && PICTURE.test(file.name))
      .map((file) => path.join(dir, entry.name, file.name))
      .sort();
    if (files.length) sets.push({ name: entry.name, files });
  }
  return { sets, refused };
}

/**
 * `differences` is row-major, one row per sampled crop of the cluster and one
 * column per reference picture, the sets' files in order.
 */
export function chooseName(differences: Float32Array, sampleSize: number, sets: readonly ReferenceSet[], threshold: number, share: number): string | null {
  const columns = sets.reduce((sum, set) => sum + set.files.length, 0);
  let best: { name: string; matched: number } | null = null;
  let first = 0;
  for (const set of sets) {
    let matched = 0;
    for (let row = 0; row < sampleSize; row += 1) {
      const cells = differences.subarray(row * columns + first, row * columns + first + set.files.length);
      if (cells.some((difference) => difference <= threshold)) matched += 1;
    }
    if (matched > 0 && matched >= share * sampleSize && (!best || matched > best.matched)) best = { name: set.name, matched };
    first += set.files.length;
  }
  return best?.name ?? null;
}
