/**
 * Each crop's CCIP feature vector, per model, kept in the catalog file (table
 * `crop_features`, schema version 4) as float32 bytes: a new episode is
 * clustered with the series' earlier crops without computing theirs again,
 * and a restarted characters stage computes only the ones it lacks.
 */
import type { Statement } from 'better-sqlite3';
import type { Catalog } from '../adapters/catalog-store.ts';
import { CelforgeError } from '../errors.ts';

export class CropFeatures {
  readonly #catalog: Catalog;
  readonly #model: string;
  readonly #get: Statement;
  readonly #put: Statement;
  readonly #has: Statement;

  constructor(catalog: Catalog, model: string) {
    this.#catalog = catalog;
    this.#model = model;
    this.#get = catalog.database.prepare(`SELECT f.feature FROM crop_features f JOIN images i ON i.id = f.image_id
      WHERE i.hash = ? AND f.model = ?`).pluck();
    this.#has = catalog.database.prepare(`SELECT 1 FROM crop_features f JOIN images i ON i.id = f.image_id
      WHERE i.hash = ? AND f.model = ?`).pluck();
    this.#put = catalog.database.prepare(`INSERT OR REPLACE INTO crop_features (image_id, model, feature)
      SELECT id, ?, ? FROM images WHERE hash = ?`);
  }

  has(hash: string): boolean {
    return this.#has.get(hash, this.#model) !== undefined;
  }

  /** The stored features of these crops (those without any are left out). */
  get(hashes: Iterable<string>): Map<string, Float32Array> {
    const found = new Map<string, Float32Array>();
    for (const hash of hashes) {
      const bytes = this.#get.get(hash, this.#model) as Buffer | undefined;
      if (bytes) found.set(hash, toFeature(bytes));
    }
    return found;
  }

  /** Every crop of the series in the dataset (not rejected) with stored features, in the order they entered the catalog. */
  ofSeries(series: string): Map<string, Float32Array> {
    const rows = this.#catalog.database.prepare(`SELECT i.hash, f.feature FROM crop_features f JOIN images i ON i.id = f.image_id
      WHERE f.model = ? AND i.series = ? AND i.rejected_at IS NULL ORDER BY i.id`).raw().all(this.#model, series) as [string, Buffer][];
    return new Map(rows.map(([hash, bytes]) => [hash, toFeature(bytes)]));
  }

  put(features: ReadonlyMap<string, Float32Array>): void {
    this.#catalog.batch(() => {
      for (const [hash, feature] of features) {
        const bytes = Buffer.from(feature.buffer, feature.byteOffset, feature.byteLength);
        if (this.#put.run(this.#model, bytes, hash).changes !== 1) {
          throw new CelforgeError('FILE_NOT_FOUND', `${this.#catalog.file}: no image with hash ${hash} to keep the features of`);
        }
      }
    });
  }
}

/** Copied: the buffer need not be aligned for a Float32Array view. */
function toFeature(bytes: Buffer): Float32Array {
  return new Float32Array(new Uint8Array(bytes).buffer);
}
