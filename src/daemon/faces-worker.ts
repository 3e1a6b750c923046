/**
 * A worker's side of a faces job (queue.redis), through runMappedJob
 * (mapped-job.ts): the coordinator's faces settings with this machine's
 * models folder and inference providers, the detector loaded once for the
 * worker's life (the same ModelCache the stage uses), and the batch's
 * records returned, nothing written: faces.jsonl and the catalog stay the
 * coordinator's.
 *
 * API: facesJobRunner(ports) -> (queueJob) => result.
 */
import path from 'node:path';
import type { QueueJobContext } from '../adapters/job-queue.ts';
import { CelforgeError } from '../errors.ts';
import { detectorModelId, DETECTOR_KINDS, loadFaceDetector } from '../stages/faces/face-detector.ts';
import { detectFrames } from '../stages/faces/faces-stage.ts';
import type { FacesJobData, FacesJobResult } from './faces-job.ts';
import { inInferenceBatches, runMappedJob, type BatchWorkerPorts } from './mapped-job.ts';

export type FacesWorkerPorts = BatchWorkerPorts;

export function facesJobRunner(ports: FacesWorkerPorts) {
  return (queueJob: QueueJobContext<FacesJobData>): Promise<FacesJobResult> => runMappedJob(queueJob, ports, {
    config: (local, library, data) => ({ ...local, library, faces: data.faces }),
    models: (config, data) => {
      const modelId = detectorModelId(config);
      if (modelId === null) throw new CelforgeError('CONFIG_INVALID', `${data.job.source}: a faces job without a face detector`);
      return { ids: [modelId], kinds: [DETECTOR_KINDS[config.faces.detector as keyof typeof DETECTOR_KINDS]] };
    },
    files: (data) => data.frames.map((frame) => frame.file),
    what: 'a kept frame',
    run: async ({ data, config, library, models, log }) => {
      // Loaded once per worker: the ONNX session is kept in the model cache, the cascade is a file.
      const detector = await loadFaceDetector(config, models[0]!, { images: ports.images, models: ports.models, log });
      const frames = data.frames.map((frame) => ({ ...frame, absolute: path.join(library, frame.file) }));
      const records = await inInferenceBatches(queueJob, frames, config.inference.batchSize, (batch) => detectFrames(detector, batch, config, ports.images));
      log.debug({ frames: records.length }, `${data.job.source}: faces found on frames ${frames[0]?.frame}..${frames.at(-1)?.frame}`);
      return { kind: 'done', records };
    },
  });
}
