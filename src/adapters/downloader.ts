/**
 * Downloads one file to a path: into `<path>.part`, resuming a previous part
 * with an HTTP Range request (and again after a cut connection, a few
 * times), hashing as it goes, then verifying size and SHA-256 before the
 * rename. The expected hash is the pinned one, else the one the server
 * publishes for the file (Hugging Face's X-Linked-Etag for LFS files). A
 * mismatch removes the part and fails with both hashes.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { CelforgeError, errorMessage } from '../errors.ts';

export interface DownloadRequest {
  url: string;
  dest: string;
  sha256?: string | null;
  size?: number | null;
  onProgress?: (received: number, total: number | null) => void;
  signal?: AbortSignal;
  /** Attempts after a cut connection. */
  retries?: number;
}

/** The whole file came, and it is not the one expected: trying again downloads it all again for the same answer. */
export class DownloadMismatch extends CelforgeError {
  constructor(message: string) {
    super('FILE_NOT_FOUND', message);
  }
}

export interface DownloadResult {
  bytes: number;
  sha256: string;
  resumedFrom: number;
  attempts: number;
}

export async function download(request: DownloadRequest): Promise<DownloadResult> {
  const part = `${request.dest}.part`;
  await mkdir(path.dirname(request.dest), { recursive: true });
  const resumedFrom = existsSync(part) ? (await stat(part)).size : 0;
  let serverHash: string | null = null;
  let total: number | null = request.size ?? null;
  let lastError: unknown;
  const retries = request.retries ?? 3;
  for (let attempt = 1; attempt <= retries + 1; attempt += 1) {
    const have = existsSync(part) ? (await stat(part)).size : 0;
    try {
      const response = await fetch(request.url, {
        headers: have > 0 ? { Range: `bytes=${have}-` } : {},
        signal: request.signal,
        redirect: 'follow',
      });
      if (response.status === 416 && total !== null && have === total) break; // the part is already whole
      if (!response.ok) {
        throw new CelforgeError('FILE_NOT_FOUND', `${displayUrl(request.url)}: the server answered ${response.status} ${response.statusText}`);
      }
      serverHash ??= publishedSha256(response.headers);
      const appending = response.status === 206;
      const start = appending ? have : 0;
      total = request.size ?? lengthOf(response.headers, start) ?? total;
      const hash = createHash('sha256');
      if (appending) await hashFile(part, hash);
      const handle = await open(part, appending ? 'a' : 'w');
      let received = start;
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          await handle.write(chunk);
          hash.update(chunk);
          received += chunk.length;
          request.onProgress?.(received, total);
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (total !== null && received < total) throw new Error(`the connection closed after ${received} of ${total} bytes`);
      return await verify(request, part, hash.digest('hex'), received, serverHash, resumedFrom, attempt);
    } catch (error) {
      if (error instanceof CelforgeError || request.signal?.aborted) throw error;
      lastError = error;
    }
  }
  if (existsSync(part) && total !== null && (await stat(part)).size === total) {
    const hash = createHash('sha256');
    await hashFile(part, hash);
    return verify(request, part, hash.digest('hex'), total, serverHash, resumedFrom, retries + 1);
  }
  const resume = existsSync(part) ? `; the next try resumes from ${part}` : '';
  throw new CelforgeError('FILE_NOT_FOUND', `${displayUrl(request.url)}: download failed after ${retries + 1} attempts (${networkReason(lastError)})${resume}`, { cause: lastError });
}

async function verify(request: DownloadRequest, part: string, actual: string, bytes: number, serverHash: string | null, resumedFrom: number, attempts: number): Promise<DownloadResult> {
  const expected = request.sha256 ?? serverHash;
  const sizeWrong = request.size != null && bytes !== request.size;
  if (sizeWrong || (expected && expected.toLowerCase() !== actual)) {
    await rm(part, { force: true });
    const why = sizeWrong ? `${bytes} bytes, expected ${request.size}` : `SHA-256 ${actual}, expected ${expected}`;
    throw new DownloadMismatch(`${displayUrl(request.url)}: the download does not match (${why}); the partial file was removed`);
  }
  await rename(part, request.dest);
  return { bytes, sha256: actual, resumedFrom, attempts };
}

/** The address without credentials or query (a token in either stays out of logs and errors). */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return '(an invalid address)';
  }
}

/** Node's fetch says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND, a TLS error) is its cause. */
function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const detail = cause?.message ?? cause?.code;
  return detail ? `${errorMessage(error)}: ${detail}` : errorMessage(error);
}

function publishedSha256(headers: Headers): string | null {
  for (const name of ['x-linked-etag', 'etag']) {
    const value = headers.get(name)?.replace(/^W\//, '').replaceAll('"', '');
    if (value && /^[0-9a-f]{64}$/i.test(value)) return value.toLowerCase();
  }
  return null;
}

function lengthOf(headers: Headers, start: number): number | null {
  const range = /\/(\d+)$/.exec(headers.get('content-range') ?? '');
  if (range) return Number(range[1]);
  const length = headers.get('content-length');
  return length ? start + Number(length) : null;
}

function hashFile(file: string, hash: Hash): Promise<void> {
  return new Promise((resolve, reject) => {
    createReadStream(file).on('data', (chunk) => hash.update(chunk)).on('error', reject).on('end', () => resolve());
  });
}
