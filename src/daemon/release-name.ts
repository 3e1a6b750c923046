/**
 * Reads one file or folder name the way release names are written: title,
 * season, episode and disc, past the tags around them. Handles fansub names
 * (`[Group] Show - 03v2 [1080p][ABCD1234]`, `[Group][Show][03][1080p]`),
 * scene names (`Show.Name.S01E03.1080p.BluRay.x264-GRP`), `Show 03 (BD
 * 1920x1080 HEVC FLAC)`, `Show Season 2 - 05`, `第03話`, films without a
 * number, and disc folders (`Disc 2`, `Show Vol.1`). Pure: no file system.
 */

export interface ReleaseName {
  /** The title before the episode (or of the whole name), without tags; null when there is none ("ep 7", "00003"). */
  title: string | null;
  season: number | null;
  /** Zero-padded to two digits ("03", "100", "13.5"); null for a film or a name without a number. */
  episode: string | null;
  /** `Disc 2`, `Vol.1`, `BD3`: a disc of a set. */
  disc: number | null;
}

// Release tags that are never part of a title: resolution, codecs, audio,
// bit depth, source, streaming service, release flags. A scene group may
// follow the last one (`x264-GRP`).
const TECH = new RegExp(`^(?:${[
  String.raw`\d{3,4}[pi]`, '[48]k', 'uhd', 'fhd', String.raw`\d{3,4}x\d{3,4}`,
  'x26[45]', 'h26[45]', 'hevc', 'avc', 'av1', 'vp9', 'xvid', 'divx', 'mpeg-?2', 'vc-?1',
  'flac', 'aac(?:lc)?', 'e?ac-?3', 'dts(?:-?(?:hd|ma|x|es))*', 'truehd', 'atmos', 'opus', 'mp3', 'l?pcm', 'ddp?',
  '(?:8|10|12)-?bits?', 'hi10p?', 'hi444pp?', 'yuv4[24][024]p?(?:10)?',
  'blu-?ray', 'bd', 'bd-?rip', 'bd-?remux', 'bd-?box', 'remux', 'br-?rip', 'bdmv', 'bdiso', 'web', 'web-?dl', 'web-?rip', 'hdtv', 'hd-?rip',
  'dvd', 'dvd-?rip', 'dvd-?remux', 'tv-?rip', 'hdr', 'hdr10(?:plus|\\+)?', 'dovi', 'sdr',
  'dual-?audio', 'multi-?subs?', 'eng-?subs?', 'proper', 'repack', 'uncensored',
  'amzn', 'nf', 'dsnp', 'hmax', 'cr', 'hidive', 'b-global', 'baha', 'abema',
].join('|')})(?:-[\\p{L}\\p{N}]+)?$`, 'iu');
const VERSION = /^v\d{1,2}$/i;
const YEAR = /^(?:19[3-9]\d|20[0-4]\d)$/;
const SEPARATOR = /^[-–—|~:]+$/;
const NUMBER = /^(\d{1,5})(?:\.(\d))?(?:v\d{1,2})?$/i;
const SEASON_EPISODE = /^s(\d{1,2})[ ._-]?e(\d{1,4})(?:\.(\d))?(?:v\d{1,2})?(?:-?e\d{1,4})*$/i;
const SEASON_X_EPISODE = /^(\d{1,2})x(\d{2,3})(?:v\d{1,2})?$/i;
const EPISODE_MARKED = /^(?:e|ep|ep\.|episode|#)(\d{1,4})(?:\.(\d))?(?:v\d{1,2})?$/i;
const EPISODE_WORD = /^(?:e|ep|ep\.|episode|#)$/i;
const EPISODE_CJK = /^第(\d{1,4})[話话集回]$/u;
const SEASON = /^s(\d{1,2})$/i;
const SEASON_WORD = /^season$/i;
const ORDINAL = /^(\d{1,2})(?:st|nd|rd|th)$/i;
const DISC = /^(?:disc|disk|dvd|bd|vol|volume|vol\.)(\d{1,2})$/i;
const DISC_WORD = /^(?:disc|disk|dvd|bd|vol|volume|vol\.)$/i;
const CRC = /^[0-9a-f]{8}$/i;
/** Where a bracketed part was: a separator that does not make a scene name ("Show.Name.S01E03[rarbg]") look spaced. */
const BRACKET = '\u0001';

type Token =
  | { kind: 'word'; text: string }
  | { kind: 'number'; text: string; episode: string }
  | { kind: 'year'; text: string }
  | { kind: 'separator' }
  | { kind: 'tag' }
  | { kind: 'episode'; episode: string; season: number | null }
  | { kind: 'season'; season: number }
  | { kind: 'disc'; disc: number };
type SeasonToken = Extract<Token, { kind: 'season' }>;
type DiscToken = Extract<Token, { kind: 'disc' }>;

export function readReleaseName(name: string): ReleaseName {
  const { outside, inside } = splitBrackets(name);
  let tokens = classify(words(outside));
  if (inside.length && tokens.every((token) => token.kind === 'separator' || token.kind === 'tag')) {
    tokens = classify(words(bracketedTitle(inside)));
  }
  const read = readTokens(tokens);
  if (read.episode === null) {
    // `[Group] Show [03][1080p]`: the episode in a bracket of its own.
    const bracketed = inside.map((text) => classify(words(text))).find((group) => group.length === 1 && (group[0]!.kind === 'number' || group[0]!.kind === 'episode'));
    const token = bracketed?.[0];
    if (token?.kind === 'number' || token?.kind === 'episode') read.episode = token.episode;
  }
  // `Title [Disc 4]`, `Title [Season 2]`
  const tagged = inside.flatMap((text) => classify(words(text)));
  read.disc ??= tagged.find((token): token is DiscToken => token.kind === 'disc')?.disc ?? null;
  read.season ??= tagged.find((token): token is SeasonToken => token.kind === 'season')?.season ?? null;
  return read;
}

/** Bracketed parts ([group], (year), [1080p], [CRC32]) apart from the rest. */
function splitBrackets(name: string): { outside: string; inside: string[] } {
  const inside: string[] = [];
  const outside = name.replace(/\[([^\]]*)\]|\(([^)]*)\)|\{([^}]*)\}|【([^】]*)】/gu, (_, ...groups: (string | undefined)[]) => {
    inside.push(groups.slice(0, 4).find((group) => group !== undefined) ?? '');
    return BRACKET;
  });
  return { outside, inside };
}

/** `[Group][Show Name][03][1080p]`: the brackets are all there is; the first names the group when a title follows it. */
function bracketedTitle(inside: string[]): string {
  const parts = inside.filter((text) => !CRC.test(text.trim()) && classify(words(text)).some((token) => token.kind !== 'tag' && token.kind !== 'separator'));
  const numbered = parts.findIndex((text) => NUMBER.test(text.trim()));
  const titled = numbered === -1 ? parts.length : numbered;
  return (titled >= 2 ? parts.slice(1) : parts).join(' - ');
}

function words(text: string): string[] {
  const underscored = text.replace(/_/g, ' ');
  const scene = !/\s/u.test(underscored.replaceAll(BRACKET, '').trim());
  let spaced = underscored
    .replace(/\b(?:ddp?\+?|e?ac-?3|aac|dts(?:-hd)?(?:[ .-]?ma)?|flac|opus|truehd|atmos|l?pcm)?[ .]?[1-7]\.[01]\b/giu, ' ') // 5.1, DDP2.0
    .replace(/\b([hx])\.(26[45])\b/giu, '$1$2'); // H.264
  if (scene) spaced = spaced.replace(/\./g, ' '); // Show.Name.S01E03
  spaced = spaced.replaceAll(BRACKET, ' - ');
  return spaced.split(/\s+/u).filter(Boolean).flatMap((word) => {
    // "Show-03", "Re-Zero-E05": a number joined to the title by a dash
    const joined = /^(.*\p{L}.*?)-((?:ep?|s\d{1,2}e)?\d{1,4}(?:v\d{1,2})?)$/iu.exec(word);
    return joined && !TECH.test(word) ? [joined[1]!, '-', joined[2]!] : [word.replace(/^[.,]+|[.,]+$/g, '') || word];
  });
}

function classify(list: string[]): Token[] {
  const tokens: Token[] = [];
  for (let i = 0; i < list.length; i += 1) {
    const word = list[i]!;
    const next = list[i + 1];
    let match: RegExpExecArray | null;
    if (SEPARATOR.test(word)) tokens.push({ kind: 'separator' });
    else if (TECH.test(word) && !(DISC_WORD.test(word) && next !== undefined && /^\d{1,2}$/.test(next)) || VERSION.test(word)) tokens.push({ kind: 'tag' });
    else if ((match = SEASON_EPISODE.exec(word))) tokens.push({ kind: 'episode', season: Number(match[1]), episode: episodeText(match[2]!, match[3]) });
    else if ((match = SEASON_X_EPISODE.exec(word))) tokens.push({ kind: 'episode', season: Number(match[1]), episode: episodeText(match[2]!) });
    else if ((match = EPISODE_MARKED.exec(word)) || (match = EPISODE_CJK.exec(word))) tokens.push({ kind: 'episode', season: null, episode: episodeText(match[1]!, match[2]) });
    else if (EPISODE_WORD.test(word) && next !== undefined && (match = NUMBER.exec(next))) {
      tokens.push({ kind: 'episode', season: null, episode: episodeText(match[1]!, match[2]) });
      i += 1;
    } else if ((match = SEASON.exec(word))) tokens.push({ kind: 'season', season: Number(match[1]) });
    else if (SEASON_WORD.test(word) && next !== undefined && /^\d{1,2}$/.test(next)) {
      tokens.push({ kind: 'season', season: Number(next) });
      i += 1;
    } else if ((match = ORDINAL.exec(word)) && next !== undefined && SEASON_WORD.test(next)) {
      tokens.push({ kind: 'season', season: Number(match[1]) });
      i += 1;
    } else if ((match = DISC.exec(word))) tokens.push({ kind: 'disc', disc: Number(match[1]) });
    else if (DISC_WORD.test(word) && next !== undefined && /^\d{1,2}$/.test(next)) {
      tokens.push({ kind: 'disc', disc: Number(next) });
      i += 1;
    } else if (YEAR.test(word)) tokens.push({ kind: 'year', text: word });
    else if ((match = NUMBER.exec(word))) tokens.push({ kind: 'number', text: word, episode: episodeText(match[1]!, match[2]) });
    else tokens.push({ kind: 'word', text: word });
  }
  return tokens;
}

/**
 * The episode: a marked one (S01E03, E03, Ep 3, #3, 第3話) first, else the
 * first number after a " - ", else the last number. The title is what comes
 * before it; a name without an episode is titled up to its first tag.
 */
function readTokens(tokens: Token[]): ReleaseName {
  let at = tokens.findIndex((token) => token.kind === 'episode');
  if (at === -1) at = tokens.findIndex((token, i) => token.kind === 'number' && tokens[i - 1]?.kind === 'separator');
  for (let i = tokens.length - 1; at === -1 && i >= 0; i -= 1) if (tokens[i]!.kind === 'number') at = i;
  const chosen = tokens[at];
  const titleEnd = at !== -1 ? at : indexOrLength(tokens.findIndex((token) => token.kind === 'tag'));
  const seasonToken = chosen?.kind === 'episode' && chosen.season !== null ? chosen.season : null;
  const season = seasonToken ?? tokens.find((token): token is SeasonToken => token.kind === 'season')?.season ?? null;
  const disc = tokens.find((token): token is DiscToken => token.kind === 'disc')?.disc ?? null;
  return {
    title: titleOf(tokens.slice(0, titleEnd)),
    season,
    episode: chosen && (chosen.kind === 'episode' || chosen.kind === 'number') ? chosen.episode : null,
    disc,
  };
}

function titleOf(tokens: Token[]): string | null {
  const parts: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'word' || token.kind === 'number' || token.kind === 'year') parts.push(token.text);
    else if (token.kind === 'separator' && parts.length && parts.at(-1) !== '-') parts.push('-');
  }
  // A trailing year reads as the release's, as "(2019)" does: "Show 2019 - 03" is "Show".
  while (parts.length && (parts.at(-1) === '-' || (parts.length > 1 && YEAR.test(parts.at(-1)!)))) parts.pop();
  return parts.length ? parts.join(' ') : null;
}

function episodeText(whole: string, fraction?: string): string {
  const number = String(Number(whole)).padStart(2, '0');
  return fraction === undefined ? number : `${number}.${fraction}`;
}

function indexOrLength(index: number): number {
  return index === -1 ? Number.POSITIVE_INFINITY : index;
}
