/**
 * Tags for a list of pictures from the configured taggers: each picture
 * prepared once per input size in the image workers, every tagger run in
 * batches, their probabilities averaged and selected (ensemble.ts), then the
 * subject gate applied with the frame's face count. Each tag keeps what each
 * tagger said of it, for `celforge tags --json` and for review.
 */
import type { ImageWorkers } from '../../adapters/image-workers.ts';
import type { Config } from '../../config/schema.ts';
import type { Logger } from '../../log.ts';
import { modelFile, type AvailableModel } from '../../models/model-availability.ts';
import type { ModelCache } from '../../models/model-cache.ts';
import { averageTaggers, selectTags, type ScoredTag } from './ensemble.ts';
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
  /** Where the catalog records it: the ensemble, or the face gate for a subject tag a face confirmed. */
  source: 'tagger:ensemble' | 'face-gate';
}

export interface PictureTags {
  tags: PictureTag[];
  /** Subject tags the gate took away (no face, or `solo` with several faces). */
  gated: PictureTag[];
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

/**
 * `faceCounts[i]` is the number of faces on picture i, or null where no face
 * detector ran (then nothing is gated).
 */
export async function tagPrepared(
  taggers: readonly Wd14Tagger[], inputs: Map<number, Float32Array[]>, faceCounts: readonly (number | null)[], config: Config,
): Promise<PictureTags[]> {
  const perTagger: Float32Array[][] = [];
  for (const tagger of taggers) perTagger.push(await runWd14(tagger, inputs.get(tagger.size)!, config.inference.batchSize));
  const { thresholds, mcut, blacklist, subjectTags } = config.tags;
  return faceCounts.map((faces, picture) => {
    const outputs = taggers.map((tagger, index) => ({ labels: tagger.labels, probabilities: perTagger[index]![picture]! }));
    const selected = selectTags(averageTaggers(outputs), { ...thresholds, mcut, blacklist });
    const tags = selected.map((tag): PictureTag => ({ ...tag, taggers: probabilitiesOf(tag, taggers, outputs), source: 'tagger:ensemble' }));
    if (faces === null) return { tags, gated: [] };
    const subject = new Set(subjectTags.map((name) => name.replace(/\s+/g, '_')));
    const { kept, removed } = subjectGate(tags, (tag) => tag.tag, faces, [...subject]);
    return { tags: kept.map((tag) => (subject.has(tag.tag) ? { ...tag, source: 'face-gate' } : tag)), gated: removed };
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

