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
 * gets 1 where it can.
 *
 * Integer repeats cannot always meet the band (a tight band, a cap on
 * repeats, a character seen only beside a far more frequent one), so the
 * result says which characters fall outside it and why, rather than fail.
 */
import { CelforgeError } from '../../errors.ts';

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

/** Slack for comparisons of ratios of integers. */
const EPSILON = 1e-9;
/** Step between the targets tried, as a factor. */
const TARGET_STEP = 1.1;

export function checkBalanceSettings(settings: BalanceSettings): void {
  const [low, high] = settings.band;
  const invalid = (message: string) => new CelforgeError('CONFIG_INVALID', `export.balance: ${message}`);
  if (!(low > 0 && low <= 1 && high >= 1 && Number.isFinite(high))) throw invalid(`band must be [min, max] with 0 < min <= 1 <= max; got ${JSON.stringify(settings.band)}.`);
  if (!(settings.sceneryShare >= 0 && settings.sceneryShare <= 1)) throw invalid(`sceneryShare must be from 0 to 1; got ${settings.sceneryShare}.`);
  if (!Number.isSafeInteger(settings.maxRepeats) || settings.maxRepeats < 1) throw invalid(`maxRepeats must be a whole number, 1 or more; got ${settings.maxRepeats}.`);
}

export function balanceRepeats(units: readonly BalanceUnit[], settings: BalanceSettings): Balance {
  checkBalanceSettings(settings);
  const problem = new Problem(units, settings);
  if (problem.characters.length === 0) return problem.result(units.map(() => 1));

  // Each character's images in all its units; with every unit at 1 repeat, the largest is the least steps any balance needs.
  const imagesOf = problem.characters.map((_, c) => problem.unitsOf[c]!.reduce((sum, u) => sum + units[u]!.images, 0));
  const base = Math.max(...imagesOf);
  let best: { repeats: number[]; score: Score } | null = null;
  for (let target = base; target <= base * settings.maxRepeats * TARGET_STEP; target *= TARGET_STEP) {
    const repeats = problem.improve(problem.start(target, imagesOf));
    const score = problem.score(repeats);
    if (best === null || better(score, best.score)) best = { repeats, score };
    if (best.score.violation === 0) break;
  }
  return problem.result(best!.repeats);
}

interface Score {
  /** Sum over characters of how far outside the band they are (fractions of the mean), plus the scenery's excess share; 0 when all is met. */
  violation: number;
  totalSteps: number;
}

function better(a: Score, b: Score): boolean {
  if (Math.abs(a.violation - b.violation) > EPSILON) return a.violation < b.violation;
  return a.totalSteps < b.totalSteps;
}

class Problem {
  readonly characters: string[];
  /** For each character (by index), the units it is in. */
  readonly unitsOf: number[][];
  readonly #units: readonly BalanceUnit[];
  readonly #settings: BalanceSettings;
  readonly #members: number[][];

  constructor(units: readonly BalanceUnit[], settings: BalanceSettings) {
    this.#units = units;
    this.#settings = settings;
    this.characters = [...new Set(units.flatMap((unit) => unit.characters))].sort();
    const index = new Map(this.characters.map((name, c) => [name, c]));
    this.#members = units.map((unit) => [...new Set(unit.characters)].map((name) => index.get(name)!));
    this.unitsOf = this.characters.map(() => []);
    this.#members.forEach((members, u) => members.forEach((c) => this.unitsOf[c]!.push(u)));
  }

  /**
   * Repeats that would give every character `target` steps if units were not
   * shared: a character's rate is target / its images. A unit with several
   * characters takes the lowest rate among them, so the most frequent one is
   * not pushed up; each character's own unit makes up the rest.
   */
  start(target: number, imagesOf: number[]): number[] {
    const clamp = (value: number) => Math.min(this.#settings.maxRepeats, Math.max(1, Math.round(value)));
    const repeats = this.#units.map(() => 1);
    const rate = imagesOf.map((images) => target / images);
    this.#members.forEach((members, u) => {
      if (members.length > 1) repeats[u] = clamp(Math.min(...members.map((c) => rate[c]!)));
    });
    this.#members.forEach((members, u) => {
      if (members.length !== 1) return;
      const c = members[0]!;
      const shared = this.unitsOf[c]!.filter((v) => v !== u).reduce((sum, v) => sum + this.#units[v]!.images * repeats[v]!, 0);
      repeats[u] = clamp((target - shared) / this.#units[u]!.images);
    });
    return repeats;
  }

  /** Steepest descent: one repeat up or down on one unit at a time, while that lowers the score. */
  improve(start: number[]): number[] {
    const repeats = [...start];
    let score = this.score(repeats);
    const movable = this.#members.map((members, u) => u).filter((u) => this.#members[u]!.length > 0);
    for (let round = 0; round < movable.length * this.#settings.maxRepeats * 4 && score.violation > 0; round++) {
      let move: { unit: number; by: number; score: Score } | null = null;
      for (const unit of movable) {
        for (const by of [1, -1]) {
          const value = repeats[unit]! + by;
          if (value < 1 || value > this.#settings.maxRepeats) continue;
          repeats[unit] = value;
          const candidate = this.score(repeats);
          repeats[unit] = value - by;
          if (better(candidate, move?.score ?? score)) move = { unit, by, score: candidate };
        }
      }
      if (move === null) break;
      repeats[move.unit]! += move.by;
      score = move.score;
    }
    return repeats;
  }

  steps(repeats: readonly number[]): { perCharacter: number[]; total: number; scenery: number } {
    const perCharacter = this.characters.map(() => 0);
    let total = 0;
    let scenery = 0;
    this.#units.forEach((unit, u) => {
      const steps = unit.images * repeats[u]!;
      total += steps;
      if (this.#members[u]!.length === 0) scenery += steps;
      for (const c of this.#members[u]!) perCharacter[c]! += steps;
    });
    return { perCharacter, total, scenery };
  }

  score(repeats: readonly number[]): Score {
    const { perCharacter, total, scenery } = this.steps(repeats);
    const mean = perCharacter.reduce((a, b) => a + b, 0) / perCharacter.length;
    const [low, high] = this.#settings.band;
    let violation = 0;
    for (const steps of perCharacter) violation += Math.max(0, low - steps / mean - EPSILON, steps / mean - high - EPSILON);
    if (total > 0) violation += Math.max(0, scenery / total - this.#settings.sceneryShare - EPSILON);
    return { violation, totalSteps: total };
  }

  result(repeats: number[]): Balance {
    const { perCharacter, total, scenery } = this.steps(repeats);
    const [low, high] = this.#settings.band;
    const mean = perCharacter.length === 0 ? 0 : perCharacter.reduce((a, b) => a + b, 0) / perCharacter.length;
    const characterSteps = new Map(this.characters.map((name, c) => [name, perCharacter[c]!]));
    const outsideBand = this.characters.filter((_, c) => {
      const ratio = perCharacter[c]! / mean;
      return ratio < low - EPSILON || ratio > high + EPSILON;
    });
    const sceneryShare = total === 0 ? 0 : scenery / total;
    const sceneryWithinCap = sceneryShare <= this.#settings.sceneryShare + EPSILON;
    const problems: string[] = [];
    const percent = (value: number) => `${(value * 100).toFixed(1)}%`;
    if (outsideBand.length > 0) {
      problems.push(`${outsideBand.map((name) => `${name} (${(characterSteps.get(name)! / mean).toFixed(3)} of the mean)`).join(', ')}: outside the band [${low}, ${high}] of the mean steps per character (${mean.toFixed(1)}); whole repeats from 1 to ${this.#settings.maxRepeats} cannot do better. Widen export.balance.band, raise export.balance.maxRepeats, or export fewer images of the most frequent characters.`);
    }
    if (!sceneryWithinCap) {
      problems.push(this.characters.length === 0
        ? `scenery is ${percent(sceneryShare)} of the steps, above export.balance.sceneryShare (${percent(this.#settings.sceneryShare)}), and no image has a character: tag characters first, or export with the flat layout.`
        : `scenery is ${percent(sceneryShare)} of the steps, above export.balance.sceneryShare (${percent(this.#settings.sceneryShare)}), even with the characters at up to ${this.#settings.maxRepeats} repeats: export fewer scenery images, or raise export.balance.sceneryShare or maxRepeats.`);
    }
    return { repeats, characterSteps, meanSteps: mean, totalSteps: total, sceneryShare, outsideBand, sceneryWithinCap, problems };
  }
}
