/**
 * The composition gate: taggers trained on square booru pictures guess
 * `portrait`, `upper_body`, `cowboy_shot`, `full_body` and `close-up` poorly
 * on 16:9 frames. How large the largest face is against the picture's height
 * says how much of a figure the picture holds, so each of these tags is kept
 * only where that share lies in its configured [min, max] range
 * (`tags.composition`; defaults and their reasoning in src/config/schema.ts),
 * and none is kept on a picture without a face. Same shape as the subject
 * gate (subject-gate.ts).
 */
import { gateTags, type GateResult } from './subject-gate.ts';

/** Tag name -> [min, max] share of the picture's height the largest face box may take for the tag to stay. */
export type CompositionRanges = Readonly<Record<string, readonly [number, number]>>;

/** The largest face box's height over the picture's height; 0 without a face. */
export function largestFaceShare(faceHeights: readonly number[], pictureHeight: number): number {
  if (faceHeights.length === 0 || !(pictureHeight > 0)) return 0;
  return Math.max(...faceHeights) / pictureHeight;
}

export function compositionGate<T>(tags: readonly T[], nameOf: (tag: T) => string, faceShare: number, ranges: CompositionRanges): GateResult<T> {
  return gateTags(tags, (tag) => {
    const range = Object.hasOwn(ranges, nameOf(tag)) ? ranges[nameOf(tag)] : undefined;
    return range !== undefined && (faceShare <= 0 || faceShare < range[0] || faceShare > range[1]);
  });
}
