/**
 * The search behind character-balance.ts: whole repeats, 1 to maxRepeats, for
 * each unit, that keep every character's steps within the band of the mean
 * and scenery within its share, with the fewest steps. A unit of several
 * characters is never repeated more than the own unit (the images alone) of
 * each of its characters that has one: otherwise a few shared images, worth
 * two characters' steps at once, would be the cheapest way to balance and be
 * repeated until they are learnt by heart.
 *
 *   searchRepeats(units, settings)   one repeat count per unit (scenery's is 1)
 *
 * A cast with at most EXHAUSTIVE choices of repeats is tried in full, so it
 * meets the band whenever whole repeats can. A larger cast starts from
 * targets of steps per character, rising by TARGET_STEP from the fewest
 * possible, each giving repeats by rounding; the first start that meets
 * everything wins (the fewest steps). Failing that, a local search improves
 * the best starts within a budget: for a large cast the band is met where the
 * search finds a way, which is not proven to be every time it could be.
 */
import type { BalanceSettings, BalanceUnit } from './character-balance.ts';

/** Slack for comparisons of ratios of integers. */
export const EPSILON = 1e-9;
/** Step between the targets tried, as a factor. */
const TARGET_STEP = 1.1;
/**
 * The local search's budget, in steps of one character looked at: starts are improved, the most
 * promising first, until it is spent (a few seconds at most on a cast of 80 characters in 300
 * groups; every start, for a small cast). Each start gets at most MOVES moves.
 */
const BUDGET = 5e7;
const MOVES = 1000;
/** Casts with at most this many choices of repeats are searched in full. */
const EXHAUSTIVE = 200_000;

export function searchRepeats(units: readonly BalanceUnit[], settings: BalanceSettings): number[] {
  const problem = new Problem(units, settings);
  if (problem.characters.length === 0) return units.map(() => 1);

  const exhaustive = problem.exhaustive();
  if (exhaustive !== null) return exhaustive;

  // Each character's images in all its units; with every unit at 1 repeat, the largest is the least steps any balance needs.
  const imagesOf = problem.characters.map((_, c) => problem.unitsOf[c]!.reduce((sum, u) => sum + units[u]!.images, 0));
  const base = Math.max(...imagesOf);
  const starts: { repeats: number[]; score: Score }[] = [];
  for (let target = base; target <= base * settings.maxRepeats * TARGET_STEP; target *= TARGET_STEP) {
    const repeats = problem.start(target, imagesOf);
    const score = problem.score(repeats);
    // The smallest target that meets everything as it starts is the fewest steps: no need to look further.
    if (score.violation === 0) return repeats;
    starts.push({ repeats, score });
  }
  // Improve the most promising starts, smallest target first among equals; a bounded search, so a
  // cast that cannot be balanced costs no more than one that can.
  let best: { repeats: number[]; score: Score } | null = null;
  const ordered = starts.map((entry, order) => ({ ...entry, order })).sort((a, b) => (better(a.score, b.score) ? -1 : better(b.score, a.score) ? 1 : a.order - b.order));
  for (const start of ordered) {
    if (best !== null && problem.work > BUDGET) break;
    const repeats = problem.improve(start.repeats);
    const score = problem.score(repeats);
    if (best === null || better(score, best.score)) best = { repeats, score };
    if (best.score.violation === 0) break;
  }
  return best!.repeats;
}

/** Changes of repeats, [unit, by], made together. */
type Move = [unit: number, by: number][];

interface Steps {
  /** By character index. */
  perCharacter: number[];
  total: number;
  scenery: number;
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
  /** Characters looked at by the local search so far. */
  work = 0;
  /** For each character (by index), the units it is in. */
  readonly unitsOf: number[][];
  readonly #units: readonly BalanceUnit[];
  readonly #settings: BalanceSettings;
  readonly #members: number[][];
  /** For each character, the unit of its images alone, or -1. */
  readonly #own: number[];
  /** For each unit of several characters, the own units of its characters; none for the others. */
  readonly #capOf: number[][];
  /** For each unit, the units of several characters whose cap it is. */
  readonly #capping: number[][];

  constructor(units: readonly BalanceUnit[], settings: BalanceSettings) {
    this.#units = units;
    this.#settings = settings;
    this.characters = [...new Set(units.flatMap((unit) => unit.characters))].sort();
    const index = new Map(this.characters.map((name, c) => [name, c]));
    this.#members = units.map((unit) => [...new Set(unit.characters)].map((name) => index.get(name)!));
    this.unitsOf = this.characters.map(() => []);
    this.#members.forEach((members, u) => members.forEach((c) => this.unitsOf[c]!.push(u)));
    this.#own = this.characters.map((_, c) => this.unitsOf[c]!.find((u) => this.#members[u]!.length === 1) ?? -1);
    this.#capOf = this.#members.map((members) => (members.length < 2 ? [] : members.map((c) => this.#own[c]!).filter((u) => u >= 0)));
    this.#capping = units.map(() => []);
    this.#capOf.forEach((owns, group) => owns.forEach((own) => this.#capping[own]!.push(group)));
  }

  /** Whether the unit of several characters is within its cap: at most the repeats of one of its characters' own units. */
  #withinCap(repeats: readonly number[], group: number): boolean {
    const owns = this.#capOf[group]!;
    return owns.length === 0 || repeats[group]! <= Math.max(...owns.map((own) => repeats[own]!));
  }

  /** Whether every unit a move touches, or whose cap it moves, is within its cap afterwards. */
  #allowed(repeats: readonly number[], move: Move): boolean {
    for (const [unit] of move) {
      if (!this.#withinCap(repeats, unit)) return false;
      for (const group of this.#capping[unit]!) if (!this.#withinCap(repeats, group)) return false;
    }
    return true;
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
    this.#capOf.forEach((owns, group) => {
      if (owns.length > 0) repeats[group] = Math.min(repeats[group]!, Math.max(...owns.map((own) => repeats[own]!)));
    });
    return repeats;
  }

  /**
   * Every choice of repeats, when there are at most EXHAUSTIVE of them: the best (fewest steps among
   * those that meet everything), so a small cast gets the band whenever whole repeats can give it.
   * null for a larger cast.
   */
  exhaustive(): number[] | null {
    const movable = this.#members.map((_, u) => u).filter((u) => this.#members[u]!.length > 0);
    if (movable.length * Math.log(this.#settings.maxRepeats) > Math.log(EXHAUSTIVE)) return null;
    const repeats = this.#units.map(() => 1);
    const state = this.steps(repeats);
    let best: { repeats: number[]; score: Score } | null = null;
    const visit = (i: number): void => {
      if (i === movable.length) {
        if (!this.#capOf.every((_, group) => this.#withinCap(repeats, group))) return;
        const score = this.#scoreOf(state);
        if (best === null || better(score, best.score)) best = { repeats: [...repeats], score };
        return;
      }
      const unit = movable[i]!;
      for (let value = 1; value <= this.#settings.maxRepeats; value++) {
        if (value > 1) this.#apply(state, [[unit, 1]], 1);
        repeats[unit] = value;
        visit(i + 1);
      }
      this.#apply(state, [[unit, 1 - this.#settings.maxRepeats]], 1);
      repeats[unit] = 1;
    };
    visit(0);
    // All at 1 is always within the caps, so there is a best.
    return best!.repeats;
  }

  /**
   * Steepest descent while the score falls, each move one unit's repeats up or down by 1, 2, 4 ...;
   * a unit with several characters may also move with its characters' own units the other way, by
   * as many steps as it gains or loses them (more images together, fewer alone). Steps are kept per
   * character and updated by each move, so a move costs one pass over the characters.
   */
  improve(start: number[]): number[] {
    const repeats = [...start];
    const state = this.steps(repeats);
    const max = this.#settings.maxRepeats;
    const movable = this.#members.map((_, u) => u).filter((u) => this.#members[u]!.length > 0);
    const jumps: number[] = [];
    for (let by = 1; by < max; by *= 2) jumps.push(by, -by);
    const movesOf = (unit: number, by: number): Move[] => {
      if (repeats[unit]! + by < 1 || repeats[unit]! + by > max) return [];
      const single: Move = [[unit, by]];
      if (this.#members[unit]!.length < 2) return [single];
      const steps = this.#units[unit]!.images * by;
      const together: Move = [[unit, by]];
      for (const c of this.#members[unit]!) {
        const own = this.#own[c]!;
        if (own < 0) continue;
        const value = Math.min(max, Math.max(1, repeats[own]! - Math.round(steps / this.#units[own]!.images)));
        if (value !== repeats[own]) together.push([own, value - repeats[own]!]);
      }
      return together.length > 1 ? [single, together] : [single];
    };
    let score = this.#scoreOf(state);
    const bestMove = (units: number[]) => {
      let best: { move: Move; score: Score } | null = null;
      for (const unit of units) {
        for (const by of jumps) {
          for (const move of movesOf(unit, by)) {
            for (const [u, d] of move) repeats[u]! += d;
            const allowed = this.#allowed(repeats, move);
            for (const [u, d] of move) repeats[u]! -= d;
            if (!allowed) continue;
            const candidate = this.#moved(state, move, () => this.#scoreOf(state));
            this.work += state.perCharacter.length;
            if (better(candidate, best?.score ?? score)) best = { move, score: candidate };
          }
        }
      }
      return best;
    };
    for (let moves = 0; moves < MOVES && score.violation > 0; moves++) {
      // The units of the characters outside the band first (all, with scenery over its cap); any unit when none of those helps.
      const outside = this.#outside(state);
      const first = outside === null ? movable : movable.filter((u) => this.#members[u]!.some((c) => outside.has(c)));
      const found = bestMove(first) ?? (first.length < movable.length ? bestMove(movable) : null);
      if (found === null) break;
      this.#apply(state, found.move, 1);
      for (const [unit, by] of found.move) repeats[unit]! += by;
      score = found.score;
    }
    return repeats;
  }

  /** The characters outside the band, or null when scenery is over its cap. */
  #outside(state: Steps): Set<number> | null {
    if (state.total > 0 && state.scenery / state.total > this.#settings.sceneryShare + EPSILON) return null;
    const mean = state.perCharacter.reduce((a, b) => a + b, 0) / state.perCharacter.length;
    const [low, high] = this.#settings.band;
    const outside = new Set<number>();
    state.perCharacter.forEach((steps, c) => {
      if (steps / mean < low - EPSILON || steps / mean > high + EPSILON) outside.add(c);
    });
    return outside;
  }

  /** Runs `look` with the move made, then undoes it. */
  #moved<T>(state: Steps, move: Move, look: () => T): T {
    this.#apply(state, move, 1);
    try {
      return look();
    } finally {
      this.#apply(state, move, -1);
    }
  }

  #apply(state: Steps, move: Move, sign: 1 | -1): void {
    for (const [unit, by] of move) {
      const steps = this.#units[unit]!.images * by * sign;
      state.total += steps;
      for (const c of this.#members[unit]!) state.perCharacter[c]! += steps;
    }
  }

  steps(repeats: readonly number[]): Steps {
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
    return this.#scoreOf(this.steps(repeats));
  }

  #scoreOf({ perCharacter, total, scenery }: Steps): Score {
    let sum = 0;
    for (const steps of perCharacter) sum += steps;
    const mean = sum / perCharacter.length;
    const [low, high] = this.#settings.band;
    let violation = 0;
    for (const steps of perCharacter) violation += Math.max(0, low - steps / mean - EPSILON, steps / mean - high - EPSILON);
    if (total > 0) violation += Math.max(0, scenery / total - this.#settings.sceneryShare - EPSILON);
    return { violation, totalSteps: total };
  }
}
