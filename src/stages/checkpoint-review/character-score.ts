/**
 * The checkpoint review's character score: for each template that names a
 * character (`character`, optionally `series`, in review.templates), how
 * many of its seeds drew that character, as DeepGHS CCIP judges it.
 *
 * The character is its reference folder, `<library>/characters/<series>/<name>/`,
 * the pictures the characters stage gives a cluster its name from
 * (src/stages/characters/reference-names.ts): a person put them there to say
 * who the character is, whereas a cluster holds whatever crops CCIP grouped,
 * look-alikes included. The folder is found by the name as its tag spells
 * it (`Saber Alter` = `saber_alter`), in the template's series or, without
 * one, in the only series that has it.
 *
 * Each render is fed to CCIP whole, as the characters stage feeds the
 * reference pictures and as imgutils' `ccip_extract_feature` takes "the anime
 * image containing a single character" (deepghs/imgutils@525c042e
 * imgutils/metrics/ccip.py:106-110; no face crop). A render's difference is
 * the smallest to any reference picture, and the render is the character
 * when it is at most the model's threshold: imgutils' `ccip_same`
 * (ccip.py:287-289, `return diff <= threshold`, the threshold from
 * metrics.json, `ccip_default_threshold`, ccip.py:197), with one of the
 * name's pictures, the rule that names a cluster. Per template:
 * `{ name, sameShare, meanDifference }` over its renders (CharacterScore in
 * scores.ts).
 *
 * API: `characterScores(renders, templates, ports)` -> Map from every
 * template's name to its CharacterScore, or null when it names no character,
 * has no renders, or the CCIP model (`characters.model`) is not there (then
 * a warning says what fetches it; the review goes on). A character without a
 * reference folder is a CelforgeError naming the template and the folder;
 * called with no renders, it checks just that (no model is loaded).
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { ImageWorkers } from '../../adapters/image-workers.ts';
import { characterTag } from '../../catalog/character-tags.ts';
import { personTagProblem } from '../../catalog/person-tags.ts';
import type { Config } from '../../config/schema.ts';
import { CelforgeError } from '../../errors.ts';
import { CCIP_FEATURE_FILE, loadCcipModel, type CcipModel } from '../../inference/ccip.ts';
import type { Logger } from '../../log.ts';
import { modelFile, modelsAvailable } from '../../models/model-availability.ts';
import type { ModelCache } from '../../models/model-cache.ts';
import type { CharacterScore } from './scores.ts';
import type { ReviewTemplate } from './templates.ts';

/** One render of a template (one seed); other fields, such as the seed, are ignored. */
export interface CharacterRender {
  template: string;
  /** The render's picture. */
  file: string;
}

export interface CharacterScorePorts {
  config: Config;
  images: ImageWorkers;
  models: ModelCache;
  log: Logger;
}

interface References {
  /** The folder's name: the character's name as the characters stage gives it. */
  name: string;
  dir: string;
  files: string[];
}

// The pictures the characters stage reads from a reference folder (reference-names.ts).
const PICTURE = /\.(png|jpe?g|webp)$/i;

export async function characterScores(
  renders: readonly CharacterRender[], templates: readonly ReviewTemplate[], ports: CharacterScorePorts,
): Promise<Map<string, CharacterScore | null>> {
  const scores = new Map<string, CharacterScore | null>(templates.map((template) => [template.name, null]));
  const named = new Map<string, References>();
  const byDir = new Map<string, References>();
  for (const template of templates) {
    if (template.character === undefined) continue;
    const found = await findReferences(ports.config.library, template);
    const references = byDir.get(found.dir) ?? found;
    byDir.set(found.dir, references);
    named.set(template.name, references);
  }
  const scored = renders.filter((render) => named.has(render.template));
  if (scored.length === 0) return scores;
  const sets = [...new Set(scored.map((render) => named.get(render.template)!))];

  const { config } = ports;
  const available = await modelsAvailable(config, [config.characters.model], ['ccip']);
  if (!available.ready) {
    const waiting = [...new Set(scored.map((render) => `"${render.template}"`))];
    ports.log.warn(`checkpoint review: no character scores for ${waiting.join(', ')}: ${available.reason}`);
    return scores;
  }
  const model = await loadModel(ports, modelFile(available.models[0]!, CCIP_FEATURE_FILE));
  const columns = new Map<References, number>();
  let first = 0;
  for (const set of sets) {
    columns.set(set, first);
    first += set.files.length;
  }
  const pictures = await model.features(sets.flatMap((set) => set.files));
  const differences = await model.crossDifferences(await model.features(scored.map((render) => render.file)), pictures);

  const smallest = new Map<string, number[]>();
  scored.forEach((render, row) => {
    const set = named.get(render.template)!;
    const start = row * pictures.length + columns.get(set)!;
    const cells = differences.subarray(start, start + set.files.length);
    smallest.set(render.template, [...(smallest.get(render.template) ?? []), Math.min(...cells)]);
  });
  for (const [template, values] of smallest) {
    scores.set(template, {
      name: named.get(template)!.name,
      sameShare: values.filter((difference) => difference <= model.threshold).length / values.length,
      meanDifference: values.reduce((sum, difference) => sum + difference, 0) / values.length,
    });
  }
  return scores;
}

/** The template's reference folder and its pictures; a CelforgeError naming the template and the folder when there is none. */
async function findReferences(library: string, template: ReviewTemplate): Promise<References> {
  const name = template.character!;
  const where = `review.templates "${template.name}"`;
  const problem = personTagProblem(`character:${name}`);
  if (problem) throw new CelforgeError('CONFIG_INVALID', `${where}: the character "${name}" ${problem}`);
  const root = path.join(library, 'characters');
  const seriesList = template.series !== undefined ? [template.series] : await subfolders(root);
  const tag = characterTag(name);
  const found: string[] = [];
  for (const series of seriesList) {
    for (const folder of await subfolders(path.join(root, series))) {
      if (characterTag(folder) === tag) found.push(path.join(root, series, folder));
    }
  }
  const expected = path.join(root, template.series ?? '<series>', name);
  if (found.length === 0) {
    throw new CelforgeError('CONFIG_INVALID', `${where}: no reference folder for the character "${name}" (expected ${expected}${path.sep} with pictures of them, as the characters stage reads); add it or fix the name`, { file: expected });
  }
  if (found.length > 1) {
    throw new CelforgeError('CONFIG_INVALID', `${where}: the character "${name}" has reference folders ${found.join(', ')}; set the template's "series" to pick one`, { file: found[0] });
  }
  const dir = found[0]!;
  const files = (await readdir(dir, { withFileTypes: true }))
    .filter((entry) => entry.isFile() && PICTURE.test(entry.name))
    .map((entry) => path.join(dir, entry.name))
    .sort();
  if (files.length === 0) {
    throw new CelforgeError('CONFIG_INVALID', `${where}: the reference folder ${dir} of the character "${name}" holds no PNG, JPEG or WebP pictures; add some`, { file: dir });
  }
  return { name: path.basename(dir), dir, files };
}

async function subfolders(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await readdir(dir, { withFileTypes: true })).filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort();
}

// The same cache key as the characters stage, so a daemon that runs both loads the model once.
function loadModel(ports: CharacterScorePorts, featureFile: string): Promise<CcipModel> {
  const { config } = ports;
  const dir = path.dirname(featureFile);
  const providers = config.inference.providers;
  return ports.models.get(`ccip:${dir}:${providers.join(',')}`, () => loadCcipModel(dir, {
    providers, batchSize: config.inference.batchSize, log: ports.log, images: ports.images,
  }));
}
