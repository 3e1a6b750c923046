/**
 * catalog: every kept frame of the video enters the tag catalog, keyed by
 * the SHA-256 of its bytes, with its origin and the namespaced tags users sort
 * by (`series:`, `episode:`, `scene:`).
 * Idempotent: an image already there only has these tags merged; a restart
 * continues after the last frame recorded.
 */
import { stat } from 'node:fs/promises';
import { videoLayoutOf } from '../../daemon/library-paths.ts';
import { hashOf, keptFrames } from '../kept-frames.ts';
import type { Stage } from '../stage.ts';

const PROGRESS_SAVE_EVERY = 200;

export const catalogStage: Stage = async (job, ports) => {
  const { library } = ports.config();
  const layout = videoLayoutOf(job, library);
  const kept = await keptFrames(layout);
  let done = job.catalog?.imagesDone ?? 0;
  for (const record of kept.slice(done)) {
    if (ports.signal.aborted) return { kind: 'interrupted' };
    const { size } = await stat(record.absolute);
    ports.catalog.addImage(
      {
        hash: await hashOf(record), path: record.file, size, width: job.probe!.width, height: job.probe!.height,
        series: job.series, episode: job.episode, scene: record.scene, frame: record.frame, source: job.source,
      },
      [`series:${job.series}`, `episode:${job.episode}`, `scene:${String(record.scene).padStart(4, '0')}`],
      'pipeline',
    );
    done += 1;
    if (done % PROGRESS_SAVE_EVERY === 0) {
      const count = done;
      await ports.save((target) => {
        target.catalog = { imagesDone: count };
        target.progress = { done: count, total: kept.length };
      });
    }
  }
  return {
    kind: 'done',
    change: (target) => {
      target.catalog = { imagesDone: done };
      target.progress = { done, total: kept.length };
    },
  };
};
