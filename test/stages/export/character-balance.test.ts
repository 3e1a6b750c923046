/** Repeats per character subset: the band and the scenery cap, checked against an exhaustive search on random casts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CelforgeError } from '../../../src/errors.ts';
import { balanceRepeats, type BalanceSettings, type BalanceUnit } from '../../../src/stages/export/character-balance.ts';
import { mulberry32 } from '../../fixtures/anime-clip.ts';

/** Steps per character and scenery share, worked out here from the units and repeats alone. */
function figures(units: BalanceUnit[], repeats: number[]) {
  const steps = new Map<string, number>();
  let total = 0;
  let scenery = 0;
  units.forEach((unit, u) => {
    const s = unit.images * repeats[u]!;
    total += s;
    if (unit.characters.length === 0) scenery += s;
    for (const name of unit.characters) steps.set(name, (steps.get(name) ?? 0) + s);
  });
  const mean = [...steps.values()].reduce((a, b) => a + b, 0) / steps.size;
  return { steps, mean, total, sceneryShare: total === 0 ? 0 : scenery / total };
}

/** A unit of several characters is repeated at most as much as one of its characters' own units, where they have one. */
function withinCaps(units: BalanceUnit[], repeats: number[]): boolean {
  return units.every((unit, u) => {
    if (unit.characters.length < 2) return true;
    const owns = units.map((other, v) => v).filter((v) => units[v]!.characters.length === 1 && unit.characters.includes(units[v]!.characters[0]!));
    return owns.length === 0 || repeats[u]! <= Math.max(...owns.map((v) => repeats[v]!));
  });
}

function meets(units: BalanceUnit[], repeats: number[], settings: BalanceSettings): boolean {
  const { steps, mean, sceneryShare } = figures(units, repeats);
  const [low, high] = settings.band;
  return [...steps.values()].every((s) => s >= low * mean - 1e-9 && s <= high * mean + 1e-9) && sceneryShare <= settings.sceneryShare + 1e-9;
}

/** Whether any repeats from 1 to maxRepeats meet the band and the cap (scenery at 1 repeat), by trying them all. */
function achievable(units: BalanceUnit[], settings: BalanceSettings): boolean {
  const free = units.map((unit, u) => u).filter((u) => units[u]!.characters.length > 0);
  const repeats = units.map(() => 1);
  const search = (i: number): boolean => {
    if (i === free.length) return withinCaps(units, repeats) && meets(units, repeats, settings);
    for (let r = 1; r <= settings.maxRepeats; r++) {
      repeats[free[i]!] = r;
      if (search(i + 1)) return true;
    }
    repeats[free[i]!] = 1;
    return false;
  };
  return search(0);
}

test('a skewed cast: every character within the band, scenery under its cap, repeats whole and at least 1', () => {
  const units: BalanceUnit[] = [
    { characters: ['a'], images: 300 }, { characters: ['b'], images: 40 }, { characters: ['c'], images: 5 },
    { characters: ['a', 'b'], images: 2 }, { characters: [], images: 100 },
  ];
  const settings: BalanceSettings = { band: [0.9, 1.1], sceneryShare: 0.1, maxRepeats: 100 };
  const balance = balanceRepeats(units, settings);
  assert.deepEqual(balance.problems, []);
  assert.ok(balance.repeats.every((r) => Number.isSafeInteger(r) && r >= 1 && r <= 100), String(balance.repeats));
  assert.equal(balance.repeats[0], 1, 'the most frequent character is not repeated');
  assert.equal(balance.repeats[4], 1, 'scenery is not repeated');
  const { steps, mean, total, sceneryShare } = figures(units, balance.repeats);
  assert.deepEqual(balance.characterSteps, steps);
  assert.equal(balance.meanSteps, mean);
  assert.equal(balance.totalSteps, total);
  for (const s of steps.values()) assert.ok(s >= 0.9 * mean && s <= 1.1 * mean, `${[...steps]} mean ${mean}`);
  assert.ok(sceneryShare <= 0.1);
  assert.equal(balance.sceneryShare, sceneryShare);

  // With a cap of 7%, the characters are repeated more instead; at 5%, C's 5 images would need more than 100 repeats.
  const capped = balanceRepeats(units, { ...settings, sceneryShare: 0.07 });
  assert.deepEqual(capped.problems, []);
  assert.ok(figures(units, capped.repeats).sceneryShare <= 0.07);
  assert.ok(withinCaps(units, capped.repeats), String(capped.repeats));
  assert.ok(figures(units, capped.repeats).total > figures(units, balance.repeats).total);
  const tooLow = balanceRepeats(units, { ...settings, sceneryShare: 0.05 });
  assert.equal(tooLow.sceneryWithinCap, false);
  assert.equal(tooLow.repeats[2], 100);
});

test('what cannot be met is said, with the characters and how far off they are', () => {
  // D is only ever beside A, which has 300 images of its own: at most 100 repeats cannot close that gap in a 10% band.
  // The fewest steps would repeat the 6 images of A and B together 9 times, with A's and B's own at 1:
  // a group is held to its characters' own repeats instead.
  const sharedUnits: BalanceUnit[] = [{ characters: ['a'], images: 5 }, { characters: ['b'], images: 1 }, { characters: ['a', 'b'], images: 6 }, { characters: [], images: 20 }];
  const sharedSettings: BalanceSettings = { band: [0.9, 1.1], sceneryShare: 0.25, maxRepeats: 12 };
  assert.ok(meets(sharedUnits, [1, 1, 9, 1], sharedSettings) && !withinCaps(sharedUnits, [1, 1, 9, 1]));
  const shared = balanceRepeats(sharedUnits, sharedSettings);
  assert.deepEqual(shared.problems, []);
  assert.ok(withinCaps(sharedUnits, shared.repeats), String(shared.repeats));

  const stuck = balanceRepeats([{ characters: ['a'], images: 300 }, { characters: ['a', 'd'], images: 2 }], { band: [0.9, 1.1], sceneryShare: 0.1, maxRepeats: 100 });
  assert.deepEqual(stuck.outsideBand, ['a', 'd']);
  assert.equal(stuck.problems.length, 1);
  assert.match(stuck.problems[0]!, /^a \(1\.\d+ of the mean\), d \(0\.\d+ of the mean\): outside the band \[0\.9, 1\.1\].*that do better\. Widen export\.balance\.band/);

  // An exact band with 3 and 2 images needs 2 and 3 repeats: refused at maxRepeats 2, met at 3.
  const exact = (maxRepeats: number) => balanceRepeats([{ characters: ['x'], images: 3 }, { characters: ['y'], images: 2 }], { band: [1, 1], sceneryShare: 1, maxRepeats });
  assert.deepEqual(exact(2).outsideBand, ['x', 'y']);
  assert.deepEqual(exact(3).repeats, [2, 3]);
  assert.deepEqual(exact(3).problems, []);

  const scenery = balanceRepeats([{ characters: ['a'], images: 10 }, { characters: [], images: 90 }], { band: [0.8, 1.25], sceneryShare: 0.1, maxRepeats: 50 });
  assert.equal(scenery.sceneryWithinCap, false);
  assert.match(scenery.problems.join('\n'), /scenery is 15\.3% of the steps, above export\.balance\.sceneryShare \(10\.0%\), even with the characters at up to 50 repeats/);
  assert.equal(scenery.repeats[0], 50);

  const none = balanceRepeats([{ characters: [], images: 4 }], { band: [0.8, 1.25], sceneryShare: 0.2, maxRepeats: 5 });
  assert.deepEqual(none.repeats, [1]);
  assert.match(none.problems.join('\n'), /no image has a character/);
});

test('random casts: the band is met whenever whole repeats can meet it, and otherwise the result says so', () => {
  const next = mulberry32(16);
  let met = 0;
  let unmet = 0;
  for (let trial = 0; trial < 300; trial++) {
    const names = ['a', 'b', 'c', 'd'].slice(0, 1 + Math.floor(next() * 3));
    const units: BalanceUnit[] = names.map((name) => ({ characters: [name], images: 1 + Math.floor(next() ** 2 * 80) }));
    if (names.length > 1 && next() < 0.5) units.push({ characters: names.slice(0, 2), images: 1 + Math.floor(next() * 6) });
    if (names.length > 2 && next() < 0.3) units.push({ characters: names.slice(1, 3), images: 1 + Math.floor(next() * 10) });
    if (next() < 0.5) units.push({ characters: [], images: 1 + Math.floor(next() * 60) });
    const low = 0.6 + next() * 0.4;
    const settings: BalanceSettings = { band: [low, 1 + next() * 0.5], sceneryShare: 0.05 + next() * 0.4, maxRepeats: 1 + Math.floor(next() * 7) };
    const balance = balanceRepeats(units, settings);
    const context = JSON.stringify({ units, settings, repeats: balance.repeats });
    assert.ok(balance.repeats.every((r, u) => Number.isSafeInteger(r) && r >= 1 && r <= settings.maxRepeats && (units[u]!.characters.length > 0 || r === 1)), context);
    assert.ok(withinCaps(units, balance.repeats), `a group repeated more than its characters: ${context}`);
    const reallyMet = meets(units, balance.repeats, settings);
    assert.equal(balance.problems.length === 0, reallyMet, context);
    if (achievable(units, settings)) {
      assert.ok(reallyMet, `achievable but not met: ${context}`);
      met += 1;
    } else {
      assert.ok(balance.problems.length > 0, context);
      unmet += 1;
    }
  }
  // Both kinds of cast came up.
  assert.ok(met > 50 && unmet > 20, `${met} met, ${unmet} not achievable`);
});

test('large random casts, balanced by construction (too many choices to try them all): the search finds a balance', () => {
  const next = mulberry32(1616);
  for (let trial = 0; trial < 25; trial++) {
    // Each character gets as many images as make about 840 steps at a repeat count drawn for it.
    const count = 5 + Math.floor(next() * 26);
    const names = Array.from({ length: count }, (_, i) => `c${i}`);
    const units: BalanceUnit[] = names.map((name) => ({ characters: [name], images: Math.round(840 / (1 + Math.floor(next() * 20))) }));
    for (let g = 0; g < 5; g++) {
      const [a, b] = [Math.floor(next() * count), Math.floor(next() * count)];
      if (a !== b) units.push({ characters: [names[a]!, names[b]!], images: 1 + Math.floor(next() * 2) });
    }
    units.push({ characters: [], images: Math.round(count * 840 * 0.05) });
    const settings: BalanceSettings = { band: [0.95, 1.05], sceneryShare: 0.1, maxRepeats: 20 };
    const balance = balanceRepeats(units, settings);
    assert.deepEqual(balance.problems, [], JSON.stringify({ units, repeats: balance.repeats }));
    assert.ok(meets(units, balance.repeats, settings));
    assert.ok(withinCaps(units, balance.repeats));
  }
});

test('settings Kohya or the band cannot work with are refused', () => {
  const refused = (settings: BalanceSettings, pattern: RegExp) => assert.throws(() => balanceRepeats([{ characters: ['a'], images: 1 }], settings),
    (error: unknown) => error instanceof CelforgeError && error.code === 'CONFIG_INVALID' && pattern.test(error.message));
  refused({ band: [1.1, 1.2], sceneryShare: 0.1, maxRepeats: 3 }, /band must be \[min, max\] with 0 < min <= 1 <= max/);
  refused({ band: [0, 1.2], sceneryShare: 0.1, maxRepeats: 3 }, /band/);
  refused({ band: [0.8, 1.2], sceneryShare: 1.5, maxRepeats: 3 }, /sceneryShare/);
  refused({ band: [0.8, 1.2], sceneryShare: 0.1, maxRepeats: 0 }, /maxRepeats/);
});
