/**
 * A worker's side of a faces job (queue.redis): the coordinator's library
 * mapped to this machine (queue.pathMap), the coordinator's faces settings
 * with this machine's models folder and inference providers, the detector
 * loaded once for the worker's life (the same ModelCache the stage uses),
 * and the batch's records returned, nothing written: faces.jsonl and the
 * catalog stay the coordinator's. A model this machine lacks comes back as
 * a wait; a worker that does not see the library gives the job back untried.
 *
 * API: facesJobRunner(ports) -> (queueJob) => result.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ImageWorkers } from '../adapters/image-workers.ts';
import type { QueueJobContext } from '../adapters/job-queue.ts';
import type { Config } from '../config/schema.ts';
import { CelforgeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { ModelCache } from '../models/model-cache.ts';
import { modelsAvailable } from '../models/model-availability.ts';
import { detectorModelId, DETECTOR_KINDS, loadFaceDetector } from '../stages/faces/face-detector.ts';
import { detectFrames } from '../stages/faces/faces-stage.ts';
import type { FacesJobData, FacesJobResult } from './faces-job.ts';
import { mapPath } from './path-map.ts';

export interface FacesWorkerPorts {
  /** This machine's configuration: models folder, inference providers, queue.pathMap. */
  config: () => Config;
  images: ImageWorkers;
  models: ModelCache;
  log: Logger;
  /** Told when this machine does not see the library: it should stop taking jobs (the job goes back, untried). */
  onLibraryMissing: (error: CelforgeError) => void;
}

export function facesJobRunner(ports: FacesWorkerPorts) {
  return async (queueJob: QueueJobContext<FacesJobData>): Promise<FacesJobResult> => {
    const { data } = queueJob;
    const local = ports.config();
    const library = mapPath(data.library, local.queue.pathMap);
    if (!existsSync(library)) {
      ports.onLibraryMissing(new CelforgeError('FILE_NOT_FOUND', `${library}: the library is not there on this machine (the coordinator's ${data.library}); mount it, or map the coordinator's path to this machine's in queue.pathMap`, { file: library }));
      return queueJob.putBack();
    }
    const config: Config = { ...local, library, faces: data.faces };
    const modelId = detectorModelId(config);
    if (modelId === null) throw new CelforgeError('CONFIG_INVALID', `${data.job.source}: a faces job without a face detector`);
    const available = await modelsAvailable(config, [modelId], [DETECTOR_KINDS[config.faces.detector as keyof typeof DETECTOR_KINDS]]);
    if (!available.ready) return { kind: 'wait', missing: available.missing, reason: available.reason, command: available.command };
    const log = ports.log.child({ job: data.job.id, queueJob: queueJob.id });
    // Loaded once per worker: the ONNX session is kept in the model cache, the cascade is a file.
    const detector = await loadFaceDetector(config, available.models[0]!, { images: ports.images, models: ports.models, log });
    const frames = data.frames.map((frame) => ({ ...frame, absolute: path.join(library, frame.file) }));
    const gone = frames.find((frame) => !existsSync(frame.absolute));
    if (gone) throw new CelforgeError('FILE_NOT_FOUND', `${gone.absolute}: a kept frame of ${data.job.source} is not there on this machine`, { file: gone.absolute });
    const records = [];
    // In inference batches, each reported: the coordinator shows the frames done in a batch still running.
    for (let start = 0; start < frames.length; start += config.inference.batchSize) {
      records.push(...await detectFrames(detector, frames.slice(start, start + config.inference.batchSize), config, ports.images));
      await queueJob.progress({ done: records.length, total: frames.length });
    }
    log.debug({ frames: records.length }, `${data.job.source}: faces found on frames ${frames[0]?.frame}..${frames.at(-1)?.frame}`);
    return { kind: 'done', records };
  };
}
