/**
 * The coordinator's faces stage (queue.redis): instead of detecting, it
 * enqueues the video's kept frames in batches of queue.batchFrames
 * (faces-job.ts) and records the results the workers return in frame order
 * (remote-batches.ts), with the same record step as the local stage
 * (faces.jsonl and the catalog, written only here). A batch's records
 * already in faces.jsonl (a result delivered again, or a coordinator that
 * died between recording and removing the queue job) are skipped; a restart
 * continues after the last frame recorded.
 *
 * API: remoteFacesStage(queue, pollMs?) -> Stage.
 */
import { FacesWriter } from '../adapters/faces-file.ts';
import type { JobQueue } from '../adapters/job-queue.ts';
import { CelforgeError } from '../errors.ts';
import { detectorModelId } from '../stages/faces/face-detector.ts';
import { facesState, recordedPrefix, recordFaces } from '../stages/faces/faces-stage.ts';
import { keptFrames } from '../stages/kept-frames.ts';
import type { Stage } from '../stages/stage.ts';
import { facesQueueId, type FacesJobData, type FacesJobResult } from './faces-job.ts';
import { videoLayoutOf } from './library-paths.ts';
import { chunksOf, POLL_MS, runRemoteBatches, type RemoteBatch } from './remote-batches.ts';

export type FacesQueue = JobQueue<FacesJobData, FacesJobResult>;

export function remoteFacesStage(queue: FacesQueue, pollMs = POLL_MS): Stage {
  return async (job, ports) => {
    const config = ports.config();
    const detector = detectorModelId(config);
    if (config.faces.detector === 'none' || detector === null) return { kind: 'done', change: (target) => void delete target.faces };
    const layout = videoLayoutOf(job, config.library);
    const frames = await keptFrames(layout);
    const recorded = await recordedPrefix(layout.faces, frames, detector);
    let count = recorded.length;
    let withFaces = recorded.filter((record) => record.passed).length;
    const progress = () => facesState(detector, count, withFaces, frames.length);
    const batches = chunksOf(frames, config.queue.batchFrames).map(({ start, items }): RemoteBatch<FacesJobData> => ({
      id: facesQueueId(job, items[0]!.frame),
      label: `frames ${items[0]!.frame}..${items.at(-1)!.frame}`,
      data: {
        library: config.library, job: { id: job.id, source: job.source }, faces: config.faces,
        frames: items.map(({ frame, scene, file, sha256 }) => ({ frame, scene, file, sha256 })),
      },
      size: items.length,
      skip: Math.min(items.length, Math.max(0, count - start)),
      offset: start,
    }));

    const writer = new FacesWriter(layout.faces);
    try {
      const outcome = await runRemoteBatches({
        queue, job, ports, pollMs, work: 'face detection', batches, total: frames.length,
        record: async (batch, result: Extract<FacesJobResult, { kind: 'done' }>) => {
          // Only what faces.jsonl does not hold yet: a result delivered again records nothing more.
          const fresh = result.records.slice(batch.skip);
          const expected = batch.data.frames.slice(batch.skip).map((frame) => frame.frame);
          if (fresh.map((record) => record.frame).join() !== expected.join()) {
            throw new CelforgeError('INTERNAL', `${job.source}: a worker's faces for ${batch.label} do not match the kept frames`, { file: job.source });
          }
          await recordFaces(fresh, writer, ports.catalog);
          count += fresh.length;
          withFaces += fresh.filter((record) => record.passed).length;
          await ports.save(progress());
        },
      });
      if (outcome.kind !== 'recorded') return outcome;
    } finally {
      await writer.close();
    }
    return { kind: 'done', change: progress() };
  };
}
