/**
 * The subject gate: taggers trained on square pictures put `1girl` on 16:9
 * scenery, effects and title cards. Subject tags (who is in the picture) are
 * kept only on frames where a face detector found a face; with two faces or
 * more, `solo` goes too. Which tags count as subject tags is configurable.
 */
export const DEFAULT_SUBJECT_TAGS = [
  '1girl', '2girls', '3girls', '4girls', '5girls', '6+girls', 'multiple_girls',
  '1boy', '2boys', '3boys', '4boys', '5boys', '6+boys', 'multiple_boys',
  '1other', '2others', 'multiple_others', 'solo', 'solo_focus', 'male_focus', 'female_focus',
];

export interface GateResult<T> {
  kept: T[];
  /** Subject tags taken away, for the record of why. */
  removed: T[];
}

export function subjectGate<T>(tags: readonly T[], nameOf: (tag: T) => string, faces: number, subjectTags: readonly string[] = DEFAULT_SUBJECT_TAGS): GateResult<T> {
  const subject = new Set(subjectTags);
  return gateTags(tags, (tag) => {
    const name = nameOf(tag);
    return subject.has(name) && (faces === 0 || (faces >= 2 && name === 'solo'));
  });
}

/** Splits tags into those kept and those `drop` takes away (every gate's shape). */
export function gateTags<T>(tags: readonly T[], drop: (tag: T) => boolean): GateResult<T> {
  const kept: T[] = [];
  const removed: T[] = [];
  for (const tag of tags) (drop(tag) ? removed : kept).push(tag);
  return { kept, removed };
}
