/**
 * faces: the configured detector looks at every kept frame of the video.
 * Each frame's boxes, scores and pass/fail go to the video's faces.jsonl,
 * and its face count to the catalog (`faces:N`, source `faces`), so that
 * `faces:0` finds scenery and title cards. A missing model makes the job
 * wait, naming the command that fetches it. Pictures are prepared in the
 * image workers while the previous batch is detected; a restart continues
 * after the last frame recorded, and a change of detector starts over.
 */
import { rm } from 'node:fs/promises';
import { FacesWriter, readFaces, type FaceRecord } from '../../adapters/faces-file.ts';
import { rewriteJsonLines } from '../../adapters/json-lines-file.ts';
import { videoLayoutOf } from '../../daemon/library-paths.ts';
import { hashOf, keptFrames, type KeptFrame } from '../kept-frames.ts';
import { markRunning, modelsOrWait } from '../model-wait.ts';
import type { Stage } from '../stage.ts';
import { forEachBatch } from '../batches.ts';
import { roundBox } from './boxes.ts';
import { detectorModelId, DETECTOR_KINDS, finishFaces, loadFaceDetector, prepareFaces } from './face-detector.ts';

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
  const progress = () => {
    const [framesDone, framesWithFaces] = [count, withFaces];
    return (target: typeof job) => {
      target.faces = { detector: detector.id, framesDone, framesWithFaces };
      target.progress = { done: framesDone, total: frames.length };
    };
  };
  let outcome;
  try {
    outcome = await forEachBatch(
      frames.slice(done.length),
      config.inference.batchSize,
      (batch) => Promise.all([prepareFaces(detector, batch.map((frame) => frame.absolute), ports.images), Promise.all(batch.map(hashOf))]),
      async (batch, [prepared, hashes]) => {
        const found = await finishFaces(detector, prepared, config);
        const records = batch.map((frame, index): FaceRecord => toRecord(frame, hashes[index]!, detector.id, found[index]!));
        ports.catalog.batch(() => {
          for (const record of records) ports.catalog.setSourceTags(record.sha256, 'faces', [`faces:${record.faces.length}`]);
        });
        await writer.append(records);
        await writer.sync();
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

function toRecord(frame: KeptFrame, sha256: string, detector: string, faces: FaceRecord['faces']): FaceRecord {
  return { frame: frame.frame, file: frame.file, sha256, detector, faces: faces.map(roundBox), passed: faces.length > 0 };
}

/** The records that still match the kept frames in order, by the same detector; the file is cut to them. */
async function recordedPrefix(file: string, frames: readonly KeptFrame[], detector: string): Promise<FaceRecord[]> {
  const records = await readFaces(file);
  let matching = 0;
  while (matching < records.length && matching < frames.length && records[matching]!.frame === frames[matching]!.frame && records[matching]!.detector === detector) matching += 1;
  if (matching === records.length) return records;
  const kept = records.slice(0, matching);
  if (kept.length === 0) await rm(file, { force: true });
  else await rewriteJsonLines(file, kept);
  return kept;
}
