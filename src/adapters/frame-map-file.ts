/**
 * The frame map of one video on disk: one JSON object per source frame, in
 * frame order (JSON lines), appended as frames are decided and written. A
 * line is only appended once every file it names is complete, so the map is
 * the record of what exists; a line cut short by a crash is dropped on open.
 */
import { JsonLinesWriter, readJsonLines, rewriteJsonLines } from './json-lines-file.ts';

export interface FrameRecord {
  frame: number;
  /** `rejected`: a kept frame a person took out of the dataset (`celforge reject`); `file` is its place in the trash. */
  status: 'kept' | 'duplicate' | 'rejected';
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
export function readFrameMap(file: string): Promise<FrameRecord[]> {
  return readJsonLines<FrameRecord>(file, (record, index) => record.frame === index);
}

export class FrameMapWriter extends JsonLinesWriter<FrameRecord> {}

/** Replaces the whole map atomically (a restore changes a line in the middle). */
export function rewriteFrameMap(file: string, records: readonly FrameRecord[]): Promise<void> {
  return rewriteJsonLines(file, records);
}
