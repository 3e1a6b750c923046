/**
 * Folders celforge writes into (the library, an export folder, the training
 * folder): created when missing, and refused up front with a message that
 * says "read-only" when they cannot be written, before any work is done.
 */
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { CelforgeError } from '../errors.ts';

/** Errors that mean the file system or the folder's permissions refuse writing. */
const READ_ONLY_CODES = new Set(['EROFS', 'EACCES', 'EPERM']);

/** `what` names the folder in the refusal: "the library", "the export folder". */
export async function ensureWritableFolder(dir: string, what: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (error) {
    throw (await readOnlyError(error, dir, what)) ?? error;
  }
}

/** Refuses a folder that cannot be written (or, when it does not exist yet, cannot be created), without making it. */
export async function assertWritableFolder(dir: string, what: string): Promise<void> {
  const blocked = await unwritableAncestor(dir);
  if (blocked) throw readOnly(dir, what, blocked);
}

/**
 * A CelforgeError naming the folder as read-only when `error` (from creating
 * or writing something under `dir`) means that, else null. The folder, or
 * the nearest one above it that exists, is asked whether it can be written:
 * a recursive mkdir on a read-only mount reports ENOENT (Node 20), and
 * EACCES may come from the parent of a folder still to be made.
 */
export async function readOnlyError(error: unknown, dir: string, what: string): Promise<CelforgeError | null> {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (!READ_ONLY_CODES.has(code) && code !== 'ENOENT') return null;
  const blocked = (await unwritableAncestor(dir)) ?? (READ_ONLY_CODES.has(code) ? dir : null);
  return blocked ? readOnly(dir, what, blocked, error) : null;
}

function readOnly(dir: string, what: string, blocked: string, cause?: unknown): CelforgeError {
  const where = blocked === dir ? '' : ` (${blocked} cannot be written, so it cannot be created)`;
  return new CelforgeError(
    'FOLDER_READ_ONLY',
    `${dir}: ${what} is read-only or not writable${where}. Make it writable (its mount and permissions), or choose another folder.`,
    { file: dir, cause },
  );
}

/** The folder or its nearest existing ancestor, when that cannot be written; else null. */
async function unwritableAncestor(dir: string): Promise<string | null> {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    try {
      await access(current, constants.F_OK);
    } catch {
      if (path.dirname(current) === current) return null;
      continue;
    }
    try {
      await access(current, constants.W_OK);
      return null;
    } catch (error) {
      return READ_ONLY_CODES.has((error as NodeJS.ErrnoException).code ?? '') ? current : null;
    }
  }
}
