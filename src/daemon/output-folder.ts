/**
 * Which folder a video's frames go to. A folder belongs to one source
 * fingerprint: a different video under a series and episode that another
 * already holds (a corrected re-rip, the same name in two inbox folders, a
 * name the guesser got wrong) gets the episode with a suffix from its own
 * fingerprint, chosen once at intake and recorded in the job, so restarts
 * resume into the same folder and never into another video's frames.
 *
 * Who holds a name: the ledger first (a job's recorded folder), then the
 * folder on disk (its owner marker; frames without a marker, from an older
 * celforge, whose job is not in the ledger, are nobody's to resume).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { readFolderOwner, writeFolderOwner } from '../adapters/folder-owner.ts';
import { CelforgeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Job, JobNote } from './job.ts';
import type { Ledger } from './ledger.ts';
import { episodeFolderOf, videoLayout, type VideoLayout } from './library-paths.ts';

export interface FolderChoice {
  folder: string;
  /** Who holds the plain episode name, when it was taken; null when the job has it. */
  takenBy: string | null;
}

type Candidate = Pick<Job, 'id' | 'series' | 'episode' | 'source'>;

/**
 * Before writing into a video's folder (extraction, a restore): its frames
 * are a resume point only for the source that wrote them. A folder without a
 * marker (new, or from an older celforge) is this job's, since intake gave it
 * to this job alone; extraction marks it (`mark`).
 */
export async function claimVideoFolder(job: Pick<Job, 'id' | 'source'>, layout: VideoLayout, { mark }: { mark: boolean }): Promise<void> {
  const owner = await readFolderOwner(layout.owner);
  if (owner?.fingerprint === job.id) return;
  if (!owner) {
    if (mark) await writeFolderOwner(layout.owner, { fingerprint: job.id, source: job.source });
    return;
  }
  const folder = path.join(layout.library, layout.dir);
  throw new CelforgeError(
    'OUTPUT_FOLDER_TAKEN',
    `${folder}: holds the frames of another video (${owner.source}, fingerprint ${owner.fingerprint}), not of ${job.source}; ` +
      'celforge does not mix two videos in one folder. Its frames are left as they are: move that folder away (or give this video another name) and process it again.',
    { file: layout.owner },
  );
}

export async function chooseEpisodeFolder(job: Candidate, others: readonly Job[], library: string): Promise<FolderChoice> {
  let takenBy: string | null = null;
  for (const folder of [job.episode, `${job.episode}-${job.id.slice(0, 8)}`, `${job.episode}-${job.id}`]) {
    const holder = await holderOf(job, folder, others, library);
    if (!holder) return { folder, takenBy };
    takenBy ??= holder;
  }
  // Only reachable if two fingerprints share all 24 hex digits.
  throw new Error(`${job.source}: no free folder for ${job.series} ${job.episode} (${takenBy})`);
}

/** Who other than `job` holds `series/folder`, or null. */
async function holderOf(job: Candidate, folder: string, others: readonly Job[], library: string): Promise<string | null> {
  // Case-insensitive: on Windows and macOS "Show/03" and "show/03" are one folder.
  const key = folderKey(job.series, folder);
  const inLedger = others.find((other) => other.id !== job.id && folderKey(other.series, episodeFolderOf(other)) === key);
  if (inLedger) return inLedger.source;
  const layout = videoLayout(library, job.series, folder);
  const owner = await readFolderOwner(layout.owner);
  if (owner) return owner.fingerprint === job.id ? null : owner.source;
  return existsSync(layout.frameMap) ? `frames already in ${layout.dir}` : null;
}

function folderKey(series: string, folder: string): string {
  return `${series}/${folder}`.toLowerCase();
}

export function displacedNote(job: Candidate, choice: FolderChoice): JobNote {
  return {
    code: 'SAME_NAME_OTHER_VIDEO',
    message: `${job.series} episode ${job.episode} is already held by another video (${choice.takenBy}); ` +
      `this one (${job.source}) has its own folder ${job.series}/${choice.folder}. Rename one of them if the name is wrong.`,
    at: new Date().toISOString(),
  };
}

/**
 * Ledgers of older versions may hold several jobs sharing one folder (the
 * second "resumed" at the first one's last frame). The folder stays with the
 * job its marker names, else the first that extracted into it; each other job
 * gets its own folder and, if it had taken the frames for its own, extracts
 * again from the start.
 */
export async function separateSharedFolders(ledger: Ledger, library: string, log: Logger): Promise<void> {
  const groups = new Map<string, Job[]>();
  for (const job of ledger.jobs()) {
    const key = folderKey(job.series, episodeFolderOf(job));
    groups.set(key, [...(groups.get(key) ?? []), job]);
  }
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    const owner = await folderOwnerAmong(group, library);
    for (const job of group) {
      if (job === owner) continue;
      const choice = await chooseEpisodeFolder(job, ledger.jobs(), library);
      const note = displacedNote(job, { ...choice, takenBy: owner.source });
      const redo = job.extract !== undefined;
      await ledger.update(job.id, (target) => {
        target.folder = choice.folder;
        target.notes = [...(target.notes ?? []), note];
        if (redo) restartAtExtract(target);
      });
      log.warn({ job: job.id, file: job.source, folder: `${job.series}/${choice.folder}`, owner: owner.source },
        `${job.source}: shared the folder of ${owner.source}; it has its own folder now${redo ? ' and is extracted again' : ''}`);
    }
  }
}

async function folderOwnerAmong(group: Job[], library: string): Promise<Job> {
  const marked = await readFolderOwner(videoLayout(library, group[0]!.series, episodeFolderOf(group[0]!)).owner);
  const byMarker = marked && group.find((job) => job.id === marked.fingerprint);
  if (byMarker) return byMarker;
  const byAge = [...group].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  return byAge.find((job) => job.extract) ?? byAge[0]!;
}

function restartAtExtract(job: Job): void {
  delete job.extract;
  delete job.catalog;
  delete job.faces;
  delete job.tags;
  delete job.error;
  for (const stage of ['extract', 'catalog', 'faces', 'tags'] as const) delete job.timings[stage];
  job.stage = 'extract';
  job.state = 'queued';
  job.progress = null;
}
