/**
 * Series and episode of a video, from its path. Configured patterns
 * (`naming.patterns`: named groups `series` and `episode`, tried in order,
 * case-insensitively, on the path relative to the inbox without extension,
 * bracketed release tags and a BDMV/STREAM folder pair) come first; without
 * a match, release names are read (src/daemon/release-name.ts) and the
 * folders around the file:
 * - in an inbox, the nearest folder that names a title is the series (the
 *   user's own sorting); a file at the inbox root, or outside every inbox,
 *   names its own series, else its folder does;
 * - season (`Season 2`, `S02`, `S02E05`) other than the first joins the
 *   series ("Show S2"), and folders such as `Specials` join it by name;
 * - a Blu-ray stream (`Title/BDMV/STREAM/00001.m2ts`, `Title/Disc 2/...`,
 *   `Title/Disc1/00001.m2ts`) takes the title folder as series and, on a
 *   disc of a set, `disc<N>-<stream>` as episode, so two discs never share
 *   an episode;
 * - a file without a number is a film (episode 01), or in a series folder,
 *   an extra named by its title.
 * Results are made safe for file names.
 */
import path from 'node:path';
import { readReleaseName } from './release-name.ts';

export interface SeriesEpisode {
  series: string;
  episode: string;
}

export function seriesAndEpisode(file: string, inboxes: readonly string[], patterns: readonly string[]): SeriesEpisode {
  const relative = relativeToInbox(file, inboxes);
  for (const candidate of relative === null ? outsideCandidates(file) : [relative]) {
    const configured = byPatterns(candidate, patterns);
    if (configured) return configured;
  }
  return byReleaseName(relative ?? path.resolve(file).split(path.sep).join('/'), relative !== null);
}

function byPatterns(relative: string, patterns: readonly string[]): SeriesEpisode | null {
  const subject = withoutExtension(relative)
    .replace(/(^|\/)BDMV\/STREAM\//iu, '$1')
    .replace(/\s*[[(][^\])/]*[\])]/gu, '');
  for (const source of patterns) {
    const groups = new RegExp(source, 'iu').exec(subject)?.groups;
    if (groups?.series && groups.episode) {
      return { series: safeName(groups.series), episode: normaliseEpisode(groups.episode) };
    }
  }
  return null;
}

// A Blu-ray clip is BDMV/STREAM/<5-digit clip id>.m2ts: libbluray src/libbluray/bdnav/navigation.c,
// _fill_clip (ShiftMediaProject/libbluray@d56846e), copies the 5-character clip_id and appends ".m2ts".
const STREAM_FILE = /^\d{5}$/;
const SEASON_FOLDER = /^(?:season|series|s)[\s._-]*(\d{1,2})$/iu;
const EXTRAS_FOLDER = /^(?:specials?|sps?|extras?|bonus|ova|oad|ncop|nced|nc|menus?|featurettes?)$/iu;

function byReleaseName(relative: string, inInbox: boolean): SeriesEpisode {
  const segments = relative.split('/').filter(Boolean);
  const stem = withoutExtension(segments.at(-1)!);
  let folders = segments.slice(0, -1);
  const isStream = folders.length >= 2 && /^stream$/iu.test(folders.at(-1)!) && /^bdmv$/iu.test(folders.at(-2)!);
  if (isStream) folders = folders.slice(0, -2);

  let season: number | null = null;
  let disc: number | null = null;
  let extras: string | null = null;
  let folderTitle: string | null = null;
  for (const folder of [...folders].reverse()) {
    const bare = folder.trim();
    const seasonMatch = SEASON_FOLDER.exec(bare);
    if (seasonMatch) {
      season ??= Number(seasonMatch[1]);
      continue;
    }
    if (EXTRAS_FOLDER.test(bare)) {
      extras ??= bare;
      continue;
    }
    const read = readReleaseName(folder);
    disc ??= read.disc;
    if (!read.title) continue; // "Disc 2", "BD1"
    folderTitle = read.title;
    season ??= read.season;
    break;
  }

  if ((isStream || disc !== null) && STREAM_FILE.test(stem) && folderTitle) {
    return { series: safeName(withSeason(folderTitle, season, extras)), episode: disc === null ? normaliseEpisode(stem) : `disc${disc}-${stem}` };
  }

  const own = readReleaseName(stem);
  const title = inInbox ? folderTitle ?? own.title : own.title ?? folderTitle;
  if (!title) return { series: safeName(stem), episode: own.episode ?? '01' };
  const series = withSeason(title, own.season ?? season, extras);
  return { series: safeName(series), episode: own.episode ?? extraName(own.title, title) };
}

function withSeason(title: string, season: number | null, extras: string | null): string {
  return [title, season !== null && season !== 1 ? `S${season}` : null, extras].filter(Boolean).join(' ');
}

/** A file without a number in a series folder ("Show/NCOP.m2ts", "Show/Show - Recap.m2ts") is named by its own title; a film is episode 01. */
function extraName(own: string | null, series: string): string {
  if (!own || safeName(own).toLowerCase() === safeName(series).toLowerCase()) return '01';
  const prefix = `${series} - `;
  return safeName(own.toLowerCase().startsWith(prefix.toLowerCase()) ? own.slice(prefix.length) : own);
}

function relativeToInbox(file: string, inboxes: readonly string[]): string | null {
  const absolute = path.resolve(file);
  for (const inbox of inboxes) {
    const relative = path.relative(path.resolve(inbox), absolute);
    if (relative && !relative.startsWith('..') && !path.isAbsolute(relative)) return relative.split(path.sep).join('/');
  }
  return null;
}

/** A file outside every inbox (`celforge process ~/Downloads/Show 05.m2ts`): by its own name, then with its folder. */
function outsideCandidates(file: string): string[] {
  const absolute = path.resolve(file);
  return [path.basename(absolute), `${path.basename(path.dirname(absolute))}/${path.basename(absolute)}`];
}

function withoutExtension(name: string): string {
  return name.slice(0, name.length - path.extname(name).length);
}

/** Keeps letters (any script), digits, dots and dashes; the rest becomes "-". */
export function safeName(text: string): string {
  const cleaned = text
    .normalize('NFC')
    .replace(/[^\p{L}\p{N}.-]+/gu, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '');
  return cleaned || 'untitled';
}

function normaliseEpisode(text: string): string {
  return /^\d+$/.test(text) ? String(Number(text)).padStart(2, '0') : safeName(text);
}
