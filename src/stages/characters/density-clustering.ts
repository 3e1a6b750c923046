/**
 * scikit-learn's DBSCAN and OPTICS (cluster_method 'xi') on a row-major
 * n x n matrix of differences, as `metric='precomputed'`: a point's
 * neighbourhood is every point at difference <= eps, itself included
 * (sklearn/neighbors/_base.py `_radius_neighbors_reduce_func`,
 * `np.where(d <= radius)`), and the diagonal is whatever the matrix says.
 * Labels are -1 for noise. Where scikit-learn would raise because there are
 * fewer points than min_samples, every point here is noise.
 */

/** scikit-learn OPTICS' default xi, which imgutils leaves as it is (sklearn/cluster/_optics.py `OPTICS.__init__`). */
export const OPTICS_XI = 0.05;

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
export function kthSmallest(row: Float32Array, k: number): number {
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
