/**
 * From several taggers' probabilities to one picture's tags: each tag's
 * probability averaged over the taggers that know it; thresholds per
 * category (or MCut, the largest gap between sorted probabilities, as used by
 * SmilingWolf's wd-tagger demo); the single most likely rating; copyright
 * tags and the blacklist removed.
 */
import type { TagCategory, TagLabel } from './wd14.ts';

export interface TaggerOutput {
  labels: TagLabel[];
  probabilities: Float32Array;
}

export interface EnsembleOptions {
  general: number;
  character: number;
  mcut: boolean;
  blacklist: readonly string[];
}

export interface ScoredTag {
  /** Catalog form: plain for general tags, `character:` and `rating:` namespaced. */
  tag: string;
  probability: number;
  category: TagCategory;
}

export function averageTaggers(outputs: TaggerOutput[]): Map<string, { probability: number; category: TagCategory }> {
  const sums = new Map<string, { total: number; count: number; category: TagCategory }>();
  for (const { labels, probabilities } of outputs) {
    labels.forEach((label, index) => {
      const entry = sums.get(label.name) ?? { total: 0, count: 0, category: label.category };
      entry.total += probabilities[index]!;
      entry.count += 1;
      sums.set(label.name, entry);
    });
  }
  return new Map([...sums].map(([name, { total, count, category }]) => [name, { probability: total / count, category }]));
}

export function selectTags(averaged: Map<string, { probability: number; category: TagCategory }>, options: EnsembleOptions): ScoredTag[] {
  const blacklist = new Set(options.blacklist.map((tag) => tag.toLowerCase().replace(/\s+/g, '_')));
  const inCategory = (category: TagCategory) =>
    [...averaged].filter(([name, entry]) => entry.category === category && !blacklist.has(name)).map(([name, entry]) => ({ name, ...entry }));
  const chosen: ScoredTag[] = [];
  for (const category of ['general', 'character'] as const) {
    const candidates = inCategory(category);
    const threshold = options.mcut ? Math.max(mcutThreshold(candidates.map((c) => c.probability)), category === 'character' ? 0.15 : 0) : options[category];
    for (const candidate of candidates) {
      if (candidate.probability >= threshold) {
        chosen.push({ tag: category === 'character' ? `character:${candidate.name}` : candidate.name, probability: candidate.probability, category });
      }
    }
  }
  const rating = inCategory('rating').sort((a, b) => b.probability - a.probability)[0];
  if (rating) chosen.push({ tag: `rating:${rating.name}`, probability: rating.probability, category: 'rating' });
  return chosen.sort((a, b) => b.probability - a.probability);
}

/** Maximum Cut Thresholding: the midpoint of the largest drop between consecutive sorted probabilities. */
export function mcutThreshold(probabilities: number[]): number {
  const sorted = [...probabilities].sort((a, b) => b - a);
  if (sorted.length < 2) return 0;
  let best = 0;
  let at = 0;
  for (let i = 0; i < sorted.length - 1; i += 1) {
    const gap = sorted[i]! - sorted[i + 1]!;
    if (gap > best) {
      best = gap;
      at = i;
    }
  }
  return (sorted[at]! + sorted[at + 1]!) / 2;
}
