/**
 * Clustering of CCIP differences as imgutils does it (DBSCAN and OPTICS on
 * the difference matrix, as scikit-learn: density-clustering.ts), on
 * generated identities whose truth is known, with the differences from a
 * real ONNX Runtime session of the generated metrics model; incremental
 * assignment against clustering from scratch.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { loadCcipModel, type CcipModel } from '../../src/inference/ccip.ts';
import { adjustedRandIndex, clusterDifferences, clusterIncrementally, defaultClusterParams, type ClusterMethod } from '../../src/stages/characters/clustering.ts';
import { dbscan, optics, opticsGraph } from '../../src/stages/characters/density-clustering.ts';
import { identityFeatures, writeCcipModels } from '../fixtures/ccip-models.ts';
import { tempDir } from '../helpers.ts';

const THRESHOLD = 0.178;
const METHODS: ClusterMethod[] = ['dbscan', 'optics'];

/** `scale`: the difference between unrelated crops (1: beyond OPTICS' max_eps 0.5; 0.45: within it, as the real model's 0.39-0.44 between characters in imgutils' ccip_batch_differences example). */
async function openModel(t: Parameters<typeof tempDir>[0], scale = 1): Promise<CcipModel> {
  const dir = writeCcipModels(path.join(tempDir(t), `ccip-test-${scale}`), { size: 16, scale });
  const model = await loadCcipModel(dir, { providers: ['cpu'], batchSize: 8, log: pino({ level: 'silent' }), blockSize: 128 });
  t.after(() => model.close());
  return model;
}

/** Labels equal up to renaming: the same partition (noise included as its own label). */
function samePartition(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  const forward = new Map<number, number>();
  const backward = new Map<number, number>();
  for (let i = 0; i < a.length; i += 1) {
    if ((forward.get(a[i]!) ?? b[i]) !== b[i] || (backward.get(b[i]!) ?? a[i]) !== a[i]) return false;
    forward.set(a[i]!, b[i]!);
    backward.set(b[i]!, a[i]!);
  }
  return true;
}

test('adjusted Rand index: 1 up to renaming, near 0 for a random labelling, and the textbook value on a small case', () => {
  assert.equal(adjustedRandIndex([0, 0, 1, 1, -1], [5, 5, 2, 2, 9]), 1);
  assert.equal(adjustedRandIndex([], []), 1);
  // scikit-learn's documented example: adjusted_rand_score([0, 0, 1, 2], [0, 0, 1, 1]) == 0.57...
  assert.ok(Math.abs(adjustedRandIndex([0, 0, 1, 2], [0, 0, 1, 1]) - 0.5714285714285714) < 1e-12);
  assert.equal(adjustedRandIndex([0, 0, 1, 1], [0, 1, 0, 1]), -0.5);
  let state = 7;
  const random = () => ((state = (state * 1103515245 + 12345) & 0x7fffffff) % 5);
  const truth = Array.from({ length: 2000 }, random);
  const guess = Array.from({ length: 2000 }, random);
  assert.ok(Math.abs(adjustedRandIndex(truth, guess)) < 0.02);
});

test('imgutils default parameters per method', () => {
  assert.deepEqual(defaultClusterParams('dbscan', 0.17847511429108218), { method: 'dbscan', eps: 0.17847511429108218, minSamples: 2 });
  assert.deepEqual(defaultClusterParams('optics', 0.17847511429108218), { method: 'optics', eps: 0.5, minSamples: 5 });
});

test('DBSCAN semantics as scikit-learn: eps inclusive, min_samples counts the point itself, border points go to the first cluster', () => {
  // Points on a line, distances |a - b| / 8 (exact in float32, as the model's output is).
  const line = (positions: number[]) => {
    const n = positions.length;
    const d = new Float32Array(n * n);
    positions.forEach((a, i) => positions.forEach((b, j) => (d[i * n + j] = Math.abs(a - b) / 8)));
    return d;
  };
  const d = line([0, 1, 2, 10, 20, 21]);
  assert.deepEqual([...dbscan(d, 6, 0.125, 2)], [0, 0, 0, -1, 1, 1], 'eps 0.125 reaches points exactly 0.125 apart');
  assert.deepEqual([...dbscan(d, 6, 0.125, 3)], [0, 0, 0, -1, -1, -1], 'with min_samples 3, 20 and 21 are not core (2 neighbours each, themselves counted)');
  assert.deepEqual([...dbscan(d, 6, 0.1249, 2)], [-1, -1, -1, -1, -1, -1], 'just under eps nothing is a neighbour but itself');
  // 10 is 7/8 from 3 and from 17: with eps 7/8 and min_samples 4 it is a border point of both clusters.
  assert.deepEqual([...dbscan(line([0, 1, 2, 3, 10, 17, 18, 19, 20]), 9, 7 / 8, 4)], [0, 0, 0, 0, 0, 1, 1, 1, 1], 'the border point keeps the cluster that reached it first');
  assert.deepEqual([...dbscan(line([0, 1, 2, 3, 10, 17, 18, 19, 20]), 9, 7 / 8, 3)], [0, 0, 0, 0, 0, 0, 0, 0, 0], 'with min_samples 3 it is core and joins them');
});

test('OPTICS as scikit-learn: its documented example, and the reachability of a small line', () => {
  const euclidean = (points: number[][]) => {
    const n = points.length;
    const d = new Float32Array(n * n);
    points.forEach((a, i) => points.forEach((b, j) => (d[i * n + j] = Math.hypot(...a.map((v, k) => v - b[k]!)))));
    return d;
  };
  // sklearn/cluster/_optics.py, the OPTICS docstring: OPTICS(min_samples=2).fit(X).labels_ == [0, 0, 0, 1, 1, 1].
  assert.deepEqual([...optics(euclidean([[1, 2], [2, 5], [3, 6], [8, 7], [8, 8], [7, 3]]), 6, Infinity, 2)], [0, 0, 0, 1, 1, 1]);
  // Points 0, 1, 3, 7 with min_samples 2: core distances are the nearest other point; the order follows the least reachability.
  const graph = opticsGraph(euclidean([[0], [1], [3], [7]]), 4, Infinity, 2);
  assert.deepEqual([...graph.ordering], [0, 1, 2, 3]);
  assert.deepEqual([...graph.coreDistances], [1, 1, 2, 4]);
  assert.deepEqual([...graph.reachability], [Infinity, 1, 2, 4]);
  assert.deepEqual([...graph.predecessor], [-1, 0, 1, 2]);
  // max_eps below a point's core distance makes it never core and its neighbours beyond it unreachable.
  const capped = opticsGraph(euclidean([[0], [1], [3], [7]]), 4, 2, 2);
  assert.deepEqual([...capped.coreDistances], [1, 1, 2, Infinity]);
  assert.deepEqual([...capped.reachability], [Infinity, 1, 2, Infinity]);
});

test('adversarial inputs: no points, one point, all points identical, fewer points than min_samples', () => {
  for (const method of METHODS) {
    const params = defaultClusterParams(method, THRESHOLD);
    assert.deepEqual([...clusterDifferences(new Float32Array(0), 0, params)], []);
    assert.deepEqual([...clusterDifferences(new Float32Array([0]), 1, params)], [-1], `${method}: one point is noise`);
    const same = new Float32Array(20 * 20);
    const labels = clusterDifferences(same, 20, params);
    assert.ok(labels.every((label) => label === labels[0] && label >= 0), `${method}: identical points are one cluster (${[...labels]})`);
    assert.deepEqual([...clusterDifferences(new Float32Array(9), 3, { ...params, minSamples: 5 })], [-1, -1, -1], `${method}: fewer points than min_samples`);
  }
  assert.throws(() => clusterDifferences(new Float32Array(5), 2, defaultClusterParams('dbscan', THRESHOLD)), /4 values, not 5/);
});

test('generated identities with strays, differences from the ONNX metrics model: ARI >= 0.95 and strays stay noise', async (t) => {
  // Spreads that put an identity's crops about 0.08 apart at either scale.
  for (const [scale, spread] of [[1, 0.3], [0.45, 0.5]] as const) {
    const { features, truth } = identityFeatures({ identities: 8, perIdentity: [60, 45, 30, 25, 20, 15, 12, 10], strays: 12, seed: 3, spread });
    const n = features.length;
    const model = await openModel(t, scale);
    const d = await model.differences(features);
    for (const method of METHODS) {
      const labels = clusterDifferences(d, n, defaultClusterParams(method, model.threshold));
      const ari = adjustedRandIndex(truth, labels);
      assert.ok(ari >= 0.95, `${method}, scale ${scale}: ARI ${ari.toFixed(4)}`);
      truth.forEach((identity, i) => {
        if (identity === -1) assert.equal(labels[i], -1, `${method}, scale ${scale}: stray ${i} is noise`);
      });
      assert.equal(new Set([...labels].filter((label) => label >= 0)).size, 8, `${method}, scale ${scale}: 8 clusters`);
    }
  }
});

test('two identities close together: apart by more than the threshold they stay two clusters; within it they are one', async (t) => {
  const model = await openModel(t);
  const base = identityFeatures({ identities: 1, perIdentity: 30, spread: 0.15, seed: 11 });
  const centre = base.features[0]!.map((_, k) => base.features.reduce((sum, f) => sum + f[k]!, 0) / base.features.length);
  const shiftedBy = (amount: number, seed: number) => {
    let state = seed;
    const random = () => ((state = (state * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff - 0.5) * 2;
    const direction = centre.map(() => random());
    const norm = Math.hypot(...direction);
    const scale = Math.hypot(...centre);
    return base.features.map((feature) => feature.map((value, k) => value + (direction[k]! / norm) * scale * amount));
  };
  for (const [amount, expected] of [[0.9, 2], [0.2, 1]] as const) {
    const other = shiftedBy(amount, 5);
    const features = [...base.features, ...other];
    const truth = [...base.features.map(() => 0), ...other.map(() => (expected === 2 ? 1 : 0))];
    const d = await model.differences(features);
    for (const method of METHODS) {
      const labels = clusterDifferences(d, features.length, defaultClusterParams(method, model.threshold));
      assert.equal(new Set([...labels].filter((label) => label >= 0)).size, expected, `${method}, shift ${amount}: ${[...labels]}`);
      assert.ok(adjustedRandIndex(truth, labels) >= 0.95, `${method}, shift ${amount}`);
    }
  }
});

test('incremental assignment matches clustering from scratch: new crops join their identity, new identities and former noise form new clusters', async (t) => {
  const model = await openModel(t);
  const nearModel = await openModel(t, 0.45);
  // Six identities seen before, two first seen in the new episode, and strays.
  const all = identityFeatures({ identities: 8, perIdentity: [50, 40, 30, 30, 25, 20, 25, 15], strays: 10, seed: 21 });
  const firstPart: number[] = [];
  const newPart: number[] = [];
  all.truth.forEach((identity, i) => ((identity >= 6 || i % 4 === 0) ? newPart : firstPart).push(i));
  for (const method of METHODS) {
    const params = defaultClusterParams(method, model.threshold);
    const scratch = clusterDifferences(await model.differences(all.features), all.features.length, params);
    const firstFeatures = firstPart.map((i) => all.features[i]!);
    const firstLabels = [...clusterDifferences(await model.differences(firstFeatures), firstFeatures.length, params)];
    const increment = await clusterIncrementally(model, { features: firstFeatures, labels: firstLabels }, newPart.map((i) => all.features[i]!), params, { blockRows: 64 });
    const combined = new Int32Array(all.features.length);
    firstPart.forEach((i, k) => (combined[i] = increment.formerNoise.get(k) ?? firstLabels[k]!));
    newPart.forEach((i, k) => (combined[i] = increment.added[k]!));
    const ari = adjustedRandIndex(scratch, combined);
    assert.ok(ari >= 0.95, `${method}: ARI against scratch ${ari.toFixed(4)}`);
    assert.ok(adjustedRandIndex(all.truth, combined) >= 0.95, `${method}: ARI against the truth`);
    assert.ok(samePartition(scratch, combined), `${method}: the same partition as from scratch on well separated identities`);
    // Unrelated crops within max_eps: OPTICS' result depends on the order it visits points, so only nearly the same.
    const nearScratch = clusterDifferences(await nearModel.differences(all.features), all.features.length, params);
    const nearFirst = [...clusterDifferences(await nearModel.differences(firstFeatures), firstFeatures.length, params)];
    const near = await clusterIncrementally(nearModel, { features: firstFeatures, labels: nearFirst }, newPart.map((i) => all.features[i]!), params);
    const nearCombined = new Int32Array(all.features.length);
    firstPart.forEach((i, k) => (nearCombined[i] = near.formerNoise.get(k) ?? nearFirst[k]!));
    newPart.forEach((i, k) => (nearCombined[i] = near.added[k]!));
    assert.ok(adjustedRandIndex(nearScratch, nearCombined) >= 0.95, `${method}, scale 0.45: ARI against scratch ${adjustedRandIndex(nearScratch, nearCombined).toFixed(4)}`);
    const existingIds = new Set(firstLabels.filter((label) => label >= 0));
    newPart.forEach((i, k) => {
      const identity = all.truth[i]!;
      if (identity >= 0 && identity < 6) assert.ok(existingIds.has(increment.added[k]!), `${method}: a new crop of identity ${identity} joins an existing cluster`);
      if (identity >= 6) assert.ok(!existingIds.has(increment.added[k]!) && increment.added[k]! >= 0, `${method}: identity ${identity} is a new cluster`);
    });
  }
});

test('incremental beyond maxSquare: windows never ask for a larger square, and the clusters are those from scratch', async (t) => {
  const model = await openModel(t);
  let largest = 0;
  const watched = {
    differences: (features: readonly Float32Array[]) => {
      largest = Math.max(largest, features.length);
      return model.differences(features);
    },
    crossDifferences: model.crossDifferences.bind(model),
  };
  const all = identityFeatures({ identities: 6, perIdentity: [40, 35, 30, 25, 20, 15], strays: 6, seed: 41 });
  for (const method of METHODS) {
    const params = defaultClusterParams(method, model.threshold);
    const scratch = clusterDifferences(await model.differences(all.features), all.features.length, params);
    largest = 0;
    // Nothing clustered yet (a series' first episode): every crop goes through windows of 60.
    const increment = await clusterIncrementally(watched, { features: [], labels: [] }, all.features, params, { maxSquare: 120, blockRows: 16 });
    assert.ok(largest <= 120, `${method}: a square of ${largest}`);
    assert.ok(largest > 0);
    const ari = adjustedRandIndex(scratch, increment.added);
    assert.ok(ari >= 0.95, `${method}: ARI against scratch ${ari.toFixed(4)}`);
    assert.ok(samePartition(scratch, increment.added), `${method}: the same partition (well separated identities)`);
  }
});

test('incremental: stray crops that match earlier noise form a cluster with it; nothing to add changes nothing', async (t) => {
  const model = await openModel(t);
  const { features, truth } = identityFeatures({ identities: 2, perIdentity: [12, 8], seed: 31 });
  const known = features.filter((_, i) => truth[i] === 0);
  const unknown = features.filter((_, i) => truth[i] === 1);
  const params = defaultClusterParams('dbscan', model.threshold);
  // The second identity was noise (one crop seen) in the earlier episodes.
  const existing = { features: [...known.slice(0, 10), unknown[0]!], labels: [...Array<number>(10).fill(4), -1] };
  const increment = await clusterIncrementally(model, existing, [...known.slice(10), ...unknown.slice(1)], params);
  assert.deepEqual([...increment.added], [4, 4, 5, 5, 5, 5, 5, 5, 5], 'crops of the known identity join cluster 4, the others a new one numbered after it');
  assert.deepEqual([...increment.formerNoise], [[10, 5]], 'the earlier noise crop is in the new cluster');
  const empty = await clusterIncrementally(model, existing, [], params);
  assert.equal(empty.added.length, 0);
  assert.equal(empty.formerNoise.size, 0);
});
