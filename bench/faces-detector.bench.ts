/**
 * Does FaceBoxes (faces.detector 'faceboxes', the default) find the faces of
 * 1080p and 720p frames, and at what cost against the LBP cascade?
 *
 * Frames (test/fixtures/face-frames.ts, seeded): one to three of grid-36's
 * pictures, each scaled so its faces are about 40-250 px tall, on painted
 * backgrounds; and faceless scenery (title cards, skies, rooms). The ground
 * truth is grid-36.faces.json (hysts/anime-face-detector's boxes, not hand
 * labels: a face it did not box counts against a detector that finds it).
 * A detection matches a face at IoU >= 0.3, greedy by score. Both detectors
 * run as the faces stage runs them: the frames as PNG files, pictures
 * prepared in 2 image worker threads while the previous batch of 8 is
 * detected (forEachBatch), models loaded before the clock starts. Time is
 * per frame over all frames of a size, faceless ones included; the ratio
 * is against the cascade measured in the same run, as the machine may be
 * shared.
 *
 * What it does not show: broadcast frames (grain, motion blur, faces cut by
 * the frame's edge, profiles), nor GPU times.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createImageWorkers } from '../src/adapters/image-workers.ts';
import { validateConfig } from '../src/config/load.ts';
import { modelsAvailable } from '../src/models/model-availability.ts';
import { ModelCache } from '../src/models/model-cache.ts';
import { forEachBatch } from '../src/stages/batches.ts';
import type { FaceBox } from '../src/stages/faces/boxes.ts';
import { detectorModelId, DETECTOR_KINDS, finishFaces, loadFaceDetector, prepareFaces } from '../src/stages/faces/face-detector.ts';
import { makeFaceFrame, scoreFrames, type FaceFrame } from '../test/fixtures/face-frames.ts';

const SIZES = [
  { name: '1080p', width: 1920, height: 1080, withFaces: 40, faceless: 20 },
  { name: '720p', width: 1280, height: 720, withFaces: 20, faceless: 10 },
];
const DETECTORS = [
  { name: 'cascade (baseline)', faces: { detector: 'cascade' } },
  { name: 'faceboxes, S=1536', faces: { detector: 'faceboxes', model: 'anime-faceboxes-1536' } },
  { name: 'faceboxes, S=1024', faces: { detector: 'faceboxes', model: 'anime-faceboxes-1024' } },
] as const;
const WORKERS = 2;
const BATCH = 8;

const work = mkdtempSync(path.join(os.tmpdir(), 'celforge-bench-faces-detector-'));
const images = createImageWorkers(WORKERS);
try {
  console.log(`${os.availableParallelism()} CPUs, load average ${os.loadavg().map((load) => load.toFixed(1)).join(' ')}; ${WORKERS} image workers, batches of ${BATCH}`);
  const models = new ModelCache();
  const rows: string[][] = [];
  for (const size of SIZES) {
    const frames: (FaceFrame & { file: string })[] = [];
    for (let index = 0; index < size.withFaces + size.faceless; index += 1) {
      const pictures = index < size.withFaces ? 1 + (index % 3) : 0;
      const frame = await makeFaceFrame({ width: size.width, height: size.height, seed: 1000 + index, pictures });
      const file = path.join(work, `${size.name}-${index}.png`);
      writeFileSync(file, frame.png);
      frames.push({ ...frame, file });
    }
    const totalFaces = frames.reduce((sum, frame) => sum + frame.faces.length, 0);
    let cascadeSeconds = 0;
    for (const { name, faces } of DETECTORS) {
      const config = validateConfig({ faces, inference: { batchSize: BATCH, workers: WORKERS } }, 'bench', work);
      const available = await modelsAvailable(config, [detectorModelId(config)!], [DETECTOR_KINDS[faces.detector]]);
      if (!available.ready) throw new Error(available.reason);
      const detector = await loadFaceDetector(config, available.models[0]!, { images, models, log: pino({ level: 'silent' }) });
      // One warm-up batch outside the clock: worker start-up, opencv.js and ONNX Runtime's first run.
      await finishFaces(detector, await prepareFaces(detector, frames.slice(0, 2).map((frame) => frame.file), images), config);
      const found: FaceBox[][] = [];
      const start = performance.now();
      await forEachBatch(frames, BATCH, (batch) => prepareFaces(detector, batch.map((frame) => frame.file), images), async (_, prepared) => {
        found.push(...(await finishFaces(detector, prepared, config)));
      });
      const seconds = (performance.now() - start) / 1000 / frames.length;
      if (faces.detector === 'cascade') cascadeSeconds = seconds;
      const { found: matched, falsePositives } = scoreFrames(found, frames.map((frame) => frame.faces));
      const facelessWithBox = frames.filter((frame, index) => frame.faces.length === 0 && found[index]!.length > 0).length;
      rows.push([
        size.name, name, `${size.withFaces} + ${size.faceless}`, String(totalFaces),
        (matched / totalFaces).toFixed(3), (matched / Math.max(1, matched + falsePositives)).toFixed(3),
        `${facelessWithBox} of ${size.faceless}`, seconds.toFixed(3), (seconds / cascadeSeconds).toFixed(2),
      ]);
    }
  }
  const header = ['frames', 'detector', 'frames with faces + faceless', 'faces', 'recall', 'precision', 'faceless frames with a box', 's/frame', 'time / cascade'];
  console.log(`\n| ${header.join(' | ')} |`);
  console.log(`| ${header.map(() => '---').join(' | ')} |`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  console.log('\n(IoU >= 0.3; s/frame on this machine as loaded now; the ratio is what compares)');
} finally {
  await images.close();
  rmSync(work, { recursive: true, force: true });
}
