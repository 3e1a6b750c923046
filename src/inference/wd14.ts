/**
 * The WD14 tagger contract (SmilingWolf's wd-*-tagger-v3, as their reference
 * scripts use it): the picture padded to a square with white, resized to the
 * model's input size, channels in BGR order, NHWC float32 in 0..255; the
 * output is already a probability per row of selected_tags.csv (columns
 * tag_id,name,category,count; category 9 rating, 0 general, 4 character).
 */
import { readFile } from 'node:fs/promises';
import { openOnnxModel, runOnnx, type OnnxModel } from '../adapters/onnx-session.ts';
import { CelforgeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { CsvError, parseCsv } from './csv.ts';

export type TagCategory = 'general' | 'character' | 'rating' | 'copyright' | 'other';

export interface TagLabel {
  name: string;
  category: TagCategory;
}

export interface Wd14Tagger {
  id: string;
  size: number;
  labels: TagLabel[];
  model: OnnxModel;
}

const CATEGORIES: Record<string, TagCategory> = { '0': 'general', '3': 'copyright', '4': 'character', '9': 'rating' };

export async function loadWd14Tagger(id: string, modelFile: string, tagsFile: string, providers: readonly string[], log: Logger): Promise<Wd14Tagger> {
  const model = await openOnnxModel(modelFile, providers, log);
  const [, height, width, channels] = model.input.dims;
  if (typeof height !== 'number' || height !== width || channels !== 3) {
    throw new CelforgeError('CONFIG_INVALID', `${modelFile}: not a WD14 tagger (input ${JSON.stringify(model.input.dims)}, expected [batch, size, size, 3])`, { file: modelFile });
  }
  return { id, size: height, labels: parseSelectedTags(await readFile(tagsFile, 'utf8'), tagsFile), model };
}

export function parseSelectedTags(text: string, file: string): TagLabel[] {
  let rows: string[][];
  try {
    rows = parseCsv(text);
  } catch (error) {
    if (!(error instanceof CsvError)) throw error;
    throw new CelforgeError('CONFIG_INVALID', `${file}: not a readable selected_tags.csv (${error.message}); fetch it again with "celforge models fetch"`, { file });
  }
  const header = rows.shift() ?? [];
  const nameColumn = header.indexOf('name');
  const categoryColumn = header.indexOf('category');
  if (nameColumn < 0 || categoryColumn < 0) {
    throw new CelforgeError('CONFIG_INVALID', `${file}: not a selected_tags.csv (no name and category columns)`, { file });
  }
  return rows.map((cells, index) => {
    const [name, category] = [cells[nameColumn], cells[categoryColumn]];
    if (cells.length !== header.length || !name || !category) {
      throw new CelforgeError('CONFIG_INVALID', `${file}: row ${index + 2} has ${cells.length} fields where the header has ${header.length}, or no name or category; fetch it again with "celforge models fetch"`, { file });
    }
    return { name, category: CATEGORIES[category] ?? 'other' };
  });
}

/** Probabilities per label for each picture, in batches. */
export async function runWd14(tagger: Wd14Tagger, inputs: Float32Array[], batchSize: number): Promise<Float32Array[]> {
  const results: Float32Array[] = [];
  const per = tagger.size * tagger.size * 3;
  for (let start = 0; start < inputs.length; start += batchSize) {
    const batch = inputs.slice(start, start + batchSize);
    const data = new Float32Array(batch.length * per);
    batch.forEach((input, index) => data.set(input, index * per));
    const output = await runOnnx(tagger.model, data, [batch.length, tagger.size, tagger.size, 3]);
    const count = output.dims[1]!;
    if (count !== tagger.labels.length) {
      throw new CelforgeError('CONFIG_INVALID', `tagger ${tagger.id}: the model gives ${count} scores but selected_tags.csv has ${tagger.labels.length} tags`);
    }
    for (let index = 0; index < batch.length; index += 1) results.push(output.data.slice(index * count, (index + 1) * count));
  }
  return results;
}
