/**
 * Clustering of CCIP difference matrices as imgutils' `ccip_clustering`
 * (deepghs/imgutils@525c042e imgutils/metrics/ccip.py:419-520): scikit-learn's
 * DBSCAN or OPTICS on the pairwise differences, labels -1 for noise, and
 * the default parameters per method (`ccip_default_clustering_params`,
 * ccip.py:410-413): DBSCAN eps = the model's threshold with min_samples 2,
 * OPTICS max_eps 0.5 with min_samples 5 (and scikit-learn's defaults: xi
 * 0.05, predecessor correction, min_cluster_size = min_samples).
 *
 * imgutils gives scikit-learn a callable metric reading the matrix
 * (ccip.py:509-516), the same as `metric='precomputed'`; the algorithms
 * are in density-clustering.ts.
 *
 * `clusterIncrementally` adds new crops to clusters that exist (see there);
 * `adjustedRandIndex` scores a clustering against the truth.
 */
import type { CcipModel } from '../../inference/ccip.ts';
import { dbscan, kthSmallest, optics, OPTICS_XI } from './density-clustering.ts';

export type ClusterMethod = 'dbscan' | 'optics';

export interface ClusterParams {
  method: ClusterMethod;
  /** DBSCAN's eps; OPTICS' max_eps. */
  eps: number;
  minSamples: number;
}

/** ccip.py:410-413. */
export function defaultClusterParams(method: ClusterMethod, threshold: number): ClusterParams {
  return method === 'dbscan' ? { method, eps: threshold, minSamples: 2 } : { method, eps: 0.5, minSamples: 5 };
}

/** Labels for `n` points whose row-major n x n differences are `differences`. */
export function clusterDifferences(differences: Float32Array, n: number, params: ClusterParams): Int32Array {
  if (differences.length !== n * n) throw new RangeError(`a difference matrix for ${n} points has ${n * n} values, not ${differences.length}`);
  return params.method === 'dbscan' ? dbscan(differences, n, params.eps, params.minSamples) : optics(differences, n, params.eps, params.minSamples);
}

export interface ClusteredFeatures {
  features: readonly Float32Array[];
  /** A cluster id (>= 0) per feature, or -1 for noise. */
  labels: readonly number[];
}

export interface Increment {
  /** Per added feature: an existing cluster id, a new one (above every existing id), or -1. */
  added: Int32Array;
  /** Existing noise that formed new clusters with added features or among itself: its index in `existing` -> the new id. */
  formerNoise: Map<number, number>;
}

type Differences = Pick<CcipModel, 'differences' | 'crossDifferences'>;

export interface IncrementOptions {
  /** Rows per block of differences (new crops against members, a cluster against itself). */
  blockRows?: number;
  /** The most crops clustered from scratch at once (their square of differences: 4 x this^2 bytes). */
  maxSquare?: number;
}

/** Clusters' members side by side, cluster after cluster, so that one block of differences serves every cluster. */
interface Reach {
  members: Float32Array[];
  clusters: { label: number; from: number; to: number; cores: number[]; limit: number }[];
}

/**
 * New crops added to clusters that exist, without the whole matrix:
 * - a new crop joins the existing cluster it is reachable from, by the rule
 *   the method clusters with, judged against each cluster's own members
 *   (their core distance = min_samples-th nearest difference within the
 *   cluster, itself included):
 *   DBSCAN: a member that is core (core distance <= eps) is at <= eps;
 *   OPTICS: its reachability from the cluster, min over members of
 *   max(core distance, difference) (differences <= max_eps), is no steep
 *   rise over the cluster's densest-to-sparsest core distances, i.e. at
 *   most the largest member core distance / (1 - xi);
 *   where several clusters take it, the one it is nearest to by that measure;
 * - the crops no cluster takes, with the existing noise, are clustered
 *   among themselves (the same method and parameters) into new clusters.
 *   More than `maxSquare` of them go in windows of half that: each window is
 *   first offered to the clusters the earlier windows made, then clustered
 *   with as much of the noise so far as fits (the most recent first; older
 *   noise beyond that stays noise).
 * Memory: at most the maxSquare square, one block of new rows against every
 * clustered member, and one block of a cluster's rows against the cluster.
 */
export async function clusterIncrementally(
  model: Differences, existing: ClusteredFeatures, added: readonly Float32Array[], params: ClusterParams, options: IncrementOptions = {},
): Promise<Increment> {
  const blockRows = Math.max(1, options.blockRows ?? 1024);
  const maxSquare = Math.max(2, options.maxSquare ?? 8192);
  const chosen = await assign(model, await reachOf(model, existing.features, existing.labels, params, blockRows), added, params, blockRows);
  const result: Increment = { added: chosen, formerNoise: new Map() };

  type Item = { feature: Float32Array; noise: number; added: number };
  let noise: Item[] = [];
  existing.labels.forEach((label, index) => label < 0 && noise.push({ feature: existing.features[index]!, noise: index, added: -1 }));
  const unassigned: Item[] = [];
  chosen.forEach((label, index) => label === -1 && unassigned.push({ feature: added[index]!, noise: -1, added: index }));
  let next = existing.labels.reduce((a, b) => Math.max(a, b), -1) + 1;
  const made: Reach = { members: [], clusters: [] };
  const window = unassigned.length + noise.length <= maxSquare ? Math.max(1, unassigned.length) : Math.floor(maxSquare / 2);
  for (let start = 0; start < unassigned.length || (start === 0 && noise.length > 0); start += window) {
    let batch = unassigned.slice(start, start + window);
    if (made.clusters.length) {
      const again = await assign(model, made, batch.map((item) => item.feature), params, blockRows);
      batch.forEach((item, index) => (chosen[item.added] = again[index]!));
      batch = batch.filter((_, index) => again[index] === -1);
    }
    const room = maxSquare - batch.length;
    const items = [...noise.slice(Math.max(0, noise.length - room)), ...batch];
    noise = noise.slice(0, Math.max(0, noise.length - room));
    if (items.length === 0) continue;
    const labels = clusterDifferences(await model.differences(items.map((item) => item.feature)), items.length, params);
    const ids = labels.map((label) => (label < 0 ? -1 : next + label));
    items.forEach((item, index) => {
      const id = ids[index]!;
      if (id < 0) noise.push(item);
      else if (item.added >= 0) chosen[item.added] = id;
      else result.formerNoise.set(item.noise, id);
    });
    next = ids.reduce((a, b) => Math.max(a, b), next - 1) + 1;
    if (start + window < unassigned.length) {
      const grown = await reachOf(model, items.map((item) => item.feature), [...ids], params, blockRows);
      for (const cluster of grown.clusters) made.clusters.push({ ...cluster, from: cluster.from + made.members.length, to: cluster.to + made.members.length });
      made.members.push(...grown.members);
    }
  }
  return result;
}

async function reachOf(model: Differences, features: readonly Float32Array[], labels: readonly number[], params: ClusterParams, blockRows: number): Promise<Reach> {
  const byCluster = new Map<number, number[]>();
  labels.forEach((label, index) => label >= 0 && (byCluster.get(label) ?? byCluster.set(label, []).get(label)!).push(index));
  const reach: Reach = { members: [], clusters: [] };
  for (const [label, indices] of byCluster) {
    const members = indices.map((index) => features[index]!);
    const cores = await coreDistances(model, members, params, blockRows);
    const finite = cores.filter((core) => core !== Infinity);
    if (finite.length === 0) continue;
    const limit = params.method === 'dbscan' ? params.eps : Math.min(params.eps, finite.reduce((a, b) => Math.max(a, b)) / (1 - OPTICS_XI));
    reach.clusters.push({ label, from: reach.members.length, to: reach.members.length + members.length, cores, limit });
    reach.members.push(...members);
  }
  return reach;
}

/** The cluster each added feature joins by the rule above, or -1. */
async function assign(model: Differences, reach: Reach, added: readonly Float32Array[], params: ClusterParams, blockRows: number): Promise<Int32Array> {
  const chosen = new Int32Array(added.length).fill(-1);
  const { members, clusters } = reach;
  for (let start = 0; start < added.length && members.length > 0; start += blockRows) {
    const rows = added.slice(start, start + blockRows);
    const cross = await model.crossDifferences(rows, members);
    for (let r = 0; r < rows.length; r += 1) {
      let best = Infinity;
      for (const cluster of clusters) {
        let score = Infinity;
        for (let m = cluster.from; m < cluster.to; m += 1) {
          const core = cluster.cores[m - cluster.from]!;
          const distance = cross[r * members.length + m]!;
          if (core === Infinity || !(distance <= params.eps)) continue;
          const value = params.method === 'dbscan' ? distance : Math.max(core, distance);
          if (value < score) score = value;
        }
        if (score <= cluster.limit && score < best) {
          best = score;
          chosen[start + r] = cluster.label;
        }
      }
    }
  }
  return chosen;
}

/** Each feature's min_samples-th smallest difference to the others (itself included), inf above eps or when there are too few. */
async function coreDistances(model: Differences, features: readonly Float32Array[], params: ClusterParams, blockRows: number): Promise<number[]> {
  if (features.length < params.minSamples) return features.map(() => Infinity);
  if (features.length <= blockRows) {
    const square = await model.differences(features);
    return features.map((_, r) => {
      const core = kthSmallest(square.subarray(r * features.length, (r + 1) * features.length), params.minSamples);
      return core > params.eps ? Infinity : core;
    });
  }
  const cores: number[] = [];
  for (let start = 0; start < features.length; start += blockRows) {
    const rows = features.slice(start, start + blockRows);
    const block = await model.crossDifferences(rows, features);
    for (let r = 0; r < rows.length; r += 1) {
      const core = kthSmallest(block.subarray(r * features.length, (r + 1) * features.length), params.minSamples);
      cores.push(core > params.eps ? Infinity : core);
    }
  }
  return cores;
}

/**
 * The adjusted Rand index of two labellings (scikit-learn's
 * `adjusted_rand_score` from the pair confusion matrix,
 * sklearn/metrics/cluster/_supervised.py): 1 for the same partition up to
 * renaming; -1 is a label like any other.
 */
export function adjustedRandIndex(truth: ArrayLike<number>, predicted: ArrayLike<number>): number {
  const n = truth.length;
  if (predicted.length !== n) throw new RangeError(`labellings of ${n} and ${predicted.length} points`);
  const cells = new Map<string, number>();
  const rows = new Map<number, number>();
  const columns = new Map<number, number>();
  for (let i = 0; i < n; i += 1) {
    const key = `${truth[i]}:${predicted[i]}`;
    cells.set(key, (cells.get(key) ?? 0) + 1);
    rows.set(truth[i]!, (rows.get(truth[i]!) ?? 0) + 1);
    columns.set(predicted[i]!, (columns.get(predicted[i]!) ?? 0) + 1);
  }
  const squares = (counts: Iterable<number>) => {
    let total = 0;
    for (const count of counts) total += count * count;
    return total;
  };
  const sumSquares = squares(cells.values());
  const tp = sumSquares - n;
  const fp = squares(columns.values()) - sumSquares;
  const fn = squares(rows.values()) - sumSquares;
  const tn = n * n - fp - fn - sumSquares;
  if (fn === 0 && fp === 0) return 1;
  return (2 * (tp * tn - fn * fp)) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn));
}
