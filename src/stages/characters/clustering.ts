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
 * (ccip.py:509-516); that is the same as `metric='precomputed'`: a point's
 * neighbourhood is every point at difference <= eps, itself included
 * (sklearn/neighbors/_base.py `_radius_neighbors_reduce_func`,
 * `np.where(d <= radius)`), and the diagonal is whatever the model says.
 * Where scikit-learn would raise because there are fewer points than
 * min_samples, every point here is noise.
 *
 * `clusterIncrementally` adds new crops to clusters that exist (see there);
 * `adjustedRandIndex` scores a clustering against the truth.
 */
import type { CcipModel } from './ccip.ts';

export type ClusterMethod = 'dbscan' | 'optics';

export interface ClusterParams {
  method: ClusterMethod;
  /** DBSCAN's eps; OPTICS' max_eps. */
  eps: number;
  minSamples: number;
}

/** scikit-learn OPTICS' defaults that imgutils leaves as they are (sklearn/cluster/_optics.py `OPTICS.__init__`). */
export const OPTICS_XI = 0.05;

/** ccip.py:410-413. */
export function defaultClusterParams(method: ClusterMethod, threshold: number): ClusterParams {
  return method === 'dbscan' ? { method, eps: threshold, minSamples: 2 } : { method, eps: 0.5, minSamples: 5 };
}

/** Labels for `n` points whose row-major n x n differences are `differences`. */
export function clusterDifferences(differences: Float32Array, n: number, params: ClusterParams): Int32Array {
  if (differences.length !== n * n) throw new RangeError(`a difference matrix for ${n} points has ${n * n} values, not ${differences.length}`);
  return params.method === 'dbscan' ? dbscan(differences, n, params.eps, params.minSamples) : optics(differences, n, params.eps, params.minSamples);
}

/**
 * scikit-learn's DBSCAN (sklearn/cluster/_dbscan.py `DBSCAN.fit`, and
 * `dbscan_inner` in _dbscan_inner.pyx): core points have at least
 * min_samples neighbours at <= eps, themselves counted; clusters grow from
 * each unlabelled core point in index order, and a border point keeps the
 * first cluster that reaches it.
 */
export function dbscan(d: Float32Array, n: number, eps: number, minSamples: number): Int32Array {
  const labels = new Int32Array(n).fill(-1);
  const core = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) {
    let count = 0;
    const row = i * n;
    for (let j = 0; j < n; j += 1) if (d[row + j]! <= eps) count += 1;
    core[i] = count >= minSamples ? 1 : 0;
  }
  let label = 0;
  const stack: number[] = [];
  for (let seed = 0; seed < n; seed += 1) {
    if (labels[seed] !== -1 || !core[seed]) continue;
    let i = seed;
    for (;;) {
      if (labels[i] === -1) {
        labels[i] = label;
        if (core[i]) {
          const row = i * n;
          for (let j = 0; j < n; j += 1) if (d[row + j]! <= eps && labels[j] === -1) stack.push(j);
        }
      }
      if (stack.length === 0) break;
      i = stack.pop()!;
    }
    label += 1;
  }
  return labels;
}

/**
 * numpy's `np.around(x, decimals=15)` (multiply, round half to even, divide),
 * which scikit-learn applies to core and reachability distances
 * (sklearn/cluster/_optics.py `compute_optics_graph`, `_set_reach_dist`).
 */
function around15(x: number): number {
  if (!Number.isFinite(x)) return x;
  const scaled = x * 1e15;
  let rounded = Math.round(scaled);
  if (rounded - scaled === 0.5 && rounded % 2 !== 0) rounded -= 1;
  return rounded / 1e15;
}

/** The k-th smallest value of `row` (k from 1), by a bounded insertion list (k is small). */
function kthSmallest(row: Float32Array, k: number): number {
  const best = new Float64Array(k).fill(Infinity);
  for (let j = 0; j < row.length; j += 1) {
    const value = row[j]!;
    if (value >= best[k - 1]!) continue;
    let at = k - 1;
    while (at > 0 && best[at - 1]! > value) {
      best[at] = best[at - 1]!;
      at -= 1;
    }
    best[at] = value;
  }
  return best[k - 1]!;
}

export interface OpticsGraph {
  ordering: Int32Array;
  coreDistances: Float64Array;
  reachability: Float64Array;
  predecessor: Int32Array;
}

/**
 * scikit-learn's `compute_optics_graph` (sklearn/cluster/_optics.py): core
 * distance = distance to the min_samples-th nearest point, itself included
 * (`kneighbors(X, min_samples)[0][:, -1]`), inf above max_eps; the next
 * point is the unprocessed one of least reachability, the lowest index on
 * ties; a processed core point lowers its unprocessed neighbours' (<= max_eps)
 * reachability to max(distance, its core distance) when strictly less.
 */
export function opticsGraph(d: Float32Array, n: number, maxEps: number, minSamples: number): OpticsGraph {
  const coreDistances = new Float64Array(n);
  for (let i = 0; i < n; i += 1) {
    const core = kthSmallest(d.subarray(i * n, (i + 1) * n), minSamples);
    coreDistances[i] = around15(core > maxEps ? Infinity : core);
  }
  const reachability = new Float64Array(n).fill(Infinity);
  const predecessor = new Int32Array(n).fill(-1);
  const processed = new Uint8Array(n);
  const ordering = new Int32Array(n);
  for (let index = 0; index < n; index += 1) {
    let point = -1;
    let least = Infinity;
    for (let j = 0; j < n; j += 1) {
      if (processed[j]) continue;
      if (point === -1 || reachability[j]! < least) {
        point = j;
        least = reachability[j]!;
      }
    }
    processed[point] = 1;
    ordering[index] = point;
    const core = coreDistances[point]!;
    if (core === Infinity) continue;
    const row = point * n;
    for (let j = 0; j < n; j += 1) {
      if (processed[j]) continue;
      const distance = d[row + j]!;
      if (!(distance <= maxEps)) continue;
      const reach = around15(Math.max(distance, core));
      if (reach < reachability[j]!) {
        reachability[j] = reach;
        predecessor[j] = point;
      }
    }
  }
  return { ordering, coreDistances, reachability, predecessor };
}

/** OPTICS as `OPTICS(max_eps, min_samples)` with cluster_method 'xi' (scikit-learn's default). */
export function optics(d: Float32Array, n: number, maxEps: number, minSamples: number, xi = OPTICS_XI): Int32Array {
  if (n < minSamples || n === 0) return new Int32Array(n).fill(-1);
  const graph = opticsGraph(d, n, maxEps, minSamples);
  return clusterOpticsXi(graph, minSamples, minSamples, xi);
}

interface SteepDownArea {
  start: number;
  end: number;
  mib: number;
}

/**
 * `cluster_optics_xi` with predecessor correction (sklearn/cluster/_optics.py
 * `_xi_cluster`, `_extend_region`, `_update_filter_sdas`,
 * `_correct_predecessor` as fixed by scikit-learn PR #26459, and
 * `_extract_xi_labels`): steep down and up areas of the reachability plot
 * (an inf appended at its end), clusters between them, the smallest
 * clusters labelled first and a point keeping its first label.
 */
export function clusterOpticsXi(graph: OpticsGraph, minSamples: number, minClusterSize: number, xi: number): Int32Array {
  const n = graph.ordering.length;
  const plot = new Float64Array(n + 1);
  const predecessorPlot = new Int32Array(n);
  for (let i = 0; i < n; i += 1) {
    plot[i] = graph.reachability[graph.ordering[i]!]!;
    predecessorPlot[i] = graph.predecessor[graph.ordering[i]!]!;
  }
  plot[n] = Infinity;
  const complement = 1 - xi;
  const steepUp = new Uint8Array(n);
  const steepDown = new Uint8Array(n);
  const down = new Uint8Array(n);
  const up = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) {
    // NaN (inf/inf, 0/0) compares false everywhere, as numpy's under errstate(invalid='ignore').
    const ratio = plot[i]! / plot[i + 1]!;
    steepUp[i] = ratio <= complement ? 1 : 0;
    steepDown[i] = ratio >= 1 / complement ? 1 : 0;
    down[i] = ratio > 1 ? 1 : 0;
    up[i] = ratio < 1 ? 1 : 0;
  }
  const extend = (steep: Uint8Array, xward: Uint8Array, start: number): number => {
    let nonXward = 0;
    let end = start;
    for (let index = start; index < n; index += 1) {
      if (steep[index]) {
        nonXward = 0;
        end = index;
      } else if (!xward[index]) {
        nonXward += 1;
        if (nonXward > minSamples) break;
      } else {
        return end;
      }
    }
    return end;
  };
  const filter = (areas: SteepDownArea[], mib: number): SteepDownArea[] => {
    if (mib === Infinity) return [];
    const kept = areas.filter((area) => mib <= plot[area.start]! * complement);
    for (const area of kept) area.mib = Math.max(area.mib, mib);
    return kept;
  };
  const correct = (s: number, e: number): [number, number] | null => {
    while (s < e) {
      if (plot[s]! > plot[e]!) return [s, e];
      const p = predecessorPlot[e]!;
      for (let i = s; i < e; i += 1) if (p === graph.ordering[i]) return [s, e];
      e -= 1;
    }
    return null;
  };

  let areas: SteepDownArea[] = [];
  const clusters: [number, number][] = [];
  let index = 0;
  let mib = 0;
  for (let steepIndex = 0; steepIndex < n; steepIndex += 1) {
    if (!steepUp[steepIndex] && !steepDown[steepIndex]) continue;
    if (steepIndex < index) continue;
    for (let i = index; i <= steepIndex; i += 1) mib = Math.max(mib, plot[i]!);
    if (steepDown[steepIndex]) {
      areas = filter(areas, mib);
      const end = extend(steepDown, up, steepIndex);
      areas.push({ start: steepIndex, end, mib: 0 });
      index = end + 1;
      mib = plot[index]!;
    } else {
      areas = filter(areas, mib);
      const upStart = steepIndex;
      const upEnd = extend(steepUp, down, upStart);
      index = upEnd + 1;
      mib = plot[index]!;
      const found: [number, number][] = [];
      for (const area of areas) {
        let start = area.start;
        let end = upEnd;
        if (plot[end + 1]! * complement < area.mib) continue;
        const areaMax = plot[area.start]!;
        if (areaMax * complement >= plot[end + 1]!) {
          while (plot[start + 1]! > plot[end + 1]! && start < area.end) start += 1;
        } else if (plot[end + 1]! * complement >= areaMax) {
          while (plot[end - 1]! > areaMax && end > upStart) end -= 1;
        }
        const corrected = correct(start, end);
        if (!corrected) continue;
        [start, end] = corrected;
        if (end - start + 1 < minClusterSize) continue;
        if (start > area.end) continue;
        if (end < upStart) continue;
        found.push([start, end]);
      }
      found.reverse();
      clusters.push(...found);
    }
  }

  const byPosition = new Int32Array(n).fill(-1);
  let label = 0;
  for (const [start, end] of clusters) {
    let free = true;
    for (let i = start; i <= end && free; i += 1) if (byPosition[i] !== -1) free = false;
    if (!free) continue;
    byPosition.fill(label, start, end + 1);
    label += 1;
  }
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i += 1) labels[graph.ordering[i]!] = byPosition[i]!;
  return labels;
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
