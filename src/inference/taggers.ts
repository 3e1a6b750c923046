/**
 * The configured tagger ensemble on pictures, without any face gate: each
 * tagger loaded once (model cache), each picture prepared once per input size
 * in the image workers, every tagger run in batches, their probabilities
 * averaged and selected (ensemble.ts). Each tag keeps what each tagger said of
 * it. The tags stage adds its face gates on top (src/stages/tags/tagging.ts);
 * the checkpoint review scores these tags as they are.
 *
 * API: `loadTaggers(config, models, ports)`, `prepareForTaggers(taggers, images, workers)`,
 * `tagEnsemble(taggers, inputs, config)` -> one EnsembleTag[] per picture.
 */
import type { ImageWorkers } from '../adapters/image-workers.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { modelFile, type AvailableModel } from '../models/model-availability.ts';
import type { ModelCache } from '../models/model-cache.ts';
import { averageTaggers, selectTags, type ScoredTag } from './ensemble.ts';
import { loadWd14Tagger, runWd14, type Wd14Tagger } from './wd14.ts';

export interface TaggingPorts {
  images: ImageWorkers;
  models: ModelCache;
  log: Logger;
}

export interface EnsembleTag extends ScoredTag {
  /** Each tagger's own probability for this tag. */
  taggers: Record<string, number>;
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

/** Each prepared picture's tags: the taggers' average selected by `tags.thresholds`, `tags.mcut` and `tags.blacklist`. */
export async function tagEnsemble(taggers: readonly Wd14Tagger[], inputs: Map<number, Float32Array[]>, config: Config): Promise<EnsembleTag[][]> {
  const perTagger: Float32Array[][] = [];
  for (const tagger of taggers) perTagger.push(await runWd14(tagger, inputs.get(tagger.size)!, config.inference.batchSize));
  const { thresholds, mcut, blacklist } = config.tags;
  const pictures = Math.max(0, ...[...inputs.values()].map((list) => list.length));
  return Array.from({ length: pictures }, (_, picture) => {
    const outputs = taggers.map((tagger, index) => ({ labels: tagger.labels, probabilities: perTagger[index]![picture]! }));
    return selectTags(averageTaggers(outputs), { ...thresholds, mcut, blacklist }).map((tag) => ({ ...tag, taggers: probabilitiesOf(tag, taggers, outputs) }));
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
