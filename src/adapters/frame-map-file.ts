/**
 * The frame map of one video on disk: one JSON object per source frame, in
 * frame order (JSON lines), appended as frames are decided and written. A
 * line is only appended once every file it names is complete, so the map is
 * the record of what exists; a line cut short by a crash is dropped on open.
 */
import { createReadStream, existsSync } from 'node:fs';
import { open, rename, truncate, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fsyncDir } from './durable-file.ts';

export interface FrameRecord {
  frame: number;
  status: 'kept' | 'duplicate';
  duplicateOf: number | null;
  scene: number;
  /** The full-size image, relative to the library; null for a duplicate kept by reference. */
  file: string | null;
  /** A small picture of a duplicate kept by reference, relative to the library. */
  preview: string | null;
  /** SHA-256 of `file`, taken as it was written. */
  sha256?: string;
  /** Set when a person restored a duplicate as kept. */
  restored?: true;
}

/** Reads the map, dropping (and truncating away) a last line a crash cut short. */
export async function readFrameMap(file: string): Promise<FrameRecord[]> {
  if (!existsSync(file)) return [];
  const records: FrameRecord[] = [];
  let goodBytes = 0;
  let damaged = false;
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) {
    if (damaged) break;
    try {
      const record = JSON.parse(line) as FrameRecord;
      if (record.frame !== records.length) throw new Error('out of order');
      records.push(record);
      goodBytes += Buffer.byteLength(line) + 1;
    } catch {
      damaged = true;
    }
  }
  if (damaged) await truncate(file, goodBytes);
  return records;
}

export class FrameMapWriter {
  readonly file: string;
  #handle: FileHandle | null = null;

  constructor(file: string) {
    this.file = file;
  }

  async append(records: readonly FrameRecord[]): Promise<number> {
    if (records.length === 0) return 0;
    this.#handle ??= await open(this.file, 'a');
    const text = records.map((record) => `${JSON.stringify(record)}\n`).join('');
    await this.#handle.write(text);
    return Buffer.byteLength(text);
  }

  async sync(): Promise<void> {
    await this.#handle?.sync();
  }

  async close(): Promise<void> {
    await this.sync();
    await this.#handle?.close();
    this.#handle = null;
    await fsyncDir(path.dirname(this.file));
  }
}

/** Replaces the whole map atomically (a restore changes a line in the middle). */
export async function rewriteFrameMap(file: string, records: readonly FrameRecord[]): Promise<void> {
  const temporary = `${file}.tmp`;
  const handle = await open(temporary, 'w');
  try {
    await handle.writeFile(records.map((record) => `${JSON.stringify(record)}\n`).join(''));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
  await fsyncDir(path.dirname(file));
}
