/**
 * One video's crops (crops.jsonl beside faces.jsonl): a line per crop written,
 * in the order of the kept frames, then face, then kind. A line is appended
 * once its PNG is in place, so the file is the record of what exists; a
 * restart continues after the last frame recorded. `readCrops` is what the
 * later stages (tags, characters) read.
 */
import { JsonLinesWriter, readJsonLines } from './json-lines-file.ts';

export type CropKind = 'face' | 'upper_body';
export const CROP_KINDS: readonly CropKind[] = ['face', 'upper_body'];

/** [x, y, width, height] in whole frame pixels. */
export type PixelBox = [number, number, number, number];

export interface CropRecord {
  /** The source frame's number, scene and file (relative to the library) and SHA-256. */
  frame: number;
  scene: number;
  frameFile: string;
  frameSha256: string;
  /** Index of the face in the frame's faces.jsonl line. */
  faceIndex: number;
  kind: CropKind;
  /** The face box the crop was derived from, in frame pixels. */
  box: PixelBox;
  /** The region of the frame the crop holds, in frame pixels. */
  rect: PixelBox;
  /** Relative to the library. */
  file: string;
  sha256: string;
  width: number;
  height: number;
}

export function readCrops(file: string): Promise<CropRecord[]> {
  return readJsonLines<CropRecord>(
    file,
    (record) => typeof record.frame === 'number' && typeof record.sha256 === 'string' && typeof record.file === 'string' && Array.isArray(record.rect),
  );
}

export class CropsWriter extends JsonLinesWriter<CropRecord> {}
