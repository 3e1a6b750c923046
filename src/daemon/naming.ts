/**
 * Series and episode of a video, from its path relative to the inbox folder,
 * by the configured patterns (named groups `series` and `episode`), tried in
 * order, case-insensitively, after dropping bracketed release tags and a
 * BDMV/STREAM folder pair. Results are made safe for file names.
 */
import path from 'node:path';

export interface SeriesEpisode {
  series: string;
  episode: string;
}

export function seriesAndEpisode(file: string, inboxes: readonly string[], patterns: readonly string[]): SeriesEpisode {
  for (const relative of candidatePaths(file, inboxes)) {
    const withoutExt = relative.slice(0, relative.length - path.extname(relative).length);
    const subject = withoutExt
      .replace(/(^|\/)BDMV\/STREAM\//iu, '$1') // a Blu-ray folder tree: the disc folder names the series
      .replace(/\s*[[(][^\])/]*[\])]/gu, ''); // release tags such as [BD 1080p] or (FLAC)
    for (const source of patterns) {
      const groups = new RegExp(source, 'iu').exec(subject)?.groups;
      if (groups?.series && groups.episode) {
        return { series: safeName(groups.series), episode: normaliseEpisode(groups.episode) };
      }
    }
  }
  return { series: safeName(path.parse(file).name), episode: '01' };
}

/**
 * The path relative to its inbox; a file outside every inbox (`celforge
 * process ~/Downloads/Show 05.m2ts`) is tried by its own name, then with its
 * folder as the series folder.
 */
function candidatePaths(file: string, inboxes: readonly string[]): string[] {
  const absolute = path.resolve(file);
  for (const inbox of inboxes) {
    const relative = path.relative(inbox, absolute);
    if (relative && !relative.startsWith('..') && !path.isAbsolute(relative)) return [relative.split(path.sep).join('/')];
  }
  return [path.basename(absolute), `${path.basename(path.dirname(absolute))}/${path.basename(absolute)}`];
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
