/**
 * A video's identity: its size plus SHA-256 of its first and last MiB. The
 * same rip dropped twice, copied or renamed gets the same id, without reading
 * 30 GB.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

const SAMPLE_BYTES = 1024 * 1024;

export interface Fingerprint {
  id: string;
  sizeBytes: number;
}

export async function fingerprintFile(file: string): Promise<Fingerprint> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const hash = createHash('sha256').update(`celforge-v1:${size}:`);
    const headLength = Math.min(SAMPLE_BYTES, size);
    hash.update(await readAt(handle, 0, headLength));
    const tailStart = Math.max(headLength, size - SAMPLE_BYTES);
    hash.update(await readAt(handle, tailStart, size - tailStart));
    return { id: hash.digest('hex').slice(0, 24), sizeBytes: size };
  } finally {
    await handle.close();
  }
}

async function readAt(handle: Awaited<ReturnType<typeof open>>, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let offset = 0;
  while (offset < length) {
    const { bytesRead } = await handle.read(buffer, offset, length - offset, position + offset);
    if (bytesRead === 0) break;
    offset += bytesRead;
  }
  return buffer.subarray(0, offset);
}
