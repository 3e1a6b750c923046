/**
 * Tagging as queue jobs (queue.redis): one job per batch of a video's
 * pictures (queue.batchFrames kept frames, then crops), under an id made of
 * the video's id and the batch's first picture (`tags-<job>-f<frame>`,
 * `tags-<job>-c<crop index>`), so enqueuing again after a restart is the
 * same job. The job carries what a worker needs to find the same tags as the
 * local stage: the pictures (paths relative to the coordinator's library),
 * what the face gates know of each (computed by the coordinator from
 * faces.jsonl), and the coordinator's tags settings and inference batch
 * size. The result is each picture's tags, with its SHA-256 where the worker
 * had to read the file for it, or the models a worker lacks.
 *
 * API: tagsQueueId(job, kind, first), TagsJobData, TagsJobResult.
 */
import type { Config } from '../config/schema.ts';
import type { PictureFaces, PictureTags } from '../stages/tags/tagging.ts';
import type { Job } from './job.ts';
import type { MappedJobData, WorkerModelWait } from './mapped-job.ts';

export interface TagsJobData extends MappedJobData {
  /** In the stage's order; `file` is relative to the library; `sha256` where the coordinator knows it. */
  pictures: { file: string; sha256?: string; faces: PictureFaces | null }[];
  /** The coordinator's: taggers, thresholds, blacklist and gates decide the tags. */
  tags: Config['tags'];
  /** Pictures per model run, as the coordinator's local stage would run them. */
  inference: { batchSize: number };
}

export type TagsJobResult =
  | { kind: 'done'; pictures: { tags: PictureTags; sha256?: string }[] }
  | WorkerModelWait;

/** A batch of frames by its first frame's number, of crops by its first crop's place in crops.jsonl (BullMQ ids may not contain ":" or be all digits). */
export function tagsQueueId(job: Pick<Job, 'id'>, kind: 'frame' | 'crop', first: number): string {
  return `tags-${job.id}-${kind === 'frame' ? 'f' : 'c'}${first}`;
}
