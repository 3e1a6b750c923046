/**
 * One video's face detections (faces.jsonl beside its frame map): a line per
 * kept frame, in frame order, with the boxes found and whether the frame
 * passed (at least one face). Written as frames are looked at; a restart
 * continues after the last complete line.
 */
import { JsonLinesWriter, readJsonLines } from './json-lines-file.ts';

export interface FaceRecord {
  frame: number;
  /** Relative to the library. */
  file: string;
  sha256: string;
  detector: string;
  faces: { x: number; y: number; width: number; height: number; score: number }[];
  passed: boolean;
}

export function readFaces(file: string): Promise<FaceRecord[]> {
  return readJsonLines<FaceRecord>(file, (record) => typeof record.frame === 'number' && Array.isArray(record.faces));
}

export class FacesWriter extends JsonLinesWriter<FaceRecord> {}
