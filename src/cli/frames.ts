/**
 * `celforge frames <video> [--json]`: the frame map. With --json, one object
 * per source frame in order: {"frame","status","duplicateOf","scene","file"},
 * `file` an absolute path or null (DESIGN.md's contract). Without, the report.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { readFrameMap } from '../adapters/frame-map-file.ts';
import { loadConfig } from '../config/load.ts';
import { formatSize } from '../config/size.ts';
import { videoLayoutOf } from '../daemon/library-paths.ts';
import { CelforgeError } from '../errors.ts';
import type { GlobalOptions } from './context.ts';
import { findJob } from './find-job.ts';

export async function framesCommand(video: string, options: GlobalOptions & { json?: boolean }): Promise<void> {
  const config = await loadConfig({ configPath: options.config, library: options.library });
  const job = await findJob(video, config);
  const layout = videoLayoutOf(job, config.library);
  if (!existsSync(layout.frameMap)) {
    throw new CelforgeError('FILE_NOT_FOUND', `${job.source}: no frames extracted yet (job is ${job.stage}/${job.state})`, { file: job.source });
  }
  if (options.json) {
    for (const record of await readFrameMap(layout.frameMap)) {
      const { frame, status, duplicateOf, scene, file } = record;
      process.stdout.write(`${JSON.stringify({ frame, status, duplicateOf, scene, file: file && path.join(config.library, file) })}\n`);
    }
    return;
  }
  const report = JSON.parse(await readFile(layout.report, 'utf8').catch(() => '{}')) as Record<string, number>;
  const complete = job.state === 'done' || job.stage !== 'extract' ? '' : ` (extraction ${job.state}, ${job.progress?.done ?? 0}/${job.probe?.frameCount ?? '?'} frames so far)`;
  process.stdout.write(
    `${job.source}${complete}\n` +
      `  frames ${report.frames ?? 0}, scenes ${report.scenes ?? 0}, kept ${report.kept ?? 0}, duplicates ${report.duplicates ?? 0}, ` +
      `written ${formatSize(report.bytesWritten ?? 0)}\n  ${path.join(config.library, layout.dir)}\n`,
  );
}
