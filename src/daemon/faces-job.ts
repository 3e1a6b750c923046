/**
 * Face detection as queue jobs (queue.redis): one job per batch of a video's
 * kept frames (queue.batchFrames), under an id made of the video's
 * fingerprint and the batch's first frame, so enqueuing again after a
 * restart is the same job. The job carries the frames (paths relative to the
 * library), the coordinator's library path and its faces settings, so every
 * worker finds the same boxes whatever its own configuration says. The
 * result is the batch's faces.jsonl records, or the models a worker lacks.
 *
 * API: facesQueueId(job, firstFrame), FacesJobData, FacesJobResult.
 */
import type { FaceRecord } from '../adapters/faces-file.ts';
import type { Config } from '../config/schema.ts';
import type { Job } from './job.ts';
import type { MappedJobData, WorkerModelWait } from './mapped-job.ts';

export interface FacesJobData extends MappedJobData {
  /** The batch's kept frames, in frame order; `file` is relative to the library. */
  frames: { frame: number; scene: number; file: string; sha256: string | undefined }[];
  /** The coordinator's: the detector, its model, score and overlap decide the boxes. */
  faces: Config['faces'];
}

export type FacesJobResult =
  | { kind: 'done'; records: FaceRecord[] }
  | WorkerModelWait;

/** One queue job per batch: enqueued again, it is the same job (BullMQ ids may not contain ":" or be all digits). */
export function facesQueueId(job: Pick<Job, 'id'>, firstFrame: number): string {
  return `faces-${job.id}-${firstFrame}`;
}
