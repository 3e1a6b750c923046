/**
 * Automatic scores of a checkpoint's renders: a prompt read into tags as the
 * taggers name them (promptTags), each render's tags from the configured
 * tagger ensemble (tagRenders), one render scored against its prompt
 * (scoreRender: share of prompted tags found, subjects lost to `no_humans`,
 * composition drift), the seeds of a template and version put together
 * (aggregateScores), and the templates that got worse than the previous
 * version by more than `review.scoreMargin`, or whose character (its CCIP
 * score, character-score.ts) fell by more than `review.characterMargin` or
 * below half the seeds (regressions).
 */
import type { Config } from '../../config/schema.ts';
import { CelforgeError } from '../../errors.ts';
import { modelsAvailable } from '../../models/model-availability.ts';
import { loadTaggers, prepareForTaggers, tagEnsemble, type TaggingPorts } from '../../inference/taggers.ts';

// A1111's attention syntax, AUTOMATIC1111/stable-diffusion-webui@0674fab modules/prompt_parser.py `re_attention`:
// an escaped \( \) \[ \] \\ is the literal character, `(` and `[` open emphasis, `:1.2)` closes a weighted one,
// `)` and `]` close (each only when one is open, else it is text), anything else is text.
const ATTENTION = /\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:([+-]?[.\d]+)\)|\)|]|[^\\()[\]:]+|:/g;
// Same file, `re_break` (BREAK starts a new chunk) and `re_AND = re.compile(r"\bAND\b")` (composable prompts),
// both upper case and words of their own; here each separates tags. Scheduling `[from:to:when]` and alternation
// `[a|b]` (its lark grammar) are not read: such a part stays one unmatched tag.
const SEPARATOR = /\s*\b(?:BREAK|AND)\b\s*/g;
// Extra networks (`<lora:name:0.8>`, `<hypernet:...>`), removed before the prompt is parsed:
// AUTOMATIC1111/stable-diffusion-webui@013e422 modules/extra_networks.py `re_extra_net = re.compile(r"<(\w+):([^>]+)>")`.
const EXTRA_NETWORK = /<(\w+):([^>]+)>/g;

/** The prompt's tags in booru spelling (`long_hair`, `fate_(series)`), emphasis, weights and extra networks removed, each once in prompt order. */
export function promptTags(prompt: string): string[] {
  let text = '';
  let round = 0;
  let square = 0;
  for (const match of prompt.replace(EXTRA_NETWORK, '').matchAll(ATTENTION)) {
    const token = match[0];
    if (token.startsWith('\\')) text += token.slice(1);
    else if (token === '(') round += 1;
    else if (token === '[') square += 1;
    else if (match[1] !== undefined && round > 0) round -= 1;
    else if (token === ')' && round > 0) round -= 1;
    else if (token === ']' && square > 0) square -= 1;
    else text += token.replace(SEPARATOR, ',');
  }
  const tags = text.split(',').map((part) => part.trim().toLowerCase().replace(/\s+/g, '_')).filter((tag) => tag.length > 0);
  return [...new Set(tags)];
}

export interface ScoreOptions {
  /** `tags.subjectTags`: the tags that say who is in the picture. */
  subjectTags: readonly string[];
  /** `tags.composition`: its keys are the composition tags. */
  composition: Readonly<Record<string, unknown>>;
}

export interface RenderScore {
  /** Share of the prompt's taggable tags found in the render; null when the prompt has none. */
  found: number | null;
  /** Subject tags prompted but absent, on a render tagged `no_humans`. */
  vanishedSubjects: string[];
  /** Composition tags found instead of the prompted ones (none of which was found); empty without drift. */
  compositionDrift: string[];
}

/**
 * `renderTags` in catalog form (`character:` and `rating:` namespaced, as tagRenders gives them);
 * `vocabulary`, the tags the taggers can answer, limits which prompt tags count (`masterpiece` is no booru tag).
 */
export function scoreRender(promptTagList: readonly string[], renderTags: readonly string[], options: ScoreOptions, vocabulary?: ReadonlySet<string>): RenderScore {
  const found = new Set(renderTags.filter((tag) => !tag.startsWith('rating:')).map((tag) => tag.replace(/^character:/, '')));
  const taggable = promptTagList.filter((tag) => !vocabulary || vocabulary.has(tag));
  const subjects = new Set(options.subjectTags.map((tag) => tag.trim().replace(/\s+/g, '_')));
  const vanishedSubjects = found.has('no_humans') ? promptTagList.filter((tag) => subjects.has(tag) && !found.has(tag)) : [];
  const composition = Object.keys(options.composition);
  const promptedComposition = promptTagList.filter((tag) => composition.includes(tag));
  const drifted = promptedComposition.length > 0 && !promptedComposition.some((tag) => found.has(tag));
  return {
    found: taggable.length ? taggable.filter((tag) => found.has(tag)).length / taggable.length : null,
    vanishedSubjects,
    compositionDrift: drifted ? composition.filter((tag) => found.has(tag)) : [],
  };
}

export interface RenderScoreEntry {
  template: string;
  version: number;
  seed: number;
  score: RenderScore;
}

export interface TemplateScore {
  template: string;
  version: number;
  seeds: number;
  /** Mean of the seeds' found shares (those that have one); null when none has. */
  found: number | null;
  /** Every subject tag that vanished on some seed. */
  vanishedSubjects: string[];
  /** Every composition tag some seed drifted to. */
  compositionDrift: string[];
  /** The template's character as CCIP sees it (character-score.ts); null or absent when it names none or no CCIP model is there. */
  character?: CharacterScore | null;
}

export interface CharacterScore {
  /** The character the template names, as its reference folder is named. */
  name: string;
  /** Share of the seeds whose render is the same character as one of its reference pictures. */
  sameShare: number;
  /** Mean over the seeds of each render's smallest CCIP difference to the reference pictures. */
  meanDifference: number;
}

/** One entry per template and version, in the order first seen. */
export function aggregateScores(entries: readonly RenderScoreEntry[]): TemplateScore[] {
  const groups = new Map<string, RenderScoreEntry[]>();
  for (const entry of entries) {
    const key = JSON.stringify([entry.template, entry.version]);
    groups.set(key, [...(groups.get(key) ?? []), entry]);
  }
  return [...groups.values()].map((group) => {
    const shares = group.flatMap((entry) => (entry.score.found === null ? [] : [entry.score.found]));
    const union = (pick: (score: RenderScore) => string[]) => [...new Set(group.flatMap((entry) => pick(entry.score)))].sort();
    return {
      template: group[0]!.template, version: group[0]!.version, seeds: group.length,
      found: shares.length ? shares.reduce((sum, share) => sum + share, 0) / shares.length : null,
      vanishedSubjects: union((score) => score.vanishedSubjects), compositionDrift: union((score) => score.compositionDrift),
    };
  });
}

export type RegressionReason =
  | { kind: 'found'; previous: number; current: number }
  | { kind: 'vanished'; tags: string[] }
  | { kind: 'drift'; tags: string[] }
  | { kind: 'character'; previous: number; current: number };

export interface Regression {
  template: string;
  reasons: RegressionReason[];
}

// Shares are means of fractions; a drop of exactly the margin must not be flagged by rounding (0.8 - 0.7 > 0.1 in floats).
const EPSILON = 1e-9;
// Below half, most renders no longer show the character: the majority characters.referenceShare asks of a cluster by default.
const CHARACTER_MAJORITY = 0.5;

/**
 * Templates of `current` worse than the same template in `previous`; a template new in `current` has nothing to regress from.
 * `characterMargin` (review.characterMargin) is the drop of a character's share that is flagged; `margin` when absent.
 */
export function regressions(previous: readonly TemplateScore[], current: readonly TemplateScore[], margin: number, characterMargin = margin): Regression[] {
  const before = new Map(previous.map((score) => [score.template, score]));
  return current.flatMap((score): Regression[] => {
    const last = before.get(score.template);
    if (!last) return [];
    const reasons: RegressionReason[] = [];
    if (last.found !== null && score.found !== null && last.found - score.found > margin + EPSILON) reasons.push({ kind: 'found', previous: last.found, current: score.found });
    const vanished = score.vanishedSubjects.filter((tag) => !last.vanishedSubjects.includes(tag));
    if (vanished.length) reasons.push({ kind: 'vanished', tags: vanished });
    const drift = score.compositionDrift.filter((tag) => !last.compositionDrift.includes(tag));
    if (drift.length) reasons.push({ kind: 'drift', tags: drift });
    const [was, is] = [last.character, score.character];
    if (was && is && was.name === is.name && (was.sameShare - is.sameShare > characterMargin + EPSILON || (was.sameShare >= CHARACTER_MAJORITY && is.sameShare < CHARACTER_MAJORITY))) {
      reasons.push({ kind: 'character', previous: was.sameShare, current: is.sameShare });
    }
    return reasons.length ? [{ template: score.template, reasons }] : [];
  });
}

export interface RenderTags {
  /** Each file's tags after the thresholds, in catalog form, in the order of the files. */
  renders: { file: string; tags: string[] }[];
  /** Every tag the taggers can answer (character tags without their namespace), for scoreRender. */
  vocabulary: Set<string>;
}

/**
 * The configured taggers (`tags.taggers`) on rendered pictures, as the tags stage runs them but without the face
 * gates: a render's raw tags are what is scored, `no_humans` included.
 */
export async function tagRenders(files: readonly string[], ports: TaggingPorts & { config: Config }): Promise<RenderTags> {
  const { config } = ports;
  if (config.tags.taggers.length === 0) throw new CelforgeError('CONFIG_INVALID', 'tags.taggers is empty: checkpoint review scores need at least one tagger');
  const available = await modelsAvailable(config, config.tags.taggers, ['tagger']);
  if (!available.ready) throw new CelforgeError('FILE_NOT_FOUND', available.reason);
  const taggers = await loadTaggers(config, available.models, ports);
  const inputs = await prepareForTaggers(taggers, files, ports.images);
  const tagged = await tagEnsemble(taggers, inputs, config);
  const vocabulary = new Set(taggers.flatMap((tagger) => tagger.labels.filter((label) => label.category === 'general' || label.category === 'character').map((label) => label.name)));
  return { renders: files.map((file, index) => ({ file, tags: tagged[index]!.map((tag) => tag.tag) })), vocabulary };
}
