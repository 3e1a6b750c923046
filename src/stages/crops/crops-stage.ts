/**
 * crops: every face the faces stage found on a kept frame gives crops of the
 * configured kinds (crop-geometry.ts), cut losslessly from the frame's pixels
 * and written as PNGs under `<video>/crops/<kind>/`. Each enters the catalog
 * as an image of its own, with its frame's series, episode, scene and frame,
 * its origin (the frame's hash and the face box) and `crop:<kind>` (source
 * `crops`); each is recorded in the video's crops.jsonl. A crop whose bytes
 * are already in the catalog under another path, or already recorded, is not
 * written again. A restart does the last recorded frame again (its lines may
 * have been cut short) and continues from there.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { CropsWriter, encodeCrop, readCrops, readFramePixels, type CropKind, type CropRecord, type PixelBox } from '../../adapters/crops-file.ts';
import { readFaces, type FaceRecord } from '../../adapters/faces-file.ts';
import { writeImageFile } from '../../adapters/image-writer.ts';
import { rewriteJsonLines } from '../../adapters/json-lines-file.ts';
import type { Config } from '../../config/schema.ts';
import type { Job } from '../../daemon/job.ts';
import { videoLayoutOf, type VideoLayout } from '../../daemon/library-paths.ts';
import { forEachBatch } from '../batches.ts';
import { keptFrames, type KeptFrame } from '../kept-frames.ts';
import type { Stage, StagePorts } from '../stage.ts';
import { cropRect, type CropGeometry } from './crop-geometry.ts';

export const cropsStage: Stage = async (job, ports) => {
  const config = ports.config();
  if (!config.crops.enabled || config.faces.detector === 'none') return { kind: 'done', change: (target) => void delete target.crops };
  const layout = videoLayoutOf(job, config.library);
  const frames = await keptFrames(layout);
  const facesByFrame = new Map((await readFaces(layout.faces)).filter((record) => record.passed).map((record) => [record.frame, record]));
  const recorded = await recordedFrames(layout.crops);
  const seen = new Set(recorded.map((record) => record.sha256));
  const lastFrame = recorded.at(-1)?.frame ?? -1;
  let framesDone = frames.findIndex((frame) => frame.frame > lastFrame);
  if (framesDone < 0) framesDone = frames.length;
  let count = recorded.length;
  const progress = () => {
    const state = { framesDone, crops: count };
    return (target: Job) => {
      target.crops = { ...state };
      target.progress = { done: state.framesDone, total: frames.length };
    };
  };
  const writer = new CropsWriter(layout.crops);
  let outcome;
  try {
    outcome = await forEachBatch(
      frames.slice(framesDone),
      config.inference.batchSize,
      (batch) => Promise.all(batch.map((frame) => {
        const faces = facesByFrame.get(frame.frame);
        return faces ? encodeFrameCrops(frame, faces, config) : [];
      })),
      async (batch, encoded) => {
        for (const [index, frame] of batch.entries()) {
          const written = await writeFrameCrops(frame, encoded[index]!, layout, ports, seen);
          addToCatalog(written, job, ports);
          await writer.append(written.map((crop) => crop.record));
          count += written.length;
        }
        await writer.sync();
        framesDone += batch.length;
        await ports.save(progress());
      },
      ports.signal,
    );
  } finally {
    await writer.close();
  }
  if (outcome === 'aborted') return { kind: 'interrupted' };
  return { kind: 'done', change: progress() };
};

function cropGeometryOf(config: Config): CropGeometry {
  return { faceMargin: config.crops.face.margin, upperBody: config.crops.upperBody, minSize: config.crops.minSize };
}

interface WrittenCrop {
  record: CropRecord;
  bytes: number;
}

interface EncodedCrop {
  frameSha256: string;
  faceIndex: number;
  kind: CropKind;
  box: PixelBox;
  rect: PixelBox;
  bytes: Buffer;
  sha256: string;
}

/** A frame's crops as PNG bytes, face by face, kind by kind; run for the next batch while this one is written (sharp's threads). */
async function encodeFrameCrops(frame: KeptFrame, faces: FaceRecord, config: Config): Promise<EncodedCrop[]> {
  const geometry = cropGeometryOf(config);
  const pixels = await readFramePixels(frame.absolute);
  const planned = faces.faces.flatMap((face, faceIndex) => config.crops.kinds.flatMap((kind) => {
    const rect = cropRect(kind, face, pixels, geometry);
    return rect === null ? [] : [{ frameSha256: faces.sha256, faceIndex, kind, rect, box: [face.x, face.y, face.width, face.height] as PixelBox }];
  }));
  const encoded = await Promise.all(planned.map((crop) => encodeCrop(pixels, crop.rect, config.extract.pngCompression)));
  return planned.map((crop, index) => ({ ...crop, ...encoded[index]! }));
}

/** Writes the crops whose bytes are new, in order; `seen` gains their hashes. */
async function writeFrameCrops(
  frame: KeptFrame, crops: readonly EncodedCrop[], layout: VideoLayout, ports: StagePorts, seen: Set<string>,
): Promise<WrittenCrop[]> {
  const written: WrittenCrop[] = [];
  const writes: Promise<void>[] = [];
  for (const { frameSha256, faceIndex, kind, box, rect, bytes, sha256 } of crops) {
    const file = layout.cropFile(kind, frame.scene, frame.frame, faceIndex);
    const known = ports.catalog.get(sha256);
    if (seen.has(sha256) || (known && known.path !== file)) continue;
    seen.add(sha256);
    // Synced: crops.jsonl will vouch for it.
    writes.push(writeImageFile(path.join(layout.library, file), bytes, true));
    const record: CropRecord = {
      frame: frame.frame, scene: frame.scene, frameFile: frame.file, frameSha256, faceIndex, kind, box, rect, file, sha256, width: rect[2], height: rect[3],
    };
    written.push({ record, bytes: bytes.length });
  }
  await Promise.all(writes);
  return written;
}

function addToCatalog(written: readonly WrittenCrop[], job: Job, ports: StagePorts): void {
  ports.catalog.batch(() => {
    for (const { record, bytes } of written) {
      ports.catalog.addImage(
        {
          hash: record.sha256, path: record.file, size: bytes, width: record.width, height: record.height,
          series: job.series, episode: job.episode, scene: record.scene, frame: record.frame, source: job.source,
          origin: { hash: record.frameSha256, box: record.box },
        },
        [`series:${job.series}`, `episode:${job.episode}`, `scene:${String(record.scene).padStart(4, '0')}`],
        'pipeline',
      );
      ports.catalog.setSourceTags(record.sha256, 'crops', [`crop:${record.kind}`]);
    }
  });
}

/**
 * The records of every recorded frame but the last, which is done again: a
 * crash may have cut its lines short. The file is cut to them.
 */
async function recordedFrames(file: string): Promise<CropRecord[]> {
  const records = await readCrops(file);
  if (records.length === 0) return records;
  const last = records.at(-1)!.frame;
  const kept = records.filter((record) => record.frame !== last);
  if (kept.length === 0) await rm(file, { force: true });
  else await rewriteJsonLines(file, kept);
  return kept;
}
