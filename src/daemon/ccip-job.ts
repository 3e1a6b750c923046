/**
 * CCIP features as queue jobs (queue.redis): one job per batch of
 * queue.batchFrames of a video's crops, under an id made of the video's id
 * and the batch's first crop's place among the video's crops
 * (`ccip-<job>-c<index>`), so enqueuing again after a restart is the same
 * job. The job carries the batch's crops whose features are not stored
 * (paths relative to the coordinator's library), the coordinator's CCIP
 * model and inference batch size. The result is each crop's feature vector as plain numbers (each a
 * float32 value, so `Float32Array.from` gives back the exact vector), with
 * the id of the model folder that computed them, or the models a worker
 * lacks.
 *
 * API: ccipQueueId(job, firstCrop), CcipJobData, CcipJobResult, featuresToJson, featuresFromJson.
 */
import type { Job } from './job.ts';
import type { MappedJobData, WorkerModelWait } from './mapped-job.ts';

export interface CcipJobData extends MappedJobData {
  /** `file` is relative to the library. */
  crops: { file: string }[];
  /** characters.model: the manifest id of the CCIP model. */
  model: string;
  /** Crops per model run, as the coordinator's local stage would run them. */
  inference: { batchSize: number };
}

export type CcipJobResult =
  | { kind: 'done'; model: string; features: number[][] }
  | WorkerModelWait;

export function ccipQueueId(job: Pick<Job, 'id'>, firstCrop: number): string {
  return `ccip-${job.id}-c${firstCrop}`;
}

/** JSON writes each float32 value (held as a double) with the digits that read back as the same double. */
export function featuresToJson(features: readonly Float32Array[]): number[][] {
  return features.map((feature) => Array.from(feature));
}

export function featuresFromJson(features: readonly number[][]): Float32Array[] {
  return features.map((feature) => Float32Array.from(feature));
}
