/**
 * `celforge tags <image...> [--json] [--no-gate]`: the configured taggers on
 * the given pictures, as the tags stage runs them: averaged probabilities,
 * each tagger's own, where the catalog would record each tag, and which
 * subject and composition tags the face gates took away (the configured face
 * detector runs for the gates unless --no-gate or `faces.detector: "none"`).
 */
import sharp from 'sharp';
import { captionToken } from '../catalog/captions.ts';
import { loadTaggers, prepareForTaggers } from '../inference/taggers.ts';
import { detectorModelId, DETECTOR_KINDS, loadFaceDetector } from '../stages/faces/face-detector.ts';
import { largestFaceShare } from '../stages/tags/composition-gate.ts';
import { tagPrepared, type PictureFaces, type PictureTag } from '../stages/tags/tagging.ts';
import type { GlobalOptions } from './context.ts';
import { findFaces } from './faces.ts';
import { prepareEach, requireModels, withPictureRun } from './picture-runner.ts';

interface TagOutput extends PictureTag {
  /** As written in a caption: "long hair" for long_hair unless underscores are kept. */
  text: string | null;
}

export interface PictureTagsOutput {
  image: string;
  /** Faces found for the gate, or null when no gate ran. */
  faces: number | null;
  tags: TagOutput[];
  gated: TagOutput[];
  /** Composition tags the face sizes took away. */
  compositionGated: TagOutput[];
  error?: string;
}

export async function tagsCommand(pictures: string[], options: GlobalOptions & { json?: boolean; gate?: boolean }): Promise<number> {
  const results = await withPictureRun(pictures, options, async (run): Promise<PictureTagsOutput[]> => {
    const { config } = run;
    const taggers = await loadTaggers(config, await requireModels(config, config.tags.taggers, ['tagger']), run);
    const detectorId = options.gate === false ? null : detectorModelId(config);
    let faces: (PictureFaces | null)[] = run.pictures.map(() => null);
    if (detectorId && config.faces.detector !== 'none') {
      const [model] = await requireModels(config, [detectorId], [DETECTOR_KINDS[config.faces.detector]]);
      const found = await findFaces(await loadFaceDetector(config, model!, run), run);
      faces = await Promise.all(found.map(async (entry) => ({
        count: entry.faces.length,
        largestShare: entry.error ? null : largestFaceShare(entry.faces.map((face) => face.height), (await sharp(entry.image).metadata()).height ?? 0),
      })));
    }
    const prepared = await prepareEach(run.pictures, (picture) => prepareForTaggers(taggers, [picture], run.images));
    const good = prepared.flatMap((entry, index) => (entry.ok ? [{ index, inputs: entry.value }] : []));
    const inputs = new Map([...new Set(taggers.map((tagger) => tagger.size))].map((size) => [size, good.map((entry) => entry.inputs.get(size)![0]!)]));
    const tagged = await tagPrepared(taggers, inputs, good.map((entry) => faces[entry.index] ?? null), config);
    const withText = (tag: PictureTag): TagOutput => ({ ...tag, text: captionToken(tag.tag, config.tags.underscoresToSpaces) });
    return run.pictures.map((image, index) => {
      const entry = prepared[index]!;
      if (!entry.ok) return { image, faces: null, tags: [], gated: [], compositionGated: [], error: entry.error };
      const result = tagged[good.findIndex((candidate) => candidate.index === index)]!;
      return {
        image, faces: faces[index]?.count ?? null, tags: result.tags.map(withText), gated: result.gated.map(withText), compositionGated: result.compositionGated.map(withText),
      };
    });
  });
  if (options.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  else {
    for (const result of results) {
      const line = result.error ?? result.tags.map((tag) => `${tag.text ?? tag.tag} (${tag.probability.toFixed(2)})`).join(', ');
      process.stdout.write(`${result.image}: ${line}\n`);
    }
  }
  return results.some((result) => result.error) ? 1 : 0;
}
