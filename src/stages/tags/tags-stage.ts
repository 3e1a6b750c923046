/**
 * tags: the configured taggers tag every kept frame of the video, then every
 * crop of its crops.jsonl; their average is selected per category, copyright
 * and blacklisted tags dropped, subject tags kept only where the faces stage
 * found a face, and composition tags only where the largest face's size fits
 * them (composition-gate.ts). Results go to the catalog (source
 * `tagger:ensemble`, `face-gate` for the subject tags a face confirmed,
 * `composition` for the composition tags it confirmed), and a Kohya `.txt`
 * caption is written next to each picture from the catalog's tags (a
 * person's edits included). A missing tagger makes the job wait; a restart
 * continues after the last batch recorded, and a change of taggers starts
 * over.
 *
 * The stage is two steps, so that a coordinator (queue.redis) can have
 * workers do the tagging: `picturesToTag` (the pictures with their face
 * counts, which the workers' gates need) then `prepareForTaggers` +
 * `tagPrepared` on the workers, and `TagsRecorder` (the catalog, captions and
 * counts, only the coordinator's). API: tagsStage; picturesToTag,
 * hashOfPicture, TagsRecorder, TagPicture.
 */
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readCrops, type CropRecord } from '../../adapters/crops-file.ts';
import { sha256Of } from '../../adapters/file-hash.ts';
import { readFaces, type FaceRecord } from '../../adapters/faces-file.ts';
import { captionFor } from '../../catalog/captions.ts';
import { refreshCharacterTags } from '../../catalog/character-tags.ts';
import { captionPathOf } from '../../catalog/sidecars.ts';
import { formatTag, parseTag } from '../../catalog/tags.ts';
import type { Config } from '../../config/schema.ts';
import type { Job } from '../../daemon/job.ts';
import { videoLayoutOf } from '../../daemon/library-paths.ts';
import { loadTaggers, prepareForTaggers } from '../../inference/taggers.ts';
import { forEachBatch } from '../batches.ts';
import { keptFrames } from '../kept-frames.ts';
import { markRunning, modelsOrWait } from '../model-wait.ts';
import type { Stage, StagePorts } from '../stage.ts';
import { largestFaceShare } from './composition-gate.ts';
import { tagPrepared, type PictureFaces, type PictureTags } from './tagging.ts';

/** A frame or a crop to tag, as the stage tags them: the kept frames in frame order, then the crops of crops.jsonl. */
export interface TagPicture {
  kind: 'frame' | 'crop';
  /** The frame's number; a crop's, the frame it was cut from. */
  frame: number;
  /** Relative to the library. */
  file: string;
  absolute: string;
  /** Known where the frame map or crops.jsonl has it; else the file is read. */
  sha256: string | undefined;
  /** Null where no face detector ran (nothing is gated). */
  faces: PictureFaces | null;
}

export const tagsStage: Stage = async (job, ports) => {
  const config = ports.config();
  const ids = config.tags.taggers;
  if (ids.length === 0) return { kind: 'done', change: (target) => void delete target.tags };
  const available = await modelsOrWait(ports, ids, ['tagger']);
  if (!available.ready) return available.result;
  if (job.state !== 'running') await markRunning(ports);

  const taggers = await loadTaggers(config, available.models, ports);
  const { frames, crops } = await picturesToTag(job, config);
  const recorder = new TagsRecorder(job, frames.length, crops.length, config, ports);
  const tagAll = (pictures: TagPicture[]) => forEachBatch(
    pictures,
    config.inference.batchSize,
    (batch) => Promise.all([prepareForTaggers(taggers, batch.map((picture) => picture.absolute), ports.images), Promise.all(batch.map(hashOfPicture))]),
    async (batch, [inputs, hashes]) => recorder.record(batch, hashes, await tagPrepared(taggers, inputs, batch.map((picture) => picture.faces), config)),
    ports.signal,
  );
  if (await tagAll(frames.slice(recorder.framesDone)) === 'aborted') return { kind: 'interrupted' };
  if (await tagAll(crops.slice(recorder.cropsDone)) === 'aborted') return { kind: 'interrupted' };
  return { kind: 'done', change: recorder.change() };
};

/** The video's pictures to tag, each with what the face gates know of it (computed here, from faces.jsonl). */
export async function picturesToTag(job: Job, config: Config): Promise<{ frames: TagPicture[]; crops: TagPicture[] }> {
  const layout = videoLayoutOf(job, config.library);
  const faces = config.faces.detector === 'none' ? null : new Map((await readFaces(layout.faces)).map((record) => [record.frame, record]));
  const frameHeight = job.probe?.height ?? null;
  const frames = (await keptFrames(layout)).map((frame): TagPicture => ({
    kind: 'frame', frame: frame.frame, file: frame.file, absolute: frame.absolute, sha256: frame.sha256, faces: faces && frameFaces(faces.get(frame.frame), frameHeight),
  }));
  const crops = (await readCrops(layout.crops))
    .map((crop): TagPicture => ({ kind: 'crop', frame: crop.frame, file: crop.file, absolute: path.join(layout.library, crop.file), sha256: crop.sha256, faces: faces && cropFaces(crop, faces.get(crop.frame)) }))
    .filter((crop) => existsSync(crop.absolute));
  return { frames, crops };
}

export function hashOfPicture(picture: TagPicture): Promise<string> {
  return picture.sha256 !== undefined ? Promise.resolve(picture.sha256) : sha256Of(picture.absolute);
}

/**
 * The record step, the coordinator's alone: a batch's tags into the catalog
 * (by source), the character tags refreshed, the captions written, the
 * counts (the resume point: frames, then crops) saved. Where the job's
 * counts are from the same taggers, it continues after them.
 */
export class TagsRecorder {
  framesDone: number;
  cropsDone: number;
  #gated: number;
  #compositionGated: number;
  readonly #taggers: string[];
  readonly #total: number;
  readonly #config: Config;
  readonly #ports: StagePorts;

  constructor(job: Job, frames: number, crops: number, config: Config, ports: StagePorts) {
    this.#taggers = [...config.tags.taggers];
    const same = job.tags && job.tags.taggers.join() === this.#taggers.join() ? job.tags : undefined;
    this.framesDone = Math.min(same?.framesDone ?? 0, frames);
    this.cropsDone = Math.min(same?.cropsDone ?? 0, crops);
    this.#gated = same?.framesGated ?? 0;
    this.#compositionGated = same?.compositionGated ?? 0;
    this.#total = frames + crops;
    this.#config = config;
    this.#ports = ports;
  }

  async record(pictures: readonly TagPicture[], hashes: readonly string[], results: readonly PictureTags[]): Promise<void> {
    const { catalog } = this.#ports;
    catalog.batch(() => {
      results.forEach((result, index) => {
        for (const source of ['tagger:ensemble', 'face-gate', 'composition'] as const) {
          catalog.setSourceTags(hashes[index]!, source, result.tags.filter((tag) => tag.source === source).map((tag) => tag.tag));
        }
      });
    });
    refreshCharacterTags(catalog, hashes);
    if (this.#config.tags.sidecars) {
      await Promise.all(pictures.map((picture, index) => writeSidecar(picture.absolute, hashes[index]!, results[index]!, this.#config, this.#ports)));
    }
    this.#compositionGated += results.filter((result) => result.compositionGated.length > 0).length;
    pictures.forEach((picture, index) => {
      if (picture.kind === 'crop') {
        this.cropsDone += 1;
        return;
      }
      this.framesDone += 1;
      if (results[index]!.gated.length > 0) this.#gated += 1;
    });
    await this.#ports.save(this.change());
  }

  /** The ledger's tags state and progress as recorded so far. */
  change(): (target: Job) => void {
    const state = { taggers: [...this.#taggers], framesDone: this.framesDone, framesGated: this.#gated, cropsDone: this.cropsDone, compositionGated: this.#compositionGated };
    const total = this.#total;
    return (target) => {
      target.tags = { ...state };
      target.progress = { done: state.framesDone + state.cropsDone, total };
    };
  }
}

function frameFaces(record: FaceRecord | undefined, frameHeight: number | null): PictureFaces {
  const heights = record?.faces.map((face) => face.height) ?? [];
  return { count: heights.length, largestShare: frameHeight === null ? null : largestFaceShare(heights, frameHeight) };
}

/**
 * A crop comes from a face, so its subject tags stay: it counts the faces of
 * its frame whose centre lies inside it (its own at least). Its composition
 * is judged by its own face box, cut to the crop, against the crop's height.
 */
function cropFaces(crop: CropRecord, record: FaceRecord | undefined): PictureFaces {
  const [left, top, width, height] = crop.rect;
  const inside = (record?.faces ?? []).filter((face) => {
    const [cx, cy] = [face.x + face.width / 2, face.y + face.height / 2];
    return cx >= left && cx < left + width && cy >= top && cy < top + height;
  });
  const [, boxY, , boxHeight] = crop.box;
  const visible = Math.max(0, Math.min(boxY + boxHeight, top + height) - Math.max(boxY, top));
  return { count: Math.max(1, inside.length), largestShare: largestFaceShare([visible], height) };
}

const CATEGORY_ORDER = { character: 0, general: 1, rating: 2, copyright: 3, other: 3 } as const;

/**
 * `picture.txt` beside `picture.png`: its catalog tags as a Kohya caption,
 * the tagger's tags first (characters, then general tags by probability, then
 * the rating), then any a person added.
 */
async function writeSidecar(picture: string, hash: string, result: PictureTags, config: Config, ports: StagePorts): Promise<void> {
  const has = new Set(ports.catalog.tagsOf(hash));
  const ranked = [...result.tags]
    .sort((a, b) => CATEGORY_ORDER[a.category] - CATEGORY_ORDER[b.category] || b.probability - a.probability)
    .map((tag) => formatTag(parseTag(tag.tag)!))
    .filter((tag) => has.has(tag));
  const rest = [...has].filter((tag) => !ranked.includes(tag));
  const caption = captionFor([...ranked, ...rest], { triggerWords: [], keepTokens: 0, underscoresToSpaces: config.tags.underscoresToSpaces });
  const target = captionPathOf(picture);
  await writeFile(`${target}.tmp`, `${caption}\n`);
  await rename(`${target}.tmp`, target);
}
