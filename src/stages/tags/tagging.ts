/**
 * Tags for a list of pictures from the configured taggers: each picture
 * prepared once per input size in the image workers, every tagger run in
 * batches, their probabilities averaged and selected (ensemble.ts), then the
 * subject gate applied with the picture's face count and the composition gate
 * with its largest face's size. Each tag keeps what each
 * tagger said of it, for `celforge tags --json` and for review.
 */
import type { ImageWorkers } from '../../adapters/image-workers.ts';
import type { Config } from '../../config/schema.ts';
import type { Logger } from '../../log.ts';
import { modelFile, type AvailableModel } from '../../models/model-availability.ts';
import type { ModelCache } from '../../models/model-cache.ts';
import { averageTaggers, selectTags, type ScoredTag } from './ensemble.ts';
import { compositionGate } from './composition-gate.ts';
import { subjectGate } from './subject-gate.ts';
import { loadWd14Tagger, runWd14, type Wd14Tagger } from './wd14.ts';

export interface TaggingPorts {
  images: ImageWorkers;
  models: ModelCache;
  log: Logger;
}

export interface PictureTag extends ScoredTag {
  /** Each tagger's own probability for this tag. */
  taggers: Record<string, number>;
  /** Where the catalog records it: the ensemble, the face gate for a subject tag a face confirmed, or `composition` for a composition tag the face's size confirmed. */
  source: 'tagger:ensemble' | 'face-gate' | 'composition';
}

export interface PictureTags {
  tags: PictureTag[];
  /** Subject tags the gate took away (no face, or `solo` with several faces). */
  gated: PictureTag[];
  /** Composition tags the composition gate took away (no face, or a face of the wrong size). */
  compositionGated: PictureTag[];
}

/** What the gates know of a picture's faces. */
export interface PictureFaces {
  count: number;
  /** The largest face box's height over the picture's height (0 without a face); null where it is not known (no composition gate). */
  largestShare: number | null;
}

export async function loadTaggers(config: Config, models: readonly AvailableModel[], ports: TaggingPorts): Promise<Wd14Tagger[]> {
  const providers = config.inference.providers;
  return Promise.all(models.map((model) => {
    const onnxFile = modelFile(model, '.onnx');
    const tagsFile = modelFile(model, '.csv');
    return ports.models.get(`tagger:${onnxFile}:${providers.join(',')}`, () => loadWd14Tagger(model.entry.id, onnxFile, tagsFile, providers, ports.log));
  }));
}

/** Prepares each picture once per input size the taggers need. */
export async function prepareForTaggers(taggers: readonly Wd14Tagger[], images: readonly string[], workers: ImageWorkers): Promise<Map<number, Float32Array[]>> {
  const sizes = [...new Set(taggers.map((tagger) => tagger.size))];
  const prepared = await Promise.all(sizes.map((size) => Promise.all(images.map((image) => workers.run({ kind: 'wd14', image, size })))));
  return new Map(sizes.map((size, index) => [size, prepared[index]!]));
}

/** `faces[i]` is what is known of picture i's faces, or null where no face detector ran (then nothing is gated). */
export async function tagPrepared(
  taggers: readonly Wd14Tagger[], inputs: Map<number, Float32Array[]>, faces: readonly (PictureFaces | null)[], config: Config,
): Promise<PictureTags[]> {
  const perTagger: Float32Array[][] = [];
  for (const tagger of taggers) perTagger.push(await runWd14(tagger, inputs.get(tagger.size)!, config.inference.batchSize));
  const { thresholds, mcut, blacklist, subjectTags, composition } = config.tags;
  return faces.map((found, picture) => {
    const outputs = taggers.map((tagger, index) => ({ labels: tagger.labels, probabilities: perTagger[index]![picture]! }));
    const selected = selectTags(averageTaggers(outputs), { ...thresholds, mcut, blacklist });
    const tags = selected.map((tag): PictureTag => ({ ...tag, taggers: probabilitiesOf(tag, taggers, outputs), source: 'tagger:ensemble' }));
    if (found === null) return { tags, gated: [], compositionGated: [] };
    const subject = new Set(subjectTags.map((name) => name.replace(/\s+/g, '_')));
    const { kept, removed } = subjectGate(tags, (tag) => tag.tag, found.count, [...subject]);
    const confirmed = kept.map((tag): PictureTag => (subject.has(tag.tag) ? { ...tag, source: 'face-gate' } : tag));
    if (found.largestShare === null) return { tags: confirmed, gated: removed, compositionGated: [] };
    const composed = compositionGate(confirmed, (tag) => tag.tag, found.largestShare, composition);
    const gatedTags = composed.kept.map((tag): PictureTag => (Object.hasOwn(composition, tag.tag) ? { ...tag, source: 'composition' } : tag));
    return { tags: gatedTags, gated: removed, compositionGated: composed.removed };
  });
}

function probabilitiesOf(tag: ScoredTag, taggers: readonly Wd14Tagger[], outputs: { labels: Wd14Tagger['labels']; probabilities: Float32Array }[]): Record<string, number> {
  const name = tag.tag.replace(/^(character|rating):/, '');
  const result: Record<string, number> = {};
  taggers.forEach((tagger, index) => {
    const at = labelIndex(tagger).get(name);
    if (at !== undefined) result[tagger.id] = outputs[index]!.probabilities[at]!;
  });
  return result;
}

const labelIndexes = new WeakMap<Wd14Tagger, Map<string, number>>();

function labelIndex(tagger: Wd14Tagger): Map<string, number> {
  let index = labelIndexes.get(tagger);
  if (!index) {
    index = new Map(tagger.labels.map((label, at) => [label.name, at]));
    labelIndexes.set(tagger, index);
  }
  return index;
}

