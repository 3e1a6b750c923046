/**
 * faces: the configured detector looks at every kept frame of the video.
 * Each frame's boxes, scores and pass/fail go to the video's faces.jsonl,
 * and its face count to the catalog (`faces:N`, source `faces`), so that
 * `faces:0` finds scenery and title cards. A missing model makes the job
 * wait, naming the command that fetches it. Pictures are prepared in the
 * image workers while the previous batch is detected; a restart continues
 * after the last frame recorded, and a change of detector starts over.
 *
 * The stage is two steps, so that a coordinator (queue.redis) can have
 * workers do the first: `detectFrames` (kept frames in, records out, nothing
 * written) and `recordFaces` (faces.jsonl and the catalog, which only the
 * coordinator writes). API: facesStage; detectFrames, recordFaces,
 * recordedPrefix, facesState.
 */
import { rm } from 'node:fs/promises';
import type { Catalog } from '../../adapters/catalog-store.ts';
import { FacesWriter, readFaces, type FaceRecord } from '../../adapters/faces-file.ts';
import type { ImageWorkers } from '../../adapters/image-workers.ts';
import type { Config } from '../../config/schema.ts';
import type { Job } from '../../daemon/job.ts';
import { rewriteJsonLines } from '../../adapters/json-lines-file.ts';
import { videoLayoutOf } from '../../daemon/library-paths.ts';
import { hashOf, keptFrames, type KeptFrame } from '../kept-frames.ts';
import { markRunning, modelsOrWait } from '../model-wait.ts';
import type { Stage } from '../stage.ts';
import { forEachBatch } from '../batches.ts';
import { roundBox } from './boxes.ts';
import { detectorModelId, DETECTOR_KINDS, finishFaces, loadFaceDetector, prepareFaces, type FaceDetector } from './face-detector.ts';

export const facesStage: Stage = async (job, ports) => {
  const config = ports.config();
  const modelId = detectorModelId(config);
  if (config.faces.detector === 'none' || modelId === null) return { kind: 'done', change: (target) => void delete target.faces };
  const available = await modelsOrWait(ports, [modelId], [DETECTOR_KINDS[config.faces.detector]]);
  if (!available.ready) return available.result;
  if (job.state !== 'running') await markRunning(ports);

  const detector = await loadFaceDetector(config, available.models[0]!, ports);
  const layout = videoLayoutOf(job, config.library);
  const frames = await keptFrames(layout);
  const done = await recordedPrefix(layout.faces, frames, detector.id);
  let withFaces = done.filter((record) => record.passed).length;
  let count = done.length;
  const writer = new FacesWriter(layout.faces);
  const progress = () => facesState(detector.id, count, withFaces, frames.length);
  let outcome;
  try {
    outcome = await forEachBatch(
      frames.slice(done.length),
      config.inference.batchSize,
      (batch) => Promise.all([prepareFaces(detector, batch.map((frame) => frame.absolute), ports.images), Promise.all(batch.map(hashOf))]),
      async (batch, [prepared, hashes]) => {
        const found = await finishFaces(detector, prepared, config);
        const records = batch.map((frame, index): FaceRecord => toRecord(frame, hashes[index]!, detector.id, found[index]!));
        await recordFaces(records, writer, ports.catalog);
        count += records.length;
        withFaces += records.filter((record) => record.passed).length;
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

/** The compute step alone: a batch of kept frames in, their records out; nothing is written. */
export async function detectFrames(detector: FaceDetector, frames: readonly KeptFrame[], config: Config, images: ImageWorkers): Promise<FaceRecord[]> {
  const [prepared, hashes] = await Promise.all([prepareFaces(detector, frames.map((frame) => frame.absolute), images), Promise.all(frames.map(hashOf))]);
  const found = await finishFaces(detector, prepared, config);
  return frames.map((frame, index) => toRecord(frame, hashes[index]!, detector.id, found[index]!));
}

/** The record step, the coordinator's alone: the face counts to the catalog, the records to faces.jsonl, synced. */
export async function recordFaces(records: readonly FaceRecord[], writer: FacesWriter, catalog: Catalog): Promise<void> {
  catalog.batch(() => {
    for (const record of records) catalog.setSourceTags(record.sha256, 'faces', [`faces:${record.faces.length}`]);
  });
  await writer.append(records);
  await writer.sync();
}

/** The ledger's faces state and progress after this many frames. */
export function facesState(detector: string, framesDone: number, framesWithFaces: number, total: number): (target: Job) => void {
  return (target) => {
    target.faces = { detector, framesDone, framesWithFaces };
    target.progress = { done: framesDone, total };
  };
}

function toRecord(frame: KeptFrame, sha256: string, detector: string, faces: FaceRecord['faces']): FaceRecord {
  return { frame: frame.frame, file: frame.file, sha256, detector, faces: faces.map(roundBox), passed: faces.length > 0 };
}

/** The records that still match the kept frames in order, by the same detector; the file is cut to them. */
export async function recordedPrefix(file: string, frames: readonly KeptFrame[], detector: string): Promise<FaceRecord[]> {
  const records = await readFaces(file);
  let matching = 0;
  while (matching < records.length && matching < frames.length && records[matching]!.frame === frames[matching]!.frame && records[matching]!.detector === detector) matching += 1;
  if (matching === records.length) return records;
  const kept = records.slice(0, matching);
  if (kept.length === 0) await rm(file, { force: true });
  else await rewriteJsonLines(file, kept);
  return kept;
}
