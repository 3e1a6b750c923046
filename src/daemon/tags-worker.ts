/**
 * A worker's side of a tags job (queue.redis), through runMappedJob
 * (mapped-job.ts): the coordinator's tags settings and batch size with this
 * machine's models folder and inference providers, the taggers loaded once
 * for the worker's life (the model cache), the pictures prepared and tagged
 * as the local stage does (`prepareForTaggers` + `tagPrepared`, the face
 * gates fed with what the coordinator found), and each picture's tags
 * returned, with its SHA-256 where the job did not carry it. Nothing is
 * written: the catalog and the captions stay the coordinator's.
 *
 * API: tagsJobRunner(ports) -> (queueJob) => result.
 */
import path from 'node:path';
import { sha256Of } from '../adapters/file-hash.ts';
import type { QueueJobContext } from '../adapters/job-queue.ts';
import { loadTaggers, prepareForTaggers } from '../inference/taggers.ts';
import { forEachBatch } from '../stages/batches.ts';
import { tagPrepared } from '../stages/tags/tagging.ts';
import { runMappedJob, type BatchWorkerPorts } from './mapped-job.ts';
import type { TagsJobData, TagsJobResult } from './tags-job.ts';

export function tagsJobRunner(ports: BatchWorkerPorts) {
  return (queueJob: QueueJobContext<TagsJobData>): Promise<TagsJobResult> => runMappedJob(queueJob, ports, {
    config: (local, library, data) => ({ ...local, library, tags: data.tags, inference: { ...local.inference, batchSize: data.inference.batchSize } }),
    models: (config) => ({ ids: config.tags.taggers, kinds: ['tagger'] }),
    files: (data) => data.pictures.map((picture) => picture.file),
    what: 'a picture',
    run: async ({ data, config, library, models, log }) => {
      const taggers = await loadTaggers(config, models, { images: ports.images, models: ports.models, log });
      const pictures = data.pictures.map((picture) => ({ ...picture, absolute: path.join(library, picture.file) }));
      const results: Extract<TagsJobResult, { kind: 'done' }>['pictures'] = [];
      // In inference batches, each reported: the coordinator shows the pictures done in a batch still running.
      const outcome = await forEachBatch(
        pictures,
        config.inference.batchSize,
        (batch) => Promise.all([
          prepareForTaggers(taggers, batch.map((picture) => picture.absolute), ports.images),
          Promise.all(batch.map((picture) => (picture.sha256 === undefined ? sha256Of(picture.absolute) : undefined))),
        ]),
        async (batch, [inputs, hashes]) => {
          const tags = await tagPrepared(taggers, inputs, batch.map((picture) => picture.faces), config);
          tags.forEach((found, index) => results.push(hashes[index] === undefined ? { tags: found } : { tags: found, sha256: hashes[index] }));
          await queueJob.progress({ done: results.length, total: pictures.length });
        },
        queueJob.signal,
      );
      // Another worker may own the job now (its lock was lost): what this one found would be dropped.
      if (outcome === 'aborted') queueJob.signal.throwIfAborted();
      log.debug({ pictures: results.length }, `${data.job.source}: ${results.length} pictures tagged`);
      return { kind: 'done', pictures: results };
    },
  });
}
