/**
 * Frames per second through the faces and tags stages on CPU, with and
 * without batching and worker threads, on the kept frames of the generated
 * 1080p anime clip ('small' scenario). The stages run as the daemon runs
 * them (real ONNX Runtime sessions, the real cascade, sharp in the image
 * workers). The real WD14 and YOLO models cannot be downloaded here, so the
 * ONNX models are generated with the same contracts and real convolutional
 * work (about 3 GFLOP per picture per tagger at 448, 2 GFLOP for YOLO at 640,
 * against roughly 10x that for the real ones): absolute rates are not those
 * of the real models; the ratios show what batching and the workers buy.
 * Baseline, measured in the same run: one picture at a time, prepared on the
 * main thread.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Catalog } from '../src/adapters/catalog-store.ts';
import { realDiskSpace } from '../src/adapters/disk.ts';
import { createImageWorkers } from '../src/adapters/image-workers.ts';
import { MediaRepository } from '../src/adapters/media.ts';
import { validateConfig } from '../src/config/load.ts';
import type { Job } from '../src/daemon/job.ts';
import { catalogPath, ledgerPath } from '../src/daemon/library-paths.ts';
import { modelsAvailable } from '../src/models/model-availability.ts';
import { ModelCache } from '../src/models/model-cache.ts';
import { loadFaceDetector } from '../src/stages/faces/face-detector.ts';
import { loadTaggers } from '../src/inference/taggers.ts';
import { facesStage } from '../src/stages/faces/faces-stage.ts';
import type { Stage, StagePorts } from '../src/stages/stage.ts';
import { tagsStage } from '../src/stages/tags/tags-stage.ts';
import { makeAnimeClip } from '../test/fixtures/anime-clip.ts';
import { binaries } from '../test/fixtures/clips.ts';
import { writeModelFolder } from '../test/fixtures/model-folder.ts';
import { FRAMES_ONLY, writeConfig } from '../test/helpers.ts';

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'celforge.js');
const TAGGERS = ['wd-a', 'wd-b', 'wd-c'];
const VARIANTS = [
  { name: 'one at a time, main thread (baseline)', batchSize: 1, workers: 0 },
  { name: 'batches of 8, main thread', batchSize: 8, workers: 0 },
  { name: 'one at a time, 2 worker threads', batchSize: 1, workers: 2 },
  { name: 'batches of 8, 2 worker threads (default)', batchSize: 8, workers: 2 },
];

const work = mkdtempSync(path.join(os.tmpdir(), 'celforge-bench-faces-tags-'));
try {
  const clip = await makeAnimeClip({ width: 1920, height: 1080, scenario: 'small' });
  const models = writeModelFolder(work, { taggers: TAGGERS.map((id) => ({ id, blueSky: 1 })), cascade: true, heavy: { tags: 2000 } });
  const library = path.join(work, 'library');
  const configFile = writeConfig(work, { library: './library', disk: { reserve: 0 }, ...FRAMES_ONLY });
  const processed = spawnSync(process.execPath, [cli, '--config', configFile, 'process', clip.file], { encoding: 'utf8', cwd: work });
  if (processed.status !== 0) throw new Error(processed.stderr + processed.stdout);
  const extracted = (JSON.parse(readFileSync(ledgerPath(library), 'utf8')) as { jobs: Job[] }).jobs[0]!;
  const frames = extracted.extract!.kept;
  console.log(`${frames} kept 1920x1080 frames of ${extracted.extract!.framesDone}; ${os.availableParallelism()} CPUs; 3 taggers`);

  const catalog = Catalog.open(catalogPath(library));
  // Models are loaded once (as the daemon keeps them), before anything is timed.
  const loaded = new ModelCache();
  const warmConfig = validateConfig({ library, models: { dir: models.dir, manifest: models.manifest }, faces: { detector: 'yolo' }, tags: { taggers: TAGGERS } }, 'bench', work);
  const warmPorts = { images: createImageWorkers(0), models: loaded, log: pino({ level: 'silent' }) };
  const available = await modelsAvailable(warmConfig, [...TAGGERS, 'anime-face-yolov8s'], ['tagger', 'face-yolo']);
  if (!available.ready) throw new Error(available.reason);
  await loadTaggers(warmConfig, available.models.slice(0, TAGGERS.length), warmPorts);
  await loadFaceDetector(warmConfig, available.models.at(-1)!, warmPorts);
  const rows: { name: string; rates: number[] }[] = [];
  for (const variant of VARIANTS) {
    const images = createImageWorkers(variant.workers);
    const rates: number[] = [];
    for (const detector of ['cascade', 'yolo', null] as const) {
      const config = validateConfig({
        library, models: { dir: models.dir, manifest: models.manifest },
        inference: { batchSize: variant.batchSize, workers: variant.workers },
        faces: { detector: detector ?? 'cascade' }, tags: { taggers: detector ? [] : TAGGERS },
      }, 'bench', work);
      const ports: StagePorts = {
        config: () => config, media: new MediaRepository(binaries), disk: realDiskSpace, catalog, images, models: loaded,
        log: pino({ level: 'silent' }), signal: new AbortController().signal, save: async () => {},
      };
      const stage: Stage = detector ? facesStage : tagsStage;
      rmSync(path.join(extracted.extract!.dir, 'faces.jsonl'), { force: true });
      const job: Job = { ...structuredClone(extracted), stage: detector ? 'faces' : 'tags', state: 'running' };
      const start = performance.now();
      const result = await stage(job, ports);
      if (result.kind !== 'done') throw new Error(`${detector ?? 'tags'}: ${result.kind}`);
      rates.push(frames / ((performance.now() - start) / 1000));
    }
    await images.close();
    rows.push({ name: variant.name, rates });
  }
  catalog.close();

  const base = rows[0]!.rates;
  const cell = (rate: number, index: number) => `${rate.toFixed(2)} (${(rate / base[index]!).toFixed(2)}x)`;
  console.log('\n| variant | faces, cascade fps | faces, YOLO fps | tags, 3 taggers fps |');
  console.log('|---|---|---|---|');
  for (const row of rows) console.log(`| ${row.name} | ${row.rates.map(cell).join(' | ')} |`);
  console.log('\n(ratio against the baseline row in brackets)');
} finally {
  rmSync(work, { recursive: true, force: true });
}
