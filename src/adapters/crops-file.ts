/**
 * One video's crops: the PNG bytes, cut losslessly from a frame's pixels
 * (sharp; written by image-writer.ts), and crops.jsonl beside faces.jsonl,
 * a line per crop written, in the order of the kept frames, then face, then
 * kind. A line is appended once its PNG is in place, so the file is the
 * record of what exists. `readCrops` is what the later stages (tags,
 * characters) read.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { PNG_OPTIONS, type PngCompression, type RawImage } from './image-writer.ts';
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

/** A frame's pixels as rgb24. */
export async function readFramePixels(file: string): Promise<RawImage> {
  const { data, info } = await sharp(file).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { rgb: data, width: info.width, height: info.height };
}

/** The PNG of one region of the frame, pixel for pixel, and its SHA-256 (the catalog's key). The same pixels always give the same bytes. */
export async function encodeCrop(frame: RawImage, rect: PixelBox, compression: PngCompression): Promise<{ bytes: Buffer; sha256: string }> {
  const [left, top, width, height] = rect;
  const bytes = await sharp(frame.rgb, { raw: { width: frame.width, height: frame.height, channels: 3 } })
    .extract({ left, top, width, height })
    .png(PNG_OPTIONS[compression])
    .toBuffer();
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

