/**
 * The coordinator's tags stage (queue.redis): instead of tagging, it
 * enqueues the video's kept frames, then its crops, in batches of
 * queue.batchFrames (tags-job.ts), each picture with what the face gates
 * know of it, and records the tags the workers return in the stage's order
 * (remote-batches.ts) with the local stage's record step (TagsRecorder: the
 * catalog's sources, the character tags, the captions and the counts in
 * job.tags, written only here). The job's counts are the resume point: a
 * result delivered again, or found again after a restart, records only the
 * pictures after them, which is nothing.
 *
 * API: remoteTagsStage(queue, pollMs?) -> Stage.
 */
import type { JobQueue } from '../adapters/job-queue.ts';
import { CelforgeError } from '../errors.ts';
import type { Stage } from '../stages/stage.ts';
import { picturesToTag, TagsRecorder, type TagPicture } from '../stages/tags/tags-stage.ts';
import { chunksOf, POLL_MS, runRemoteBatches, type RemoteBatch } from './remote-batches.ts';
import { tagsQueueId, type TagsJobData, type TagsJobResult } from './tags-job.ts';

export type TagsQueue = JobQueue<TagsJobData, TagsJobResult>;

type TagsBatch = RemoteBatch<TagsJobData> & { pictures: TagPicture[] };

export function remoteTagsStage(queue: TagsQueue, pollMs = POLL_MS): Stage {
  return async (job, ports) => {
    const config = ports.config();
    if (config.tags.taggers.length === 0) return { kind: 'done', change: (target) => void delete target.tags };
    const { frames, crops } = await picturesToTag(job, config);
    const recorder = new TagsRecorder(job, frames.length, crops.length, config, ports);
    const size = config.queue.batchFrames;
    const batchesOf = (pictures: TagPicture[], kind: 'frame' | 'crop', recorded: number, offset: number) => chunksOf(pictures, size).map(({ start, items }): TagsBatch => ({
      id: tagsQueueId(job, kind, kind === 'frame' ? items[0]!.frame : start),
      label: kind === 'frame' ? `frames ${items[0]!.frame}..${items.at(-1)!.frame}` : `crops ${start}..${start + items.length - 1}`,
      data: {
        library: config.library, job: { id: job.id, source: job.source }, tags: config.tags, inference: { batchSize: config.inference.batchSize },
        pictures: items.map(({ file, sha256, faces }) => (sha256 === undefined ? { file, faces } : { file, sha256, faces })),
      },
      pictures: items,
      size: items.length,
      skip: Math.min(items.length, Math.max(0, recorded - start)),
      offset: offset + start,
    }));
    const batches = [...batchesOf(frames, 'frame', recorder.framesDone, 0), ...batchesOf(crops, 'crop', recorder.cropsDone, frames.length)];
    const outcome = await runRemoteBatches({
      queue, job, ports, pollMs, work: 'tagging', batches, total: frames.length + crops.length,
      record: async (batch, result: Extract<TagsJobResult, { kind: 'done' }>) => {
        if (result.pictures.length !== batch.size) {
          throw new CelforgeError('INTERNAL', `${job.source}: a worker's tags for ${batch.label} are for ${result.pictures.length} pictures, not ${batch.size}`, { file: job.source });
        }
        const pictures = batch.pictures.slice(batch.skip);
        const results = result.pictures.slice(batch.skip);
        const hashes = pictures.map((picture, index) => {
          const hash = picture.sha256 ?? results[index]!.sha256;
          if (hash === undefined) throw new CelforgeError('INTERNAL', `${job.source}: a worker's tags for ${picture.file} came without the picture's SHA-256`, { file: job.source });
          return hash;
        });
        await recorder.record(pictures, hashes, results.map((picture) => picture.tags));
      },
    });
    if (outcome.kind !== 'recorded') return outcome;
    return { kind: 'done', change: recorder.change() };
  };
}
