/**
 * CCIP features and clustering at the size of a series (20k crops): time and
 * peak memory (each measurement in a process of its own, so its peak RSS is
 * its own). The real CCIP models cannot be downloaded here, so the models are
 * the generated ones with the CCIP contract (test/fixtures/ccip-models.ts):
 * the feature model is nearly free (a 4 x 4 average and a projection), so the
 * feature rate is that of preparing crops (decode, resize to 384, normalise)
 * and of moving 384x384 inputs through ONNX Runtime; the real caformer adds
 * its own inference time on top. The metrics model is a 768-wide cosine, as
 * cheap as the real one is unknown to be.
 *
 * Clustering runs on generated identities (a main cast with many crops, a
 * long tail, 1% strays) with the generated metrics model; its adjusted Rand
 * index against the truth is shown. Baseline, measured in the same run:
 * clustering 2k crops from scratch; the ratio is time per crop against it.
 * Incremental: 2k new crops added to 18k clustered ones (their clusters
 * taken as the truth, as earlier episodes left them), against clustering
 * all 20k from scratch; and all 20k added where nothing is clustered yet,
 * which clusters them in windows (bounded memory) instead of one square.
 *
 * BENCH_CCIP_CROPS (default 20000) and BENCH_CCIP_FEATURE_CROPS (default
 * 2000; the feature rate is per crop, so 20k is that rate times ten).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { createImageWorkers } from '../src/adapters/image-workers.ts';
import { loadCcipModel } from '../src/inference/ccip.ts';
import { adjustedRandIndex, clusterDifferences, clusterIncrementally, defaultClusterParams, type ClusterMethod } from '../src/stages/characters/clustering.ts';
import { CHARACTERS, characterCrop, identityFeatures, writeCcipModels } from '../test/fixtures/ccip-models.ts';

const self = fileURLToPath(import.meta.url);
const CROPS = Number(process.env.BENCH_CCIP_CROPS ?? 20_000);
const FEATURE_CROPS = Number(process.env.BENCH_CCIP_FEATURE_CROPS ?? 2_000);
const BASELINE = 2_000;
const ADDED = 2_000;
const log = pino({ level: 'silent' });

interface Measure {
  seconds: number;
  maxRssMiB: number;
  ari?: number;
  clusters?: number;
}

/** Crops per identity for `count` crops: a main cast and a long tail (sizes falling as 1/rank), 1% strays. */
function series(count: number, seed: number) {
  const identities = Math.max(4, Math.round(count / 250));
  const strays = Math.round(count * 0.01);
  const weights = Array.from({ length: identities }, (_, rank) => 1 / (rank + 1));
  const total = weights.reduce((a, b) => a + b, 0);
  const sizes = weights.map((w) => Math.max(6, Math.floor(((count - strays) * w) / total)));
  sizes[0]! += count - strays - sizes.reduce((a, b) => a + b, 0);
  return identityFeatures({ identities, perIdentity: sizes, strays, seed });
}

async function scenario(name: string, dir: string): Promise<Omit<Measure, 'maxRssMiB'>> {
  const [kind, method, a, b] = name.split(':') as [string, ClusterMethod, string, string];
  if (kind === 'features') {
    const count = Number(a);
    const crops = await Promise.all(Array.from({ length: 64 }, async (_, i) => {
      const file = path.join(dir, `crop-${i}.png`);
      writeFileSync(file, await characterCrop(CHARACTERS[i % CHARACTERS.length]!, i, 160 + (i % 8) * 40));
      return file;
    }));
    const images = createImageWorkers(2);
    const model = await loadCcipModel(writeCcipModels(path.join(dir, 'ccip')), { providers: ['cpu'], batchSize: 8, log, images });
    await model.features(crops.slice(0, 8));
    const files = Array.from({ length: count }, (_, i) => crops[i % crops.length]!);
    const start = performance.now();
    await model.features(files);
    const seconds = (performance.now() - start) / 1000;
    await model.close();
    await images.close();
    return { seconds };
  }
  const model = await loadCcipModel(writeCcipModels(path.join(dir, 'ccip'), { size: 16 }), { providers: ['cpu'], batchSize: 8, log });
  const params = defaultClusterParams(method, model.threshold);
  if (kind === 'scratch') {
    const { features, truth } = series(Number(a), 7);
    const start = performance.now();
    const labels = clusterDifferences(await model.differences(features), features.length, params);
    const seconds = (performance.now() - start) / 1000;
    return { seconds, ari: adjustedRandIndex(truth, labels), clusters: new Set(labels).size - (labels.includes(-1) ? 1 : 0) };
  }
  if (kind === 'windows') {
    const { features, truth } = series(Number(a), 7);
    const start = performance.now();
    const increment = await clusterIncrementally(model, { features: [], labels: [] }, features, params);
    const seconds = (performance.now() - start) / 1000;
    return { seconds, ari: adjustedRandIndex(truth, increment.added), clusters: new Set([...increment.added].filter((label) => label >= 0)).size };
  }
  const existingCount = Number(a);
  const { features, truth } = series(existingCount + Number(b), 7);
  // The generator shuffles, so the last crops are a random draw: the new episode's.
  const existing = { features: features.slice(0, existingCount), labels: truth.slice(0, existingCount) };
  const start = performance.now();
  const increment = await clusterIncrementally(model, existing, features.slice(existingCount), params);
  const seconds = (performance.now() - start) / 1000;
  const combined = [...existing.labels.map((label, i) => increment.formerNoise.get(i) ?? label), ...increment.added];
  return { seconds, ari: adjustedRandIndex(truth, combined), clusters: new Set(combined.filter((label) => label >= 0)).size };
}

function measure(name: string): Measure {
  const child = spawnSync(process.execPath, ['--import', 'tsx', self, name], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (child.status !== 0) throw new Error(`${name}: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!) as Measure;
}

const wanted = process.argv[2];
if (wanted) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-bench-ccip-'));
  try {
    mkdirSync(dir, { recursive: true });
    const result = await scenario(wanted, dir);
    console.log(JSON.stringify({ ...result, maxRssMiB: process.resourceUsage().maxRSS / 1024 }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
} else {
  console.log(`${os.availableParallelism()} CPUs, load average ${os.loadavg()[0]!.toFixed(1)}; generated CCIP-contract models (see the top of this file)`);
  const features = measure(`features:-:${FEATURE_CROPS}`);
  console.log('\n| features | crops | seconds | ms per crop | 20k crops at that rate | peak RSS MiB |');
  console.log('|---|---|---|---|---|---|');
  const perCrop = features.seconds / FEATURE_CROPS;
  console.log(`| 384x384 crops, batches of 8, 2 image workers | ${FEATURE_CROPS} | ${features.seconds.toFixed(1)} | ${(perCrop * 1000).toFixed(1)} | ${(perCrop * 20_000 / 60).toFixed(1)} min | ${features.maxRssMiB.toFixed(0)} |`);

  console.log('\n| clustering | crops | seconds | ms per crop (ratio to baseline) | peak RSS MiB | ARI vs truth | clusters |');
  console.log('|---|---|---|---|---|---|---|');
  for (const method of ['dbscan', 'optics'] as const) {
    const rows: [string, number, Measure][] = [
      [`${method}, from scratch (baseline)`, BASELINE, measure(`scratch:${method}:${BASELINE}`)],
      [`${method}, from scratch`, CROPS, measure(`scratch:${method}:${CROPS}`)],
      [`${method}, ${ADDED} added to ${CROPS - ADDED} clustered`, ADDED, measure(`incremental:${method}:${CROPS - ADDED}:${ADDED}`)],
      [`${method}, all added to nothing (windows of 4096)`, CROPS, measure(`windows:${method}:${CROPS}`)],
    ];
    const base = rows[0]![2].seconds / BASELINE;
    for (const [label, crops, m] of rows) {
      const per = m.seconds / crops;
      console.log(`| ${label} | ${crops} | ${m.seconds.toFixed(2)} | ${(per * 1000).toFixed(3)} (${(per / base).toFixed(2)}x) | ${m.maxRssMiB.toFixed(0)} | ${m.ari!.toFixed(4)} | ${m.clusters} |`);
    }
    const scratch = rows[1]![2].seconds;
    console.log(`| ${method}: incremental against from scratch, all ${CROPS} | | | ${(rows[2]![2].seconds / scratch).toFixed(3)}x the time | | | |`);
  }
}
