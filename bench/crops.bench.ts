/**
 * What does the crops stage cost per kept frame on 1080p and 720p frames?
 *
 * Frames (test/fixtures/face-frames.ts, seeded): three of grid-36's
 * pictures each, faces 120-300 px tall on 1080p (80-200 on 720p), written as
 * the extract stage writes frames (PNG); their true face boxes stand in for
 * the detector's in faces.jsonl. The stage runs as in the pipeline (default
 * crops settings: face and upper_body, margin 0.5, minimum 256 px; fast PNG),
 * into a real SQLite catalog, every crop fsynced. The ratio is the stage's
 * time against writing the same frames' PNGs (sharp, fast) in the same run,
 * as the machine may be shared.
 *
 * What it does not show: the face detector's time (bench/faces-detector.bench.ts),
 * nor a slow disk, where the fsync of each crop would count for more.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import sharp from 'sharp';
import { Catalog } from '../src/adapters/catalog-store.ts';
import { PNG_OPTIONS } from '../src/adapters/image-writer.ts';
import { validateConfig } from '../src/config/load.ts';
import type { Job } from '../src/daemon/job.ts';
import { videoLayout } from '../src/daemon/library-paths.ts';
import { cropsStage } from '../src/stages/crops/crops-stage.ts';
import type { StagePorts } from '../src/stages/stage.ts';
import { makeFaceFrame } from '../test/fixtures/face-frames.ts';

const SIZES = [
  { name: '1080p', width: 1920, height: 1080, frames: 40, faceHeights: [120, 300] as [number, number] },
  { name: '720p', width: 1280, height: 720, frames: 40, faceHeights: [80, 200] as [number, number] },
];

const rows: string[][] = [['frames', 'crops', 'crops/frame', 'ms/frame', 'ms/crop', 'x frame PNG write', 'crop MiB', 'peak RSS MiB']];
for (const size of SIZES) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-bench-crops-'));
  try {
    const library = path.join(dir, 'library');
    const layout = videoLayout(library, 'bench', '01');
    const map: string[] = [];
    const faces: string[] = [];
    const raws: { rgb: Buffer; width: number; height: number }[] = [];
    for (let frame = 0; frame < size.frames; frame += 1) {
      const made = await makeFaceFrame({ width: size.width, height: size.height, seed: frame + 1, pictures: 3, faceHeights: size.faceHeights });
      const file = layout.keptFile(1, frame);
      mkdirSync(path.dirname(path.join(library, file)), { recursive: true });
      writeFileSync(path.join(library, file), made.png);
      raws.push({ rgb: await sharp(made.png).removeAlpha().raw().toBuffer(), width: size.width, height: size.height });
      map.push(JSON.stringify({ frame, scene: 1, status: 'kept', file }));
      const boxes = made.faces.map((face) => ({ x: Math.round(face.x), y: Math.round(face.y), width: Math.round(face.width), height: Math.round(face.height), score: 1 }));
      faces.push(JSON.stringify({ frame, file, sha256: String(frame).padStart(64, '0'), detector: 'truth', faces: boxes, passed: boxes.length > 0 }));
    }
    writeFileSync(layout.frameMap, `${map.join('\n')}\n`);
    writeFileSync(layout.faces, `${faces.join('\n')}\n`);

    let start = performance.now();
    for (const raw of raws) await sharp(raw.rgb, { raw: { width: raw.width, height: raw.height, channels: 3 } }).png(PNG_OPTIONS.fast).toBuffer();
    const pngMs = performance.now() - start;
    raws.length = 0;
    (globalThis as { gc?: () => void }).gc?.();

    const config = validateConfig({ library }, 'bench', dir);
    const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
    const job = { series: 'bench', episode: '01', source: 'bench', probe: { width: size.width, height: size.height } } as Job;
    const ports = { config: () => config, catalog, log: pino({ level: 'silent' }), signal: new AbortController().signal, save: async (change) => change(job) } as StagePorts;
    let peak = 0;
    const watch = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    start = performance.now();
    const result = await cropsStage(structuredClone(job), ports);
    const ms = performance.now() - start;
    clearInterval(watch);
    if (result.kind !== 'done') throw new Error(`crops stage: ${result.kind}`);
    result.change?.(job);
    const bytes = catalog.search('crop:*').reduce((sum, image) => sum + image.size, 0);
    catalog.close();
    const crops = job.crops!.crops;
    rows.push([
      `${size.frames} ${size.name}`, String(crops), (crops / size.frames).toFixed(1), (ms / size.frames).toFixed(0), (ms / crops).toFixed(1),
      (ms / pngMs).toFixed(2), (bytes / 2 ** 20).toFixed(1), (peak / 2 ** 20).toFixed(0),
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
for (const row of rows) console.log(row.map((cell, column) => cell.padStart(widths[column]!)).join('  '));
