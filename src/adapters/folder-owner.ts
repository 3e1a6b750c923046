/**
 * The owner marker of a video's output folder: the fingerprint and path of
 * the one source whose frames the folder holds. Written before the first
 * frame, so that no other video (the same name from another folder, a
 * corrected re-rip) can take the folder's frames for its own resume point.
 */
import { readTextIfPresent } from './text-file.ts';
import { replaceFileDurably } from './durable-file.ts';
import { CelforgeError, errorMessage } from '../errors.ts';

export interface FolderOwner {
  /** The source's fingerprint (the job id). */
  fingerprint: string;
  source: string;
}

/** The recorded owner, or null when the folder has no marker (new, or written by an older celforge). */
export async function readFolderOwner(file: string): Promise<FolderOwner | null> {
  const text = await readTextIfPresent(file);
  if (text === null) return null;
  try {
    const owner = JSON.parse(text) as Partial<FolderOwner>;
    if (typeof owner.fingerprint === 'string' && typeof owner.source === 'string') return { fingerprint: owner.fingerprint, source: owner.source };
    throw new Error('it has no "fingerprint" and "source"');
  } catch (error) {
    throw new CelforgeError(
      'OUTPUT_FOLDER_TAKEN',
      `${file}: the owner marker of this video folder cannot be read (${errorMessage(error)}). ` +
        'Restore it, or move the folder away to extract its video again; its frames are left as they are.',
      { file, cause: error },
    );
  }
}

export async function writeFolderOwner(file: string, owner: FolderOwner): Promise<void> {
  await replaceFileDurably(file, `${JSON.stringify(owner, null, 2)}\n`);
}
