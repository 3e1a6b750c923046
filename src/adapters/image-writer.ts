/**
 * Writes decoded frames as images (sharp): full-size lossless PNG, and small
 * JPEG previews for review. Each file goes to `<name>.tmp` and is renamed;
 * full frames are fsynced first, because the frame map will vouch for them.
 * The same pixels always give the same PNG bytes, which restore relies on.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { writeThenRename } from './durable-file.ts';

/**
 * Measured on grainy 1080p frames: unfiltered, zlib levels 2 to 6 give the
 * same size (grain does not compress) and level 2 is fastest; adaptive
 * filtering makes files ~26% smaller for ~40% more time.
 */
export type PngCompression = 'fast' | 'small';
export const PNG_OPTIONS = {
  fast: { compressionLevel: 2, adaptiveFiltering: false },
  small: { compressionLevel: 3, adaptiveFiltering: true },
} as const;

export interface RawImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

function fromRaw(image: RawImage) {
  return sharp(image.rgb, { raw: { width: image.width, height: image.height, channels: 3 } });
}

/** Returns the bytes written and their SHA-256 (the catalog's key, so no one reads the file back to hash it). */
export async function writeFramePng(image: RawImage, file: string, compression: PngCompression): Promise<{ bytes: number; sha256: string }> {
  const bytes = await fromRaw(image).png(PNG_OPTIONS[compression]).toBuffer();
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  await writeImageFile(file, bytes, true);
  return { bytes: bytes.length, sha256 };
}

/** Returns the bytes written. */
export async function writePreview(image: RawImage, file: string, width: number): Promise<number> {
  const bytes = await fromRaw(image).resize({ width }).jpeg({ quality: 75 }).toBuffer();
  await writeImageFile(file, bytes, false);
  return bytes.length;
}

/** Writes `<file>.tmp` and renames it (fsynced first with `sync`); a write that fails (a full disk) leaves nothing behind. */
export async function writeImageFile(file: string, bytes: Uint8Array, sync: boolean): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeThenRename(file, `${file}.tmp`, bytes, { sync });
}
