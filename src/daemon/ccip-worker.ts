/**
 * A worker's side of a CCIP features job (queue.redis), through
 * runMappedJob (mapped-job.ts): the coordinator's CCIP model id and batch
 * size with this machine's models folder and inference providers, the model
 * loaded once for the worker's life (the model cache, as the characters
 * stage loads it), and the crops' features returned as numbers. Nothing is
 * written: the features, clusters and names stay the coordinator's.
 *
 * API: ccipJobRunner(ports) -> (queueJob) => result.
 */
import path from 'node:path';
import type { QueueJobContext } from '../adapters/job-queue.ts';
import { loadCcipFor } from '../stages/characters/characters-stage.ts';
import { featuresToJson, type CcipJobData, type CcipJobResult } from './ccip-job.ts';
import { inInferenceBatches, runMappedJob, type BatchWorkerPorts } from './mapped-job.ts';

export function ccipJobRunner(ports: BatchWorkerPorts) {
  return (queueJob: QueueJobContext<CcipJobData>): Promise<CcipJobResult> => runMappedJob(queueJob, ports, {
    config: (local, library, data) => ({ ...local, library, inference: { ...local.inference, batchSize: data.inference.batchSize } }),
    models: (_config, data) => ({ ids: [data.model], kinds: ['ccip'] }),
    files: (data) => data.crops.map((crop) => crop.file),
    what: 'a crop',
    run: async ({ data, config, library, models, log }) => {
      const model = await loadCcipFor(config, models[0]!, { images: ports.images, models: ports.models, log });
      const files = data.crops.map((crop) => path.join(library, crop.file));
      const features = await inInferenceBatches(queueJob, files, config.inference.batchSize, async (batch) => featuresToJson(await model.features(batch)));
      log.debug({ crops: features.length }, `${data.job.source}: CCIP features of ${features.length} crops`);
      return { kind: 'done', model: model.id, features };
    },
  });
}
