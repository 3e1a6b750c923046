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
 */
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readCrops, type CropRecord } from '../../adapters/crops-file.ts';
import { readFaces, type FaceRecord } from '../../adapters/faces-file.ts';
import { captionFor } from '../../catalog/captions.ts';
import { refreshCharacterTags } from '../../catalog/character-tags.ts';
import { captionPathOf } from '../../catalog/sidecars.ts';
import { formatTag, parseTag } from '../../catalog/tags.ts';
import type { Config } from '../../config/schema.ts';
import { videoLayoutOf } from '../../daemon/library-paths.ts';
import { loadTaggers, prepareForTaggers } from '../../inference/taggers.ts';
import { forEachBatch } from '../batches.ts';
import { hashOf, keptFrames } from '../kept-frames.ts';
import { markRunning, modelsOrWait } from '../model-wait.ts';
import type { Stage, StagePorts } from '../stage.ts';
import { largestFaceShare } from './composition-gate.ts';
import { tagPrepared, type PictureFaces, type PictureTags } from './tagging.ts';

/** A frame or a crop to tag. */
interface Picture {
  absolute: string;
  hash: () => Promise<string>;
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
  const layout = videoLayoutOf(job, config.library);
  const frames = await keptFrames(layout);
  const crops = (await readCrops(layout.crops)).filter((crop) => existsSync(path.join(layout.library, crop.file)));
  const same = job.tags && job.tags.taggers.join() === ids.join() ? job.tags : undefined;
  let framesDone = Math.min(same?.framesDone ?? 0, frames.length);
  let cropsDone = Math.min(same?.cropsDone ?? 0, crops.length);
  let gated = same?.framesGated ?? 0;
  let compositionGated = same?.compositionGated ?? 0;
  const faces = config.faces.detector === 'none' ? null : new Map((await readFaces(layout.faces)).map((record) => [record.frame, record]));
  const progress = () => {
    const state = { taggers: [...ids], framesDone, framesGated: gated, cropsDone, compositionGated };
    return (target: typeof job) => {
      target.tags = { ...state };
      target.progress = { done: state.framesDone + state.cropsDone, total: frames.length + crops.length };
    };
  };
  const tagAll = (pictures: Picture[], counted: (done: number, results: PictureTags[]) => void) => forEachBatch(
    pictures,
    config.inference.batchSize,
    (batch) => Promise.all([prepareForTaggers(taggers, batch.map((picture) => picture.absolute), ports.images), Promise.all(batch.map((picture) => picture.hash()))]),
    async (batch, [inputs, hashes]) => {
      const results = await tagPrepared(taggers, inputs, batch.map((picture) => picture.faces), config);
      ports.catalog.batch(() => {
        results.forEach((result, index) => {
          for (const source of ['tagger:ensemble', 'face-gate', 'composition'] as const) {
            ports.catalog.setSourceTags(hashes[index]!, source, result.tags.filter((tag) => tag.source === source).map((tag) => tag.tag));
          }
        });
      });
      refreshCharacterTags(ports.catalog, hashes);
      if (config.tags.sidecars) {
        await Promise.all(batch.map((picture, index) => writeSidecar(picture.absolute, hashes[index]!, results[index]!, config, ports)));
      }
      compositionGated += results.filter((result) => result.compositionGated.length > 0).length;
      counted(batch.length, results);
      await ports.save(progress());
    },
    ports.signal,
  );

  const frameHeight = job.probe?.height ?? null;
  const framePictures = frames.slice(framesDone).map((frame): Picture => ({
    absolute: frame.absolute, hash: () => hashOf(frame), faces: faces && frameFaces(faces.get(frame.frame), frameHeight),
  }));
  if (await tagAll(framePictures, (done, results) => {
    framesDone += done;
    gated += results.filter((result) => result.gated.length > 0).length;
  }) === 'aborted') return { kind: 'interrupted' };
  const cropPictures = crops.slice(cropsDone).map((crop): Picture => ({
    absolute: path.join(layout.library, crop.file), hash: async () => crop.sha256, faces: faces && cropFaces(crop, faces.get(crop.frame)),
  }));
  if (await tagAll(cropPictures, (done) => void (cropsDone += done)) === 'aborted') return { kind: 'interrupted' };
  return { kind: 'done', change: progress() };
};

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
