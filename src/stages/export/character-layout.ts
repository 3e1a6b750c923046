/**
 * How an export's images are split into Kohya subsets, with the caption of
 * each image and the subset's num_repeats and keep_tokens:
 *
 *   flatLayout(images, options)            one subset, images/, as exports have always been
 *   perCharacterLayout(images, options)    one subset per set of characters in an image:
 *       images/characters_1/<name>/            images with one character
 *       images/characters_<n>/<a>+<b>.../      images with n characters together
 *       images/scenery/                        images with none
 *     with num_repeats from character-balance.ts (times options.numRepeats),
 *     and a report of the balance for bucket_report.json.
 *
 * Characters are the `character:` tags of an image, whatever their source.
 * In the per-character layout a caption starts with the trigger words, then
 * the character names (sorted), then the other tags, and the subset's
 * keep_tokens covers the names too, so shuffle_caption never moves them.
 * keep_tokens may differ per subset: library/config_util.py at 48d368f puts
 * it in SUBSET_ASCENDABLE_SCHEMA (line 190), which every subset schema takes
 * in (lines 272-290), and a subset's value comes before its dataset's and
 * [general]'s (BlueprintGenerator.generate_params_by_fallbacks, lines 439-441).
 * A keep_tokens_separator would do the same without counting, but it changes
 * the caption text itself; counted tokens keep captions plain tag lists.
 */
import { captionFor, captionToken, type CaptionOptions } from '../../catalog/captions.ts';
import { CelforgeError } from '../../errors.ts';
import { balanceRepeats, type BalanceSettings } from './character-balance.ts';
import { charactersOf, coreTags, withoutCoreTags } from './core-tags.ts';
import { groupFolder, subsetFolders } from './subset-folders.ts';

export type Layout = 'flat' | 'per-character';

export interface LayoutOptions {
  caption: CaptionOptions;
  /** num_repeats of the flat subset; in the per-character layout, the balance's repeats are multiplied by it. */
  numRepeats: number;
  /** Prune each character's tags found on at least this share of the images where it is alone; null or absent: keep them. */
  pruneCoreTags?: number | null;
}

export interface PlannedSubset<T> {
  /** Relative to the export folder, "/"-separated. */
  folder: string;
  characters: string[];
  images: { image: T; caption: string }[];
  numRepeats: number;
  /** null: [general]'s keep_tokens holds. */
  keepTokens: number | null;
  /** Kohya's caption for an image without a caption file; ours all have one. */
  classTokens: string;
}

export interface CharacterBalanceReport {
  band: [number, number];
  sceneryShare: number;
  maxRepeats: number;
  /** Every character within the band and scenery within its share. */
  met: boolean;
  problems: string[];
  /** Images × num_repeats over all subsets, each image once: Kohya's "images with repeats". */
  totalSteps: number;
  meanCharacterSteps: number;
  /**
   * `images`: every image with the character, alone or not; `repeats`: num_repeats of its own subset (the images
   * with it alone), null without one; `steps`: images × num_repeats of every subset the character is in; `share`: of
   * totalSteps (an image with two characters counts for both, so shares may add up to more than 1); `ofMean`: of
   * meanCharacterSteps.
   */
  characters: { name: string; images: number; repeats: number | null; steps: number; share: number; ofMean: number; withinBand: boolean; coreTags: string[] }[];
  subsets: { folder: string; characters: string[]; images: number; numRepeats: number; steps: number; keepTokens: number }[];
  scenery: { images: number; steps: number; share: number; withinCap: boolean } | null;
}

const FLAT_FOLDER = 'images';
const SCENERY_FOLDER = 'images/scenery';
const groupParent = (count: number) => `images/characters_${count}`;

export function flatLayout<T extends { tags: string[] }>(images: readonly T[], options: LayoutOptions): PlannedSubset<T>[] {
  const core = coreTagsFor(images, options);
  return [{
    folder: FLAT_FOLDER,
    characters: [],
    images: images.map((image) => ({ image, caption: captionFor(withoutCoreTags(image.tags, core), options.caption) })),
    numRepeats: options.numRepeats,
    keepTokens: null,
    classTokens: [...new Set(options.caption.triggerWords.map((word) => word.trim()))].join(', '),
  }];
}

export function perCharacterLayout<T extends { tags: string[] }>(images: readonly T[], options: LayoutOptions & { balance: BalanceSettings }): { subsets: PlannedSubset<T>[]; report: CharacterBalanceReport } {
  const core = coreTagsFor(images, options);
  const groups = new Map<string, { characters: string[]; images: T[] }>();
  for (const image of images) {
    const characters = charactersOf(image.tags);
    const key = characters.join('\n');
    const group = groups.get(key) ?? { characters, images: [] };
    group.images.push(image);
    groups.set(key, group);
  }
  const ordered = [...groups.values()].sort((a, b) => a.characters.length - b.characters.length || compare(a.characters.join('\n'), b.characters.join('\n')));
  const folders = subsetFolders(ordered.flatMap((group) => group.characters));
  const balance = balanceRepeats(ordered.map((group) => ({ characters: group.characters, images: group.images.length })), options.balance);

  const triggers = uniqueTokens(options.caption.triggerWords);
  const subsets = ordered.map((group, index): PlannedSubset<T> => {
    const names = group.characters.map((name) => nameToken(name, options.caption.underscoresToSpaces));
    const front = uniqueTokens([...triggers, ...names]);
    const keepTokens = options.caption.keepTokens + front.length - triggers.length;
    const caption: CaptionOptions = { ...options.caption, triggerWords: front, keepTokens };
    return {
      folder: group.characters.length === 0 ? SCENERY_FOLDER : `${groupParent(group.characters.length)}/${groupFolder(group.characters, folders)}`,
      characters: group.characters,
      images: group.images.map((image) => ({ image, caption: captionFor(withoutCoreTags(image.tags, core), caption) })),
      numRepeats: balance.repeats[index]! * options.numRepeats,
      keepTokens,
      classTokens: front.join(', '),
    };
  });

  const scale = options.numRepeats;
  const totalSteps = balance.totalSteps * scale;
  const scenery = subsets.find((subset) => subset.characters.length === 0);
  const imagesOf = (name: string) => ordered.filter((group) => group.characters.includes(name)).reduce((sum, group) => sum + group.images.length, 0);
  const report: CharacterBalanceReport = {
    band: options.balance.band,
    sceneryShare: options.balance.sceneryShare,
    maxRepeats: options.balance.maxRepeats,
    met: balance.problems.length === 0,
    problems: balance.problems,
    totalSteps,
    meanCharacterSteps: balance.meanSteps * scale,
    characters: [...balance.characterSteps].map(([name, steps]) => ({
      name,
      images: imagesOf(name),
      repeats: subsets.find((subset) => subset.characters.length === 1 && subset.characters[0] === name)?.numRepeats ?? null,
      steps: steps * scale,
      share: steps / balance.totalSteps,
      ofMean: steps / balance.meanSteps,
      withinBand: !balance.outsideBand.includes(name),
      coreTags: core.get(name) ?? [],
    })),
    subsets: subsets.map((subset) => ({
      folder: subset.folder, characters: subset.characters, images: subset.images.length, numRepeats: subset.numRepeats,
      steps: subset.images.length * subset.numRepeats, keepTokens: subset.keepTokens!,
    })),
    scenery: scenery ? { images: scenery.images.length, steps: scenery.images.length * scenery.numRepeats, share: balance.sceneryShare, withinCap: balance.sceneryWithinCap } : null,
  };
  return { subsets, report };
}

function coreTagsFor(images: readonly { tags: string[] }[], options: LayoutOptions): Map<string, string[]> {
  return options.pruneCoreTags == null ? new Map() : coreTags(images, options.pruneCoreTags);
}

/** A character's name as its caption writes it; Kohya splits captions on commas, so a name may not hold one. */
function nameToken(name: string, underscoresToSpaces: boolean): string {
  const token = captionToken(`character:${name}`, underscoresToSpaces)!;
  if (token.includes(',') || /[\r\n]/.test(token)) {
    throw new CelforgeError('CONFIG_INVALID', `character:${name}: a character name with a comma or a line break would be read by Kohya as more than one caption token; rename the character in the catalog (celforge tag) and export again.`);
  }
  return token;
}

/** Trimmed, each once ignoring case, first place wins: as captionFor writes them. */
function uniqueTokens(words: readonly string[]): string[] {
  const seen = new Set<string>();
  return words.map((word) => word.trim()).filter((word) => !seen.has(word.toLowerCase()) && seen.add(word.toLowerCase()));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
