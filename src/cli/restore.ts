/**
 * `celforge restore <video> <frame...>`: brings duplicates back as kept
 * frames, at full resolution (see src/frames/restore-frames.ts), and into
 * the catalog.
 */
import path from 'node:path';
import { restoreFrames } from '../frames/restore-frames.ts';
import type { GlobalOptions } from './context.ts';
import { withCatalog } from './catalog-context.ts';
import { findJob } from './find-job.ts';

export async function restoreCommand(video: string, frameArgs: string[], options: GlobalOptions): Promise<void> {
  await withCatalog(options, async (catalog, config) => {
    const job = await findJob(video, config);
    for (const outcome of await restoreFrames(job, frameArgs, config, catalog)) {
      const file = path.join(config.library, outcome.file);
      process.stdout.write(outcome.alreadyKept ? `frame ${outcome.frame}: already kept (${file})\n` : `frame ${outcome.frame}: restored to ${file}\n`);
    }
  });
}
