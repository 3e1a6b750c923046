/**
 * Features of every kept drawing, kept in a temporary file rather than in
 * memory: a film has tens of thousands of drawings at ~100 KB of features
 * each. Fixed-size records of 16-bit fixed-point values; the few most recent
 * are cached decoded.
 */
import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import type { FrameFeatures } from './features.ts';

const LUMA_SCALE = 200;
const CHROMA_SCALE = 100;
const CHROMA_OFFSET = 256;
const CACHE_SIZE = 32;

export class FeatureFile {
  readonly path: string;
  readonly #fd: number;
  readonly #cache = new Map<number, FrameFeatures>();
  #records = 0;
  #template: FrameFeatures | null = null;

  constructor(path: string) {
    this.path = path;
    this.#fd = openSync(path, 'w+');
  }

  /** Stores the features; returns the record number to read them back with. */
  append(features: FrameFeatures): number {
    this.#template ??= features;
    const record = new Uint16Array(features.luma.length + features.chroma.length);
    for (let i = 0; i < features.luma.length; i += 1) record[i] = Math.round(features.luma[i]! * LUMA_SCALE);
    for (let i = 0; i < features.chroma.length; i += 1) {
      record[features.luma.length + i] = Math.round((features.chroma[i]! + CHROMA_OFFSET) * CHROMA_SCALE);
    }
    writeSync(this.#fd, new Uint8Array(record.buffer), 0, record.byteLength, this.#records * record.byteLength);
    this.#remember(this.#records, features);
    return this.#records++;
  }

  read(recordNumber: number, mean: number): FrameFeatures {
    const cached = this.#cache.get(recordNumber);
    if (cached) return cached;
    const template = this.#template!;
    const record = new Uint16Array(template.luma.length + template.chroma.length);
    readSync(this.#fd, new Uint8Array(record.buffer), 0, record.byteLength, recordNumber * record.byteLength);
    const luma = new Float32Array(template.luma.length);
    for (let i = 0; i < luma.length; i += 1) luma[i] = record[i]! / LUMA_SCALE;
    const chroma = new Float32Array(template.chroma.length);
    for (let i = 0; i < chroma.length; i += 1) chroma[i] = record[luma.length + i]! / CHROMA_SCALE - CHROMA_OFFSET;
    const features = { ...template, luma, chroma, mean };
    this.#remember(recordNumber, features);
    return features;
  }

  close(): void {
    closeSync(this.#fd);
    rmSync(this.path, { force: true });
  }

  #remember(recordNumber: number, features: FrameFeatures): void {
    this.#cache.set(recordNumber, features);
    if (this.#cache.size > CACHE_SIZE) this.#cache.delete(this.#cache.keys().next().value!);
  }
}
