/**
 * Append-only files of one JSON object per line. A line is appended only
 * once what it names is complete, so the file is the record of what exists;
 * a line a crash cut short (or one out of order) ends the file and is cut
 * away on read.
 */
import { createReadStream, existsSync } from 'node:fs';
import { open, truncate, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fsyncDir, replaceFileDurably } from './durable-file.ts';

/** Reads the records, truncating the file after the last one `accept` takes. */
export async function readJsonLines<T>(file: string, accept: (record: T, index: number) => boolean): Promise<T[]> {
  if (!existsSync(file)) return [];
  const records: T[] = [];
  let goodBytes = 0;
  let damaged = false;
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) {
    if (damaged) break;
    try {
      const record = JSON.parse(line) as T;
      if (!accept(record, records.length)) throw new Error('out of order');
      records.push(record);
      goodBytes += Buffer.byteLength(line) + 1;
    } catch {
      damaged = true;
    }
  }
  if (damaged) await truncate(file, goodBytes);
  return records;
}

export class JsonLinesWriter<T> {
  readonly file: string;
  #handle: FileHandle | null = null;

  constructor(file: string) {
    this.file = file;
  }

  async append(records: readonly T[]): Promise<number> {
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

/** Replaces the whole file atomically (a change in the middle). */
export function rewriteJsonLines<T>(file: string, records: readonly T[]): Promise<void> {
  return replaceFileDurably(file, records.map((record) => `${JSON.stringify(record)}\n`).join(''));
}
