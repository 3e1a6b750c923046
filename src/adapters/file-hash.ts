/** SHA-256 of a file's bytes, streamed: the catalog's key for an image, as in Hydrus. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export function sha256Of(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}
