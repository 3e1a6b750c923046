/**
 * The tag catalog: one SQLite file in the library (better-sqlite3, WAL).
 * Every image is keyed by the SHA-256 of its bytes, as in Hydrus. A tag is
 * recorded per source (a tagger, the face gate, an import, a person); what an
 * image "has" is derived: a person's word decides (added stays, removed stays
 * removed, remembered as deleted), otherwise any automatic source. That
 * derived set is kept in its own table, updated with every write, so that a
 * search reads only index rows.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseQuery, type QueryTerm } from '../catalog/query.ts';
import { formatTag, parseTag, type Tag, type TagSource } from '../catalog/tags.ts';
import { CelforgeError, errorMessage } from '../errors.ts';

const CURRENT = 0;
/** Hydrus's number for a deleted tag. */
const DELETED = 2;
/**
 * 1: the first schema; 2: `rejected_from`, where a rejected image was, so that `unreject` can put it back;
 * 3: `origin_hash`, `origin_box`, the frame and face box a crop was cut from;
 * 4: character clusters and crop features (src/catalog/character-clusters.ts, src/catalog/crop-features.ts).
 */
const SCHEMA_VERSION = 4;

export interface CatalogImage {
  id: number;
  hash: string;
  /** Relative to the library when inside it, else absolute. */
  path: string;
  size: number;
  width: number;
  height: number;
  series: string | null;
  episode: string | null;
  scene: number | null;
  frame: number | null;
  source: string | null;
  rejectedAt: string | null;
  /** Where a rejected image was before it went to the trash (relative to the library); null when it is not there by `reject`. */
  rejectedFrom: string | null;
  /** For a crop: its source frame's hash and the face box in frame pixels [x, y, width, height]; null for a frame. */
  origin: { hash: string; box: [number, number, number, number] } | null;
}

export type NewImage = Omit<CatalogImage, 'id' | 'rejectedAt' | 'rejectedFrom' | 'origin'> & { origin?: CatalogImage['origin'] };

export class Catalog {
  readonly file: string;
  readonly #db: Database.Database;
  readonly #tagIds = new Map<string, number>();
  readonly #statements = new Map<string, Database.Statement>();

  private constructor(file: string, db: Database.Database) {
    this.file = file;
    this.#db = db;
  }

  static open(file: string): Catalog {
    mkdirSync(path.dirname(file), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 10000');
      db.pragma('foreign_keys = ON');
      migrate(db);
    } catch (error) {
      throw new CelforgeError('LEDGER_CORRUPT', `${file}: the catalog cannot be opened (${errorMessage(error)}). It was left as it is; restore it from a backup or move it away to start a new one.`, { file, cause: error });
    }
    return new Catalog(file, db);
  }

  /** The SQLite handle, for the stores that keep their own tables in this file (src/catalog/character-clusters.ts, crop-features.ts). */
  get database(): Database.Database {
    return this.#db;
  }

  close(): void {
    this.#db.close();
  }

  /** Runs `work` in one transaction: many additions commit (and sync) once. */
  batch<T>(work: () => T): T {
    return this.#db.transaction(work)();
  }

  /** Adds an image (or finds it by hash) and merges these tags into it. */
  addImage(image: NewImage, tags: readonly string[], source: TagSource): { id: number; isNew: boolean } {
    return this.#db.transaction(() => {
      const existing = this.#sql('SELECT id FROM images WHERE hash = ?').get(image.hash) as { id: number } | undefined;
      let id = existing?.id;
      if (id === undefined) {
        const { origin, ...fields } = image;
        id = Number(this.#sql(`INSERT INTO images (hash, path, size, width, height, series, episode, scene, frame, source, origin_hash, origin_box, added_at)
          VALUES (@hash, @path, @size, @width, @height, @series, @episode, @scene, @frame, @source, @originHash, @originBox, @now)`)
          .run({ ...fields, originHash: origin?.hash ?? null, originBox: origin ? JSON.stringify(origin.box) : null, now: now() }).lastInsertRowid);
      }
      for (const tag of tags) this.#addTag(id, tag, source);
      return { id, isNew: existing === undefined };
    })();
  }

  /** Replaces what one automatic source says about an image (re-tagging); a person's edits stay as they are. */
  setSourceTags(hash: string, source: Exclude<TagSource, 'person'>, tags: readonly string[]): void {
    this.#db.transaction(() => {
      const id = this.#idOf(hash);
      const wanted = new Set(tags.map((text) => this.#tagId(text)).filter((tagId): tagId is number => tagId !== null));
      const before = this.#sql('SELECT tag_id FROM image_tags WHERE image_id = ? AND source = ?').all(id, source) as { tag_id: number }[];
      for (const { tag_id } of before) {
        if (wanted.has(tag_id)) continue;
        this.#sql('DELETE FROM image_tags WHERE image_id = ? AND tag_id = ? AND source = ?').run(id, tag_id, source);
        this.#refresh(id, tag_id);
      }
      for (const tagId of wanted) this.#upsert(id, tagId, source, CURRENT);
    })();
  }

  /** A person adds and removes tags on every image the query finds. Returns how many images. */
  personEdit(query: string, add: readonly string[], remove: readonly string[]): number {
    return this.#db.transaction(() => {
      this.#select(query);
      const stamp = now();
      for (const [tags, state] of [[add, CURRENT], [remove, DELETED]] as const) {
        for (const text of tags) {
          const tagId = this.#tagId(text);
          if (tagId === null) continue;
          // "WHERE true": SQLite cannot otherwise tell an upsert's ON CONFLICT from a join's ON.
          this.#sql(`INSERT INTO image_tags (image_id, tag_id, source, state, updated_at)
            SELECT id, ?, 'person', ?, ? FROM temp.selection WHERE true
            ON CONFLICT (image_id, tag_id, source) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`).run(tagId, state, stamp);
          if (state === CURRENT) {
            this.#sql('INSERT OR IGNORE INTO effective (tag_id, image_id) SELECT ?, id FROM temp.selection').run(tagId);
          } else {
            this.#sql('DELETE FROM effective WHERE tag_id = ? AND image_id IN (SELECT id FROM temp.selection)').run(tagId);
          }
        }
      }
      return (this.#sql('SELECT count(*) AS n FROM temp.selection').get() as { n: number }).n;
    })();
  }

  /** A person's edit of one image (a correction pulled from Hydrus, a tag changed on the review page). */
  personEditImage(hash: string, add: readonly string[], remove: readonly string[]): void {
    this.#db.transaction(() => {
      const id = this.#idOf(hash);
      for (const text of add) {
        const tagId = this.#tagId(text);
        if (tagId !== null) this.#upsert(id, tagId, 'person', CURRENT);
      }
      for (const text of remove) {
        const tagId = this.#tagId(text);
        if (tagId !== null) this.#upsert(id, tagId, 'person', DELETED);
      }
    })();
  }

  /** The images a query finds in the dataset, or with `rejected`, among those taken out of it. */
  search(query: string, options: { limit?: number; offset?: number; rejected?: boolean } = {}): CatalogImage[] {
    const { sql, params } = compile(parseQuery(query));
    const state = options.rejected ? 'rejected_at IS NOT NULL' : 'rejected_at IS NULL';
    const rows = this.#sql(`SELECT * FROM images WHERE id IN (${sql}) AND ${state} ORDER BY id LIMIT ? OFFSET ?`)
      .all(...params, options.limit ?? -1, options.offset ?? 0) as ImageRow[];
    return rows.map(toImage);
  }

  count(query: string): number {
    const { sql, params } = compile(parseQuery(query));
    return (this.#sql(`SELECT count(*) AS n FROM images WHERE id IN (${sql}) AND rejected_at IS NULL`).get(...params) as { n: number }).n;
  }

  /** The most common tags among the images a query finds, with how many carry each. */
  tagCounts(query: string, limit = 50): { tag: string; count: number }[] {
    const { sql, params } = compile(parseQuery(query));
    const rows = this.#sql(`SELECT t.namespace, t.name, count(*) AS count FROM effective e JOIN tags t ON t.id = e.tag_id
      WHERE e.image_id IN (SELECT id FROM images WHERE id IN (${sql}) AND rejected_at IS NULL)
      GROUP BY e.tag_id ORDER BY count DESC, t.namespace, t.name LIMIT ?`).all(...params, limit) as (Tag & { count: number })[];
    return rows.map((row) => ({ tag: formatTag(row), count: row.count }));
  }

  get(hash: string): CatalogImage | undefined {
    const row = this.#sql('SELECT * FROM images WHERE hash = ?').get(hash) as ImageRow | undefined;
    return row && toImage(row);
  }

  /** The tags an image has (a person's removals applied), sorted. */
  tagsOf(hash: string): string[] {
    return (this.#sql(`SELECT t.namespace, t.name FROM effective e JOIN tags t ON t.id = e.tag_id
      WHERE e.image_id = ? ORDER BY t.namespace, t.name`).all(this.#idOf(hash)) as Tag[]).map(formatTag);
  }

  /** Who says what about an image: every current tag with its source, sorted by tag then source. */
  tagSources(hash: string): { tag: string; source: TagSource }[] {
    return (this.#sql(`SELECT t.namespace, t.name, it.source FROM image_tags it JOIN tags t ON t.id = it.tag_id
      WHERE it.image_id = ? AND it.state = ? ORDER BY t.namespace, t.name, it.source`).all(this.#idOf(hash), CURRENT) as (Tag & { source: TagSource })[])
      .map((row) => ({ tag: formatTag(row), source: row.source }));
  }

  /** Tags a person removed from an image; automatic sources cannot bring them back. */
  deletedTagsOf(hash: string): string[] {
    return (this.#sql(`SELECT t.namespace, t.name FROM image_tags it JOIN tags t ON t.id = it.tag_id
      WHERE it.image_id = ? AND it.source = 'person' AND it.state = ? ORDER BY t.namespace, t.name`).all(this.#idOf(hash), DELETED) as Tag[]).map(formatTag);
  }

  /** Takes an image back into the dataset, at its place in the library. */
  markKept(hash: string, filePath: string): void {
    this.#sql('UPDATE images SET rejected_at = NULL, rejected_from = NULL, path = ? WHERE hash = ?').run(filePath, hash);
  }

  /** Marks an image rejected, at its new place (the trash, or duplicates/); `from` is where `unreject` puts it back. */
  markRejected(hash: string, newPath: string, from: string | null = null): void {
    this.#sql('UPDATE images SET rejected_at = ?, path = ?, rejected_from = ? WHERE hash = ?').run(now(), newPath, from, hash);
  }

  #addTag(imageId: number, text: string, source: TagSource): void {
    const tagId = this.#tagId(text);
    if (tagId !== null) this.#upsert(imageId, tagId, source, CURRENT);
  }

  #upsert(imageId: number, tagId: number, source: TagSource, state: number): void {
    this.#sql(`INSERT INTO image_tags (image_id, tag_id, source, state, updated_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (image_id, tag_id, source) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`).run(imageId, tagId, source, state, now());
    this.#refresh(imageId, tagId);
  }

  /** Re-derives whether the image has the tag: a person's row decides, else any current automatic row. */
  #refresh(imageId: number, tagId: number): void {
    const person = this.#sql("SELECT state FROM image_tags WHERE image_id = ? AND tag_id = ? AND source = 'person'").get(imageId, tagId) as { state: number } | undefined;
    const has = person
      ? person.state === CURRENT
      : this.#sql("SELECT 1 FROM image_tags WHERE image_id = ? AND tag_id = ? AND source <> 'person' AND state = ? LIMIT 1").get(imageId, tagId, CURRENT) !== undefined;
    if (has) this.#sql('INSERT OR IGNORE INTO effective (tag_id, image_id) VALUES (?, ?)').run(tagId, imageId);
    else this.#sql('DELETE FROM effective WHERE tag_id = ? AND image_id = ?').run(tagId, imageId);
  }

  /** Prepared statements, made once: preparing costs more than running a small one. */
  #sql(text: string): Database.Statement {
    let statement = this.#statements.get(text);
    if (!statement) {
      statement = this.#db.prepare(text);
      this.#statements.set(text, statement);
    }
    return statement;
  }

  #tagId(text: string): number | null {
    const tag = parseTag(text);
    if (!tag) return null;
    const key = formatTag(tag);
    const cached = this.#tagIds.get(key);
    if (cached !== undefined) return cached;
    this.#sql('INSERT OR IGNORE INTO tags (namespace, name) VALUES (?, ?)').run(tag.namespace, tag.name);
    const { id } = this.#sql('SELECT id FROM tags WHERE namespace = ? AND name = ?').get(tag.namespace, tag.name) as { id: number };
    this.#tagIds.set(key, id);
    return id;
  }

  #idOf(hash: string): number {
    const row = this.#sql('SELECT id FROM images WHERE hash = ?').get(hash) as { id: number } | undefined;
    if (!row) throw new CelforgeError('FILE_NOT_FOUND', `${this.file}: no image with hash ${hash}`);
    return row.id;
  }

  /** Fills temp.selection with the ids a query finds. */
  #select(query: string): void {
    const { sql, params } = compile(parseQuery(query));
    this.#db.exec('CREATE TEMP TABLE IF NOT EXISTS selection (id INTEGER PRIMARY KEY); DELETE FROM temp.selection;');
    this.#sql(`INSERT INTO temp.selection SELECT id FROM images WHERE id IN (${sql}) AND rejected_at IS NULL`).run(...params);
  }
}

interface ImageRow {
  id: number; hash: string; path: string; size: number; width: number; height: number;
  series: string | null; episode: string | null; scene: number | null; frame: number | null; source: string | null;
  rejected_at: string | null; rejected_from: string | null; origin_hash: string | null; origin_box: string | null;
}

function toImage(row: ImageRow): CatalogImage {
  const { rejected_at, rejected_from, origin_hash, origin_box, ...rest } = row;
  const origin = origin_hash && origin_box ? { hash: origin_hash, box: JSON.parse(origin_box) as [number, number, number, number] } : null;
  return { ...rest, rejectedAt: rejected_at, rejectedFrom: rejected_from, origin };
}

/** A compound SELECT of image ids: positive terms intersected, negative ones taken away. */
function compile(terms: QueryTerm[]): { sql: string; params: unknown[] } {
  const part = (term: QueryTerm) => term.kind === 'tag'
    ? { sql: 'SELECT image_id FROM effective WHERE tag_id = (SELECT id FROM tags WHERE namespace = ? AND name = ?)', params: [term.tag.namespace, term.tag.name] }
    : { sql: 'SELECT image_id FROM effective WHERE tag_id IN (SELECT id FROM tags WHERE namespace = ?)', params: [term.namespace] };
  const positive = terms.filter((term) => !term.negated).map(part);
  const negative = terms.filter((term) => term.negated).map(part);
  const base = positive.length ? positive : [{ sql: 'SELECT id FROM images', params: [] as unknown[] }];
  const sql = [base.map((p) => p.sql).join(' INTERSECT '), ...negative.map((p) => `EXCEPT ${p.sql}`)].join(' ');
  return { sql, params: [...base.flatMap((p) => p.params), ...negative.flatMap((p) => p.params)] };
}

function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) throw new Error(`its schema version ${version} is newer than this celforge (${SCHEMA_VERSION})`);
  if (version === SCHEMA_VERSION) return;
  if (version === 0) createSchemaVersion1(db);
  if (version < 2) {
    db.transaction(() => {
      db.exec('ALTER TABLE images ADD COLUMN rejected_from TEXT');
      // Before version 2, `reject` moved a file to the same relative path under trash/.
      db.exec("UPDATE images SET rejected_from = substr(path, 7) WHERE rejected_at IS NOT NULL AND path LIKE 'trash/%' AND path NOT LIKE 'trash/outside/%'");
      db.pragma('user_version = 2');
    })();
  }
  if (version < 3) {
    db.transaction(() => {
      db.exec('ALTER TABLE images ADD COLUMN origin_hash TEXT');
      db.exec('ALTER TABLE images ADD COLUMN origin_box TEXT');
      db.pragma('user_version = 3');
    })();
  }
  if (version < 4) {
    db.transaction(() => {
      createCharacterTables(db);
      db.pragma('user_version = 4');
    })();
  }
}

/** Clusters of crops by character, a person's "not this one" (moved_out), and each crop's features per model. */
function createCharacterTables(db: Database.Database): void {
  db.exec(`
    CREATE TABLE character_clusters (
      id INTEGER PRIMARY KEY,
      series TEXT NOT NULL,
      name TEXT,
      named_by TEXT CHECK (named_by IN ('person', 'reference')),
      noise INTEGER NOT NULL DEFAULT 0,
      created_at TEXT NOT NULL
    );
    CREATE INDEX character_clusters_by_series ON character_clusters (series);
    CREATE TABLE cluster_members (
      image_id INTEGER PRIMARY KEY REFERENCES images (id),
      cluster_id INTEGER NOT NULL REFERENCES character_clusters (id),
      by_person INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX cluster_members_by_cluster ON cluster_members (cluster_id, image_id);
    CREATE TABLE moved_out (
      image_id INTEGER NOT NULL REFERENCES images (id),
      cluster_id INTEGER NOT NULL REFERENCES character_clusters (id),
      PRIMARY KEY (image_id, cluster_id)
    ) WITHOUT ROWID;
    CREATE TABLE crop_features (
      image_id INTEGER NOT NULL REFERENCES images (id),
      model TEXT NOT NULL,
      feature BLOB NOT NULL,
      PRIMARY KEY (image_id, model)
    ) WITHOUT ROWID;
    CREATE INDEX images_by_origin ON images (origin_hash);
  `);
}

function createSchemaVersion1(db: Database.Database): void {
  db.exec(`
    CREATE TABLE images (
      id INTEGER PRIMARY KEY,
      hash TEXT NOT NULL UNIQUE,
      path TEXT NOT NULL,
      size INTEGER NOT NULL,
      width INTEGER NOT NULL,
      height INTEGER NOT NULL,
      series TEXT, episode TEXT, scene INTEGER, frame INTEGER, source TEXT,
      rejected_at TEXT,
      added_at TEXT NOT NULL
    );
    CREATE TABLE tags (id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (namespace, name));
    CREATE TABLE image_tags (
      image_id INTEGER NOT NULL REFERENCES images (id),
      tag_id INTEGER NOT NULL REFERENCES tags (id),
      source TEXT NOT NULL,
      state INTEGER NOT NULL,
      updated_at TEXT NOT NULL,
      PRIMARY KEY (image_id, tag_id, source)
    ) WITHOUT ROWID;
    CREATE TABLE effective (tag_id INTEGER NOT NULL, image_id INTEGER NOT NULL, PRIMARY KEY (tag_id, image_id)) WITHOUT ROWID;
    CREATE INDEX effective_by_image ON effective (image_id, tag_id);
    PRAGMA user_version = 1;
  `);
}

function now(): string {
  return new Date().toISOString();
}
