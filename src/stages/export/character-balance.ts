/**
 * num_repeats for the subsets of a per-character dataset, so that each
 * character trains about as often as the others.
 *
 *   balanceRepeats(units, settings)   a repeat count (an integer, 1 to maxRepeats) for each unit,
 *                                     and whether the band and the scenery cap were met
 *
 * A unit is a subset: images with exactly one set of characters, or none
 * (scenery). A character's steps are the images × repeats of every unit it
 * is in (an image with A and B trains both), which is how often Kohya shows
 * it per epoch (library/train_util.py at 48d368f, DreamBoothDataset.__init__,
 * lines 2137-2140: `num_train_images += num_repeats * len(img_paths)`). The
 * band bounds each character's steps as a fraction of the mean over the
 * characters; scenery keeps 1 repeat and must stay at or below
 * sceneryShare of all steps, which more repeats for the characters can bring
 * about. Repeats stay as low as the band allows: the most frequent character
 * gets 1 where it can. A unit of several characters is repeated no more than
 * the images of one of them alone, so a few shared images are not what
 * balances the cast.
 *
 * Integer repeats cannot always meet the band (a tight band, a cap on
 * repeats, a character seen only beside a far more frequent one), so the
 * result says which characters fall outside it and why, rather than fail.
 * How the repeats are found is balance-search.ts.
 */
import { CelforgeError } from '../../errors.ts';
import { EPSILON, searchRepeats } from './balance-search.ts';

export interface BalanceUnit {
  /** The characters in every image of the unit; none for scenery. */
  characters: readonly string[];
  images: number;
}

export interface BalanceSettings {
  /** [min, max] of a character's steps as a fraction of the mean over the characters. */
  band: [number, number];
  /** The most scenery may have of all steps, 0 to 1. */
  sceneryShare: number;
  /** The most repeats any unit gets. */
  maxRepeats: number;
}

export interface Balance {
  /** One per unit, in order. */
  repeats: number[];
  /** Images × repeats of the units each character is in, by name. */
  characterSteps: Map<string, number>;
  /** Mean of characterSteps; 0 without characters. */
  meanSteps: number;
  /** Images × repeats over every unit, each image once: what Kohya logs as "images with repeats". */
  totalSteps: number;
  sceneryShare: number;
  /** Characters whose steps fall outside the band. */
  outsideBand: string[];
  sceneryWithinCap: boolean;
  /** Why the band or the cap was not met, for a person; empty when both were. */
  problems: string[];
}

export function checkBalanceSettings(settings: BalanceSettings): void {
  const [low, high] = settings.band;
  const invalid = (message: string) => new CelforgeError('CONFIG_INVALID', `export.balance: ${message}`);
  if (!(low > 0 && low <= 1 && high >= 1 && Number.isFinite(high))) throw invalid(`band must be [min, max] with 0 < min <= 1 <= max; got ${JSON.stringify(settings.band)}.`);
  if (!(settings.sceneryShare >= 0 && settings.sceneryShare <= 1)) throw invalid(`sceneryShare must be from 0 to 1; got ${settings.sceneryShare}.`);
  if (!Number.isSafeInteger(settings.maxRepeats) || settings.maxRepeats < 1) throw invalid(`maxRepeats must be a whole number, 1 or more; got ${settings.maxRepeats}.`);
}

export function balanceRepeats(units: readonly BalanceUnit[], settings: BalanceSettings): Balance {
  checkBalanceSettings(settings);
  const repeats = searchRepeats(units, settings);
  const characters = [...new Set(units.flatMap((unit) => unit.characters))].sort();
  const characterSteps = new Map(characters.map((name) => [name, 0]));
  let total = 0;
  let scenery = 0;
  units.forEach((unit, u) => {
    const steps = unit.images * repeats[u]!;
    total += steps;
    if (unit.characters.length === 0) scenery += steps;
    for (const name of new Set(unit.characters)) characterSteps.set(name, characterSteps.get(name)! + steps);
  });
  const [low, high] = settings.band;
  const mean = characters.length === 0 ? 0 : [...characterSteps.values()].reduce((a, b) => a + b, 0) / characters.length;
  const outsideBand = characters.filter((name) => {
    const ratio = characterSteps.get(name)! / mean;
    return ratio < low - EPSILON || ratio > high + EPSILON;
  });
  const sceneryShare = total === 0 ? 0 : scenery / total;
  const sceneryWithinCap = sceneryShare <= settings.sceneryShare + EPSILON;
  const problems: string[] = [];
  const percent = (value: number) => `${(value * 100).toFixed(1)}%`;
  if (outsideBand.length > 0) {
    problems.push(`${outsideBand.map((name) => `${name} (${(characterSteps.get(name)! / mean).toFixed(3)} of the mean)`).join(', ')}: outside the band [${low}, ${high}] of the mean steps per character (${mean.toFixed(1)}); the search found no whole repeats from 1 to ${settings.maxRepeats} that do better. Widen export.balance.band, raise export.balance.maxRepeats, or export fewer images of the most frequent characters.`);
  }
  if (!sceneryWithinCap) {
    problems.push(characters.length === 0
      ? `scenery is ${percent(sceneryShare)} of the steps, above export.balance.sceneryShare (${percent(settings.sceneryShare)}), and no image has a character: tag characters first, or export with the flat layout.`
      : `scenery is ${percent(sceneryShare)} of the steps, above export.balance.sceneryShare (${percent(settings.sceneryShare)}), even with the characters at up to ${settings.maxRepeats} repeats: export fewer scenery images, or raise export.balance.sceneryShare or maxRepeats.`);
  }
  return { repeats, characterSteps, meanSteps: mean, totalSteps: total, sceneryShare, outsideBand, sceneryWithinCap, problems };
}
