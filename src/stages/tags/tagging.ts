/**
 * The tags stage's face gates on the tagger ensemble's tags
 * (src/inference/taggers.ts): the subject gate applied with the picture's
 * face count and the composition gate with its largest face's size, each
 * kept tag marked with where the catalog records it. Each tag keeps what
 * each tagger said of it, for `celforge tags --json` and for review.
 *
 * API: `tagPrepared(taggers, inputs, faces, config)` -> PictureTags per picture.
 */
import type { Config } from '../../config/schema.ts';
import { tagEnsemble, type EnsembleTag } from '../../inference/taggers.ts';
import type { Wd14Tagger } from '../../inference/wd14.ts';
import { compositionGate } from './composition-gate.ts';
import { subjectGate } from './subject-gate.ts';

export interface PictureTag extends EnsembleTag {
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

/** `faces[i]` is what is known of picture i's faces, or null where no face detector ran (then nothing is gated). */
export async function tagPrepared(
  taggers: readonly Wd14Tagger[], inputs: Map<number, Float32Array[]>, faces: readonly (PictureFaces | null)[], config: Config,
): Promise<PictureTags[]> {
  const ensemble = await tagEnsemble(taggers, inputs, config);
  const { subjectTags, composition } = config.tags;
  return faces.map((found, picture) => {
    const tags = (ensemble[picture] ?? []).map((tag): PictureTag => ({ ...tag, source: 'tagger:ensemble' }));
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
