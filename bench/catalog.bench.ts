/**
 * The catalog at library scale: a generated catalog of 200k images with ~30
 * tags each (a booru-like tag distribution: a few tags on most images, a long
 * tail of rare ones). Measures the import rate, a two-tag query with a
 * negation, an export of 50k images to a Kohya dataset, a bulk tag removal
 * over 100k images, and the process's memory
 * as the catalog grows. Targets (issue 4): query under 100 ms, bulk removal
 * under 5 s, memory flat as the catalog grows. The baseline, measured in the
 * same run, is the same query answered from the per-source tag table without
 * the derived one (what a catalog without it would do).
 */
import { linkSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { Catalog } from '../src/adapters/catalog-store.ts';
import { exportKohyaDataset } from '../src/stages/export/kohya-export.ts';

const IMAGES = Number(process.env.BENCH_IMAGES ?? 200_000);
const TAGS_PER_IMAGE = 30;
const VOCABULARY = 5000;
const BATCH = 2000;

let seed = 42;
const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
/** Zipf-like: tag k is picked with weight 1/(k+1). */
const pickTag = () => `tag_${Math.floor(Math.exp(random() * Math.log(VOCABULARY)) - 1)}`;

const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-bench-catalog-'));
const file = path.join(dir, 'catalog.sqlite');
const catalog = Catalog.open(file);
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
try {
  const memory: string[] = [];
  const start = performance.now();
  for (let first = 0; first < IMAGES; first += BATCH) {
    catalog.batch(() => {
      for (let n = first; n < Math.min(IMAGES, first + BATCH); n += 1) {
        const tags = new Set<string>(['1girl', n % 2 ? 'solo' : 'multiple_girls', `series:s${n % 40}`, `episode:${n % 24}`]);
        while (tags.size < TAGS_PER_IMAGE) tags.add(pickTag());
        catalog.addImage({
          hash: n.toString(16).padStart(64, '0'), path: `s/e/frames/${n}.png`, size: 3_000_000, width: 1920, height: 1080,
          series: `s${n % 40}`, episode: String(n % 24), scene: n % 300, frame: n, source: 'bench',
        }, [...tags], 'tagger:bench');
      }
    });
    if ((first + BATCH) % 50_000 === 0) memory.push(`${(first + BATCH) / 1000}k: ${mib(process.memoryUsage().rss)} MiB`);
  }
  const importSeconds = (performance.now() - start) / 1000;

  const query = 'tag_3 -solo';
  const timeQuery = (run: () => number) => {
    run(); // warm the page cache, as a running daemon has it
    const times: number[] = [];
    let found = 0;
    for (let i = 0; i < 5; i += 1) {
      const t0 = performance.now();
      found = run();
      times.push(performance.now() - t0);
    }
    return { ms: times.sort((a, b) => a - b)[2]!, found };
  };
  const counted = timeQuery(() => catalog.count(query));
  const firstPage = timeQuery(() => catalog.search(query, { limit: 100 }).length);
  const indexed = timeQuery(() => catalog.search(query).length);
  const raw = new Database(file, { readonly: true });
  const perSource = timeQuery(() => (raw.prepare(`SELECT i.id FROM images i WHERE
      EXISTS (SELECT 1 FROM image_tags it JOIN tags t ON t.id = it.tag_id WHERE it.image_id = i.id AND t.namespace = '' AND t.name = 'tag_3' AND it.state = 0)
      AND NOT EXISTS (SELECT 1 FROM image_tags it JOIN tags t ON t.id = it.tag_id WHERE it.image_id = i.id AND t.namespace = '' AND t.name = 'solo' AND it.state = 0)`).all()).length);
  raw.close();

  // Export of 50k images: every catalog image points at a real file (hard links of one small PNG).
  const EXPORTED = Math.min(50_000, IMAGES);
  const sample = path.join(dir, 'sample.png');
  await sharp({ create: { width: 64, height: 36, channels: 3, background: '#808080' } }).png().toFile(sample);
  const selection = catalog.search('1girl', { limit: EXPORTED });
  for (const image of selection) {
    const file = path.join(dir, image.path);
    mkdirSync(path.dirname(file), { recursive: true });
    linkSync(sample, file);
  }
  const exportStart = performance.now();
  const exported = await exportKohyaDataset(
    selection.map((image) => ({ hash: image.hash, path: path.join(dir, image.path), width: image.width, height: image.height, tags: catalog.tagsOf(image.hash) })),
    {
      out: path.join(dir, 'dataset'), numRepeats: 1, batchSize: 4, link: 'auto',
      caption: { triggerWords: ['mychar'], keepTokens: 1, underscoresToSpaces: true },
      buckets: { resolution: [1024, 1024], minBucketReso: 256, maxBucketReso: 2048, bucketResoSteps: 64 },
    },
  );
  const exportSeconds = (performance.now() - exportStart) / 1000;

  const t0 = performance.now();
  const edited = catalog.personEdit(`1girl -solo`, [], ['1girl']);
  const bulkSeconds = (performance.now() - t0) / 1000;

  console.log(`catalog: ${IMAGES} images x ${TAGS_PER_IMAGE} tags (${VOCABULARY}-tag vocabulary), ${mib(statSync(file).size)} MiB on disk`);
  console.log(`import: ${importSeconds.toFixed(1)} s, ${(IMAGES / importSeconds).toFixed(0)} images/s`);
  console.log(`query "${query}" (target < 100 ms): count ${counted.ms.toFixed(1)} ms (${counted.found} images); first 100 rows ${firstPage.ms.toFixed(1)} ms; all ${indexed.found} rows ${indexed.ms.toFixed(1)} ms`);
  console.log(`  baseline, the same query on the per-source table: ${perSource.ms.toFixed(1)} ms (all rows: ratio ${(indexed.ms / perSource.ms).toFixed(3)}, count: ratio ${(counted.ms / perSource.ms).toFixed(3)})`);
  console.log(`bulk removal of 1girl from ${edited} images: ${bulkSeconds.toFixed(2)} s (target < 5 s)`);
  console.log(`export of ${exported.images} images (tags read from the catalog, captions, links, config): ${exportSeconds.toFixed(1)} s, ${(exported.images / exportSeconds).toFixed(0)} images/s`);
  console.log(`rss while importing: ${memory.join(', ')}`);
  if (indexed.found !== perSource.found || counted.found !== indexed.found) throw new Error(`the two queries disagree: ${indexed.found} vs ${perSource.found}`);
} finally {
  catalog.close();
  rmSync(dir, { recursive: true, force: true });
}
