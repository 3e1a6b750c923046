/** Reading small text files (markers, locks) that may not be there yet. */
import { readFile } from 'node:fs/promises';

/** The file's text, or null when it does not exist; any other failure is thrown. */
export async function readTextIfPresent(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
