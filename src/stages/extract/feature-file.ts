/**
 * Features of every kept drawing, kept in a file rather than in memory: a
 * film has tens of thousands of drawings at ~100 KB of features each. The
 * file outlives an interrupted extraction, so that a resumed one finds the
 * drawings seen so far without decoding the video again. Fixed-size records:
 * a head (frame, mean luma, coarse signature: what the drawing index needs)
 * and the block means as 16-bit fixed-point values; the few most recent are
 * cached decoded.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { CHROMA_BLOCK, COARSE_COLS, COARSE_ROWS, LUMA_BLOCK, type FrameFeatures } from './features.ts';

const MAGIC = 'celforge-features-1';
const HEADER_BYTES = 64;
const COARSE_VALUES = COARSE_COLS * COARSE_ROWS;
/** frame (uint32, padded to 8), mean (float64), coarse signature (float32 each): the values the drawing index was given, exactly. */
const HEAD_BYTES = 16 + 4 * COARSE_VALUES;
const LUMA_SCALE = 200;
const CHROMA_SCALE = 100;
const CHROMA_OFFSET = 256;
const CACHE_SIZE = 32;

export interface DrawingHead {
  frame: number;
  mean: number;
  coarse: Float32Array;
}

export class FeatureFile {
  readonly path: string;
  readonly #fd: number;
  readonly #shape: Omit<FrameFeatures, 'luma' | 'chroma' | 'mean'>;
  readonly #lumaValues: number;
  readonly #recordBytes: number;
  readonly #cache = new Map<number, FrameFeatures>();
  #records: number;

  /** A new, empty file for frames of this size (an existing one is replaced). */
  static create(path: string, width: number, height: number): FeatureFile {
    const fd = openSync(path, 'w+');
    const header = Buffer.alloc(HEADER_BYTES);
    header.write(MAGIC, 0, 'latin1');
    header.writeUInt32LE(width, 32);
    header.writeUInt32LE(height, 36);
    writeSync(fd, header, 0, HEADER_BYTES, 0);
    return new FeatureFile(path, fd, width, height, 0);
  }

  /**
   * The file an interrupted extraction left, cut back to its first `records` drawings (those
   * after were decided but never recorded), or why it cannot be used.
   */
  static reopen(path: string, width: number, height: number, records: number): FeatureFile | string {
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch (error) {
      return `no feature file (${(error as NodeJS.ErrnoException).code})`;
    }
    const header = Buffer.alloc(HEADER_BYTES);
    readSync(fd, header, 0, HEADER_BYTES, 0);
    const file = new FeatureFile(path, fd, width, height, records);
    const problem = header.toString('latin1', 0, MAGIC.length) !== MAGIC
      ? 'the feature file is of another format'
      : header.readUInt32LE(32) !== width || header.readUInt32LE(36) !== height
        ? 'the feature file is of another frame size'
        : fstatSync(fd).size < file.#offset(records)
          ? `the feature file holds fewer than ${records} drawings`
          : null;
    if (problem) {
      closeSync(fd);
      return problem;
    }
    ftruncateSync(fd, file.#offset(records));
    return file;
  }

  private constructor(path: string, fd: number, width: number, height: number, records: number) {
    this.path = path;
    this.#fd = fd;
    const lumaCols = Math.ceil(width / LUMA_BLOCK);
    const lumaRows = Math.ceil(height / LUMA_BLOCK);
    const chromaCols = Math.ceil(width / CHROMA_BLOCK);
    const chromaRows = Math.ceil(height / CHROMA_BLOCK);
    this.#shape = { width, height, lumaCols, lumaRows, chromaCols, chromaRows };
    this.#lumaValues = lumaCols * lumaRows;
    this.#recordBytes = HEAD_BYTES + 2 * (this.#lumaValues + chromaCols * chromaRows * 2);
    this.#records = records;
  }

  /** Stores a drawing's features; returns the record number to read them back with. */
  append(frame: number, features: FrameFeatures, coarse: Float32Array): number {
    const record = Buffer.alloc(this.#recordBytes);
    record.writeUInt32LE(frame, 0);
    record.writeDoubleLE(features.mean, 8);
    for (let i = 0; i < COARSE_VALUES; i += 1) record.writeFloatLE(coarse[i]!, 16 + 4 * i);
    const values = this.#values(record);
    const { luma, chroma } = features;
    for (let i = 0; i < luma.length; i += 1) values[i] = Math.round(luma[i]! * LUMA_SCALE);
    for (let i = 0; i < chroma.length; i += 1) values[luma.length + i] = Math.round((chroma[i]! + CHROMA_OFFSET) * CHROMA_SCALE);
    writeSync(this.#fd, record, 0, record.length, this.#offset(this.#records));
    // Cached as a read gives them back, so that a comparison never depends on whether a record was cached (or a run resumed).
    this.#remember(this.#records, this.#decode(record));
    return this.#records++;
  }

  /** The heads of the first `count` records, in order. */
  heads(count: number): DrawingHead[] {
    const head = Buffer.alloc(HEAD_BYTES);
    const heads: DrawingHead[] = [];
    for (let record = 0; record < count; record += 1) {
      readSync(this.#fd, head, 0, HEAD_BYTES, this.#offset(record));
      const coarse = new Float32Array(COARSE_VALUES);
      for (let i = 0; i < COARSE_VALUES; i += 1) coarse[i] = head.readFloatLE(16 + 4 * i);
      heads.push({ frame: head.readUInt32LE(0), mean: head.readDoubleLE(8), coarse });
    }
    return heads;
  }

  read(recordNumber: number): FrameFeatures {
    const cached = this.#cache.get(recordNumber);
    if (cached) return cached;
    const record = Buffer.alloc(this.#recordBytes);
    readSync(this.#fd, record, 0, record.length, this.#offset(recordNumber));
    const features = this.#decode(record);
    this.#remember(recordNumber, features);
    return features;
  }

  /** Makes what was appended durable (before a resume point that counts on it is written). */
  sync(): void {
    fsyncSync(this.#fd);
  }

  close(): void {
    closeSync(this.#fd);
  }

  #values(record: Buffer): Uint16Array {
    return new Uint16Array(record.buffer, record.byteOffset + HEAD_BYTES, (this.#recordBytes - HEAD_BYTES) / 2);
  }

  #decode(record: Buffer): FrameFeatures {
    const values = this.#values(record);
    const luma = new Float32Array(this.#lumaValues);
    for (let i = 0; i < luma.length; i += 1) luma[i] = values[i]! / LUMA_SCALE;
    const chroma = new Float32Array(values.length - luma.length);
    for (let i = 0; i < chroma.length; i += 1) chroma[i] = values[luma.length + i]! / CHROMA_SCALE - CHROMA_OFFSET;
    return { ...this.#shape, luma, chroma, mean: record.readDoubleLE(8) };
  }

  #offset(record: number): number {
    return HEADER_BYTES + record * this.#recordBytes;
  }

  #remember(recordNumber: number, features: FrameFeatures): void {
    this.#cache.set(recordNumber, features);
    if (this.#cache.size > CACHE_SIZE) this.#cache.delete(this.#cache.keys().next().value!);
  }
}
