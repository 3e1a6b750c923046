/**
 * The coordinator's characters stage (queue.redis): the local stage
 * (characters-stage.ts) with its feature step done by the workers. The
 * video's crops go in batches of queue.batchFrames, each job carrying the
 * batch's crops whose features are not stored (ccip-job.ts); the features
 * the workers return are stored in order (remote-batches.ts) through the
 * stage's own record step;
 * the clusters and names are then made here, as the local stage makes them
 * (the coordinator needs the CCIP model for that). Storing a crop's features
 * again writes the same bytes, and a restart enqueues only the crops still
 * without features (a batch with none left leaves the queue).
 *
 * API: remoteCharactersStage(queue, pollMs?) -> Stage.
 */
import type { CropRecord } from '../adapters/crops-file.ts';
import type { JobQueue } from '../adapters/job-queue.ts';
import { CelforgeError } from '../errors.ts';
import { charactersStageWith } from '../stages/characters/characters-stage.ts';
import type { Stage } from '../stages/stage.ts';
import { ccipQueueId, featuresFromJson, type CcipJobData, type CcipJobResult } from './ccip-job.ts';
import { chunksOf, POLL_MS, runRemoteBatches, type RemoteBatch } from './remote-batches.ts';

export type CcipQueue = JobQueue<CcipJobData, CcipJobResult>;

type CcipBatch = RemoteBatch<CcipJobData> & { crops: CropRecord[] };

export function remoteCharactersStage(queue: CcipQueue, pollMs = POLL_MS): Stage {
  return charactersStageWith(async (work, ports) => {
    const config = ports.config();
    const { job } = work;
    const missing = new Set(work.missing);
    let before = work.storedBefore;
    // In batches of all the video's crops, so that a batch keeps its id whatever is stored; one with nothing missing leaves the queue.
    const batches = chunksOf(work.crops, config.queue.batchFrames).map(({ start, items }): CcipBatch => {
      const todo = items.filter((crop) => missing.has(crop));
      const offset = before;
      before += todo.length;
      return {
        id: ccipQueueId(job, start),
        label: `crops ${start}..${start + items.length - 1}`,
        data: {
          library: config.library, job: { id: job.id, source: job.source }, model: config.characters.model,
          inference: { batchSize: config.inference.batchSize }, crops: todo.map((crop) => ({ file: crop.file })),
        },
        crops: todo,
        size: todo.length || items.length,
        skip: todo.length ? 0 : items.length,
        offset,
      };
    });
    const outcome = await runRemoteBatches({
      queue, job, ports, pollMs, work: 'CCIP features', batches, total: work.crops.length,
      record: async (batch, result: Extract<CcipJobResult, { kind: 'done' }>) => {
        const features = featuresFromJson(result.features);
        const wrong = result.model !== work.model.id ? `are of model ${result.model}, not ${work.model.id}`
          : features.length !== batch.size ? `are ${features.length}, not ${batch.size}`
          : features.some((feature) => feature.length !== work.model.featureSize) ? `are not all ${work.model.featureSize} values long` : null;
        if (wrong) throw new CelforgeError('INTERNAL', `${job.source}: a worker's CCIP features for ${batch.label} ${wrong}`, { file: job.source });
        await work.record(batch.crops, features);
      },
    });
    return outcome.kind === 'recorded' ? null : outcome;
  });
}
