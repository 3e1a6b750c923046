/**
 * `celforge restore <video> <frame...>`: brings duplicates back as kept
 * frames, at full resolution, byte-identical to a full extraction. Under
 * policy `move` the duplicate's file is moved back; under `reference` the
 * frame is decoded again from the source (only those frames are written).
 * The frame map records them as kept (and restored).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { resolveFfmpegBinaries } from '../adapters/ffmpeg-binaries.ts';
import { readFrameMap, rewriteFrameMap, type FrameRecord } from '../adapters/frame-map-file.ts';
import { writeFramePng } from '../adapters/image-writer.ts';
import { acquireLock } from '../adapters/lock-file.ts';
import { MediaRepository } from '../adapters/media.ts';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { videoLayoutOf, type VideoLayout } from '../daemon/library-paths.ts';
import type { Job } from '../daemon/job.ts';
import { CelforgeError } from '../errors.ts';
import type { GlobalOptions } from './context.ts';
import { findJob } from './find-job.ts';

export async function restoreCommand(video: string, frameArgs: string[], options: GlobalOptions): Promise<void> {
  const config = await loadConfig({ configPath: options.config, library: options.library });
  const job = await findJob(video, config);
  const layout = videoLayoutOf(job, config.library);
  const lock = await acquireLock(layout.lock, 'restore', `${job.source}: its frames`);
  try {
    const records = await readFrameMap(layout.frameMap);
    const wanted = parseFrames(frameArgs, records, job);
    const toDecode: FrameRecord[] = [];
    let bytes = 0;
    for (const record of wanted) {
      if (record.status === 'kept') {
        process.stdout.write(`frame ${record.frame}: already kept (${path.join(config.library, record.file!)})\n`);
        continue;
      }
      const kept = layout.keptFile(record.scene, record.frame);
      if (record.file && existsSync(path.join(config.library, record.file))) {
        await mkdir(path.dirname(path.join(config.library, kept)), { recursive: true });
        await rename(path.join(config.library, record.file), path.join(config.library, kept));
        bytes += (await stat(path.join(config.library, kept))).size;
        markRestored(record, kept);
      } else {
        toDecode.push(record);
      }
    }
    bytes += await decodeAgain(job, toDecode, layout, config);
    await rewriteFrameMap(layout.frameMap, records);
    await updateReport(layout, records, bytes);
    for (const record of wanted.filter((r) => r.restored)) {
      process.stdout.write(`frame ${record.frame}: restored to ${path.join(config.library, record.file!)}\n`);
    }
  } finally {
    await lock.release();
  }
}

function parseFrames(args: string[], records: FrameRecord[], job: Job): FrameRecord[] {
  return [...new Set(args)].map((arg) => {
    const frame = Number(arg);
    if (!/^\d+$/.test(arg) || !records[frame]) {
      throw new CelforgeError('FILE_NOT_FOUND', `${job.source}: no frame ${arg} (frames 0 to ${records.length - 1} are recorded)`, { file: job.source });
    }
    return records[frame]!;
  }).sort((a, b) => a.frame - b.frame);
}

async function decodeAgain(job: Job, records: FrameRecord[], layout: VideoLayout, config: Config): Promise<number> {
  if (records.length === 0) return 0;
  const media = new MediaRepository(resolveFfmpegBinaries(config.ffmpeg));
  const { width, height } = job.probe!;
  const decoded = media.decodeFrames({ input: job.source, width, height, hwaccel: 'none', onlyFrames: records.map((r) => r.frame) });
  let bytes = 0;
  let index = 0;
  for await (const rgb of decoded.frames) {
    const record = records[index++];
    if (!record) break;
    const kept = layout.keptFile(record.scene, record.frame);
    const written = await writeFramePng({ rgb, width, height }, path.join(layout.library, kept), config.extract.pngCompression);
    bytes += written.bytes;
    record.sha256 = written.sha256;
    markRestored(record, kept);
  }
  await decoded.done;
  if (index < records.length) {
    throw new CelforgeError('EXTRACT_FAILED', `${job.source}: ffmpeg returned ${index} of the ${records.length} frames asked for; is this the same video?`, { file: job.source });
  }
  return bytes;
}

function markRestored(record: FrameRecord, keptFile: string): void {
  record.status = 'kept';
  record.duplicateOf = null;
  record.file = keptFile;
  record.restored = true;
}

async function updateReport(layout: VideoLayout, records: FrameRecord[], addedBytes: number): Promise<void> {
  const report = JSON.parse(await readFile(layout.report, 'utf8').catch(() => '{}')) as Record<string, unknown>;
  report.kept = records.filter((r) => r.status === 'kept').length;
  report.duplicates = records.length - (report.kept as number);
  report.bytesWritten = Number(report.bytesWritten ?? 0) + addedBytes;
  await writeFile(layout.report, `${JSON.stringify(report, null, 2)}\n`);
}
