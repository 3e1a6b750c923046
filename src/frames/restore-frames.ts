/**
 * Bringing duplicates back as kept frames, at full resolution, byte-identical
 * to a full extraction. Under policy `move` the duplicate's file is moved
 * back; under `reference` the frame is decoded again from the source (only
 * those frames are written). The frame map records them as kept (and
 * restored), and with a catalog they enter it as pipeline frames do.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Catalog } from '../adapters/catalog-store.ts';
import type { TagSource } from '../catalog/tags.ts';
import { resolveFfmpegBinaries } from '../adapters/ffmpeg-binaries.ts';
import { readFrameMap, rewriteFrameMap, type FrameRecord } from '../adapters/frame-map-file.ts';
import { writeFramePng } from '../adapters/image-writer.ts';
import { acquireLock } from '../adapters/lock-file.ts';
import { MediaRepository } from '../adapters/media.ts';
import { frameGridOf, seekFrame } from './frame-seeker.ts';
import { sha256Of } from '../adapters/file-hash.ts';
import type { Config } from '../config/schema.ts';
import { videoLayoutOf, type VideoLayout } from '../daemon/library-paths.ts';
import type { Job } from '../daemon/job.ts';
import { claimVideoFolder } from '../daemon/output-folder.ts';
import { CelforgeError } from '../errors.ts';

export interface RestoreOutcome {
  frame: number;
  /** Relative to the library. */
  file: string;
  alreadyKept: boolean;
}

export async function restoreFrames(job: Job, frames: readonly string[], config: Config, catalog?: Catalog): Promise<RestoreOutcome[]> {
  const layout = videoLayoutOf(job, config.library);
  const lock = await acquireLock(layout.lock, 'restore', `${job.source}: its frames`);
  try {
    await claimVideoFolder(job, layout, { mark: false }); // frames are decoded again from job.source: it must be theirs
    const records = await readFrameMap(layout.frameMap);
    const wanted = parseFrames(frames, records, job);
    refuseRejected(wanted, job, config);
    const alreadyKept = new Set(wanted.filter((record) => record.status === 'kept').map((record) => record.frame));
    const originals = new Map(wanted.map((record) => [record.frame, record.duplicateOf === null ? undefined : records[record.duplicateOf]]));
    const toDecode: FrameRecord[] = [];
    let bytes = 0;
    for (const record of wanted) {
      if (record.status === 'kept') continue;
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
    const restored = wanted.filter((record) => !alreadyKept.has(record.frame));
    // Decoded frames have their hash from the write; a moved one may be from before hashes were recorded.
    for (const record of restored) record.sha256 ??= await sha256Of(path.join(config.library, record.file!));
    await rewriteFrameMap(layout.frameMap, records);
    await updateReport(layout, records, bytes);
    if (catalog) await catalogRestored(job, restored, originals, config, catalog);
    return wanted.map((record) => ({ frame: record.frame, file: record.file!, alreadyKept: alreadyKept.has(record.frame) }));
  } finally {
    await lock.release();
  }
}

/**
 * Restored frames enter the catalog as pipeline frames do, with the
 * automatic tags (faces, taggers, face gate) of the frame they repeated:
 * the same drawing as far as dedup could tell. A person's edits of that
 * frame are not copied.
 */
async function catalogRestored(job: Job, records: FrameRecord[], originals: Map<number, FrameRecord | undefined>, config: Config, catalog: Catalog): Promise<void> {
  for (const record of records) {
    const file = path.join(config.library, record.file!);
    catalog.addImage(
      {
        hash: record.sha256!, path: record.file!, size: (await stat(file)).size, width: job.probe!.width, height: job.probe!.height,
        series: job.series, episode: job.episode, scene: record.scene, frame: record.frame, source: job.source,
      },
      [`series:${job.series}`, `episode:${job.episode}`, `scene:${String(record.scene).padStart(4, '0')}`],
      'pipeline',
    );
    // A frame a person once marked as a duplicate comes back into the dataset.
    catalog.markKept(record.sha256!, record.file!);
    const original = originals.get(record.frame);
    if (original?.sha256 && catalog.get(original.sha256)) {
      const bySource = new Map<string, string[]>();
      for (const { tag, source } of catalog.tagSources(original.sha256)) {
        if (source === 'faces' || source === 'face-gate' || source.startsWith('tagger:')) bySource.set(source, [...(bySource.get(source) ?? []), tag]);
      }
      for (const [source, tags] of bySource) catalog.setSourceTags(record.sha256!, source as Exclude<TagSource, 'person'>, tags);
    }
  }
}

function parseFrames(args: readonly string[], records: FrameRecord[], job: Job): FrameRecord[] {
  return [...new Set(args)].map((arg) => {
    const frame = Number(arg);
    if (!/^\d+$/.test(arg) || !records[frame]) {
      throw new CelforgeError('FILE_NOT_FOUND', `${job.source}: no frame ${arg} (frames 0 to ${records.length - 1} are recorded)`, { file: job.source });
    }
    return records[frame]!;
  }).sort((a, b) => a.frame - b.frame);
}

/** A rejected frame goes back with its caption and catalog entry by `unreject`, not as a restored duplicate. */
function refuseRejected(records: FrameRecord[], job: Job, config: Config): void {
  const rejected = records.filter((record) => record.status === 'rejected');
  if (rejected.length === 0) return;
  const named = rejected.map((record) => `frame ${record.frame} (now ${path.join(config.library, record.file!)})`).join(', ');
  throw new CelforgeError('CONFIG_INVALID', `${job.source}: ${named} ${rejected.length === 1 ? 'was' : 'were'} rejected, not set aside as duplicates; \`celforge unreject "<query>"\` brings rejected images back. Nothing was restored.`, { file: job.source });
}

async function decodeAgain(job: Job, records: FrameRecord[], layout: VideoLayout, config: Config): Promise<number> {
  if (records.length === 0) return 0;
  const media = new MediaRepository(resolveFfmpegBinaries(config.ffmpeg));
  const { width, height } = job.probe!;
  const grid = frameGridOf(await media.frameTiming(job.source));
  let fromStart = records;
  let bytes = 0;
  if (typeof grid === 'string') {
    process.stderr.write(`celforge: ${job.source}: decoding from the start to restore frames, not seeking: ${grid}\n`);
  } else {
    fromStart = [];
    for (const record of records) {
      const found = await seekFrame(media, job.source, { width, height }, grid, record.frame);
      if (found.kind === 'found') {
        bytes += await writeRestored(record, found.rgb, layout, config, width, height);
      } else {
        process.stderr.write(`celforge: ${job.source}: decoding from the start to restore frame ${record.frame}, not seeking: ${found.why}\n`);
        fromStart.push(record);
      }
    }
  }
  return bytes + await decodeFromStart(media, job, fromStart, layout, config);
}

/** Restoring the slow way, every frame from 0: for streams whose timestamps do not say frame numbers. */
async function decodeFromStart(media: MediaRepository, job: Job, records: FrameRecord[], layout: VideoLayout, config: Config): Promise<number> {
  if (records.length === 0) return 0;
  const { width, height } = job.probe!;
  const decoded = media.decodeFrames({ input: job.source, width, height, hwaccel: 'none', onlyFrames: records.map((r) => r.frame) });
  let bytes = 0;
  let index = 0;
  for await (const rgb of decoded.frames) {
    const record = records[index++];
    if (!record) break;
    bytes += await writeRestored(record, rgb, layout, config, width, height);
  }
  await decoded.done;
  if (index < records.length) {
    throw new CelforgeError('EXTRACT_FAILED', `${job.source}: ffmpeg returned ${index} of the ${records.length} frames asked for; is this the same video?`, { file: job.source });
  }
  return bytes;
}

async function writeRestored(record: FrameRecord, rgb: Buffer, layout: VideoLayout, config: Config, width: number, height: number): Promise<number> {
  const kept = layout.keptFile(record.scene, record.frame);
  const written = await writeFramePng({ rgb, width, height }, path.join(layout.library, kept), config.extract.pngCompression);
  record.sha256 = written.sha256;
  markRestored(record, kept);
  return written.bytes;
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
