/**
 * Character clusters: the crops of a series grouped by who they show (the
 * characters stage groups them by their CCIP features), kept in the catalog
 * file (tables `character_clusters`, `cluster_members`, `moved_out`, schema
 * version 4 in src/adapters/catalog-store.ts).
 *
 * A person works on them from the review page: `name`, `merge`, `moveOut`,
 * `markNoise`. The catalog follows at once: every member crop of a named
 * cluster, and the frame it was cut from, gets `character:<name>` (source
 * `ccip`, src/catalog/character-tags.ts); renaming replaces it; a noise
 * cluster gives none. A person's word wins: a name they gave is never
 * replaced by a name from reference pictures, a crop they moved out never
 * goes back into that cluster automatically (and loses its character tag as
 * a person's removal), and a crop a person placed (by a merge) stays where
 * they put it.
 *
 * The characters stage uses the automatic side: `create`, `add`,
 * `nameFromReference`, `assignments`, `exists`, `unclustered`.
 */
import type { Statement } from 'better-sqlite3';
import type { Catalog } from '../adapters/catalog-store.ts';
import { CelforgeError } from '../errors.ts';
import { characterTag, refreshCharacterTags } from './character-tags.ts';
import { checkPersonTags } from './person-tags.ts';
import { parseTag } from './tags.ts';

export interface ClusterSample { hash: string; path: string; }
export interface ClusterSummary {
  id: number; series: string; name: string | null; noise: boolean;
  /** Up to `sampleCount` crops, in a stable order (first added first). */
  size: number; samples: ClusterSample[];
}
export interface ClusterMember { hash: string; path: string; frame: number | null; episode: string | null; byPerson: boolean; }

interface ClusterRow { id: number; series: string; name: string | null; named_by: 'person' | 'reference' | null; noise: number; }

const DEFAULT_SAMPLES = 6;

export class CharacterClusters {
  readonly #catalog: Catalog;
  readonly #statements = new Map<string, Statement>();

  constructor(catalog: Catalog) {
    this.#catalog = catalog;
  }

  /** Series that have clusters, sorted. */
  seriesList(): string[] {
    return this.#sql('SELECT DISTINCT series FROM character_clusters ORDER BY series').pluck().all() as string[];
  }

  /** A series' clusters: named ones first, each group by size (largest first), then by age. */
  clusters(series: string, sampleCount = DEFAULT_SAMPLES): ClusterSummary[] {
    const rows = this.#sql(`SELECT c.*, (SELECT count(*) FROM cluster_members m WHERE m.cluster_id = c.id) AS size
      FROM character_clusters c WHERE c.series = ?
      ORDER BY c.name IS NULL, size DESC, c.id`).all(series) as (ClusterRow & { size: number })[];
    const samples = this.#sql(`SELECT i.hash, i.path FROM cluster_members m JOIN images i ON i.id = m.image_id
      WHERE m.cluster_id = ? ORDER BY i.id LIMIT ?`);
    return rows.map((row) => ({
      id: row.id, series: row.series, name: row.name, noise: row.noise === 1, size: row.size,
      samples: samples.all(row.id, sampleCount) as ClusterSample[],
    }));
  }

  /** Every crop in the cluster, by episode then frame. */
  members(clusterId: number): ClusterMember[] {
    this.#cluster(clusterId);
    return (this.#sql(`SELECT i.hash, i.path, i.frame, i.episode, m.by_person FROM cluster_members m JOIN images i ON i.id = m.image_id
      WHERE m.cluster_id = ? ORDER BY i.episode, i.frame, i.id`).all(clusterId) as (Omit<ClusterMember, 'byPerson'> & { by_person: number })[])
      .map(({ by_person, ...member }) => ({ ...member, byPerson: by_person === 1 }));
  }

  /** A person names the cluster (or renames it); its crops and their frames carry the name at once. */
  name(clusterId: number, name: string): void {
    const normal = validName(name, `the name of cluster ${clusterId}`);
    this.#catalog.batch(() => {
      this.#cluster(clusterId);
      this.#sql("UPDATE character_clusters SET name = ?, named_by = 'person' WHERE id = ?").run(normal, clusterId);
      refreshCharacterTags(this.#catalog, this.#memberHashes(clusterId));
    });
  }

  /** A person merges `otherId` into `targetId`: its crops join the target (placed by the person), and it disappears. */
  merge(targetId: number, otherId: number): void {
    this.#catalog.batch(() => {
      const target = this.#cluster(targetId);
      const other = this.#cluster(otherId);
      if (targetId === otherId) throw new CelforgeError('CONFIG_INVALID', `cluster ${targetId} cannot be merged into itself`);
      if (target.series !== other.series) {
        throw new CelforgeError('CONFIG_INVALID', `cluster ${otherId} (${other.series}) and cluster ${targetId} (${target.series}) are of different series and cannot be merged`);
      }
      const moved = this.#memberHashes(otherId);
      this.#sql('UPDATE cluster_members SET cluster_id = ?, by_person = 1 WHERE cluster_id = ?').run(targetId, otherId);
      this.#sql('INSERT OR IGNORE INTO moved_out (image_id, cluster_id) SELECT image_id, ? FROM moved_out WHERE cluster_id = ?').run(targetId, otherId);
      // A crop a person moved out of the target stays out of it, even when it came back with the other cluster.
      this.#sql('DELETE FROM cluster_members WHERE cluster_id = ? AND image_id IN (SELECT image_id FROM moved_out WHERE cluster_id = ?)').run(targetId, targetId);
      this.#sql('DELETE FROM moved_out WHERE cluster_id = ?').run(otherId);
      if (target.name === null && other.name !== null) {
        this.#sql('UPDATE character_clusters SET name = ?, named_by = ? WHERE id = ?').run(other.name, other.named_by, targetId);
      }
      this.#sql('DELETE FROM character_clusters WHERE id = ?').run(otherId);
      refreshCharacterTags(this.#catalog, [...moved, ...this.#memberHashes(targetId)]);
    });
  }

  /** A person takes crops out of the cluster: they lose its character tag (a person's removal) and never rejoin it automatically. */
  moveOut(clusterId: number, hashes: readonly string[]): void {
    this.#catalog.batch(() => {
      const cluster = this.#cluster(clusterId);
      const member = this.#sql('SELECT m.image_id FROM cluster_members m JOIN images i ON i.id = m.image_id WHERE i.hash = ? AND m.cluster_id = ?').pluck();
      const ids = hashes.map((hash) => {
        const id = member.get(hash, clusterId) as number | undefined;
        if (id === undefined) throw new CelforgeError('FILE_NOT_FOUND', `${this.#catalog.file}: no crop with hash ${hash} in cluster ${clusterId}`);
        return id;
      });
      for (const id of ids) {
        this.#sql('DELETE FROM cluster_members WHERE image_id = ?').run(id);
        this.#sql('INSERT OR IGNORE INTO moved_out (image_id, cluster_id) VALUES (?, ?)').run(id, clusterId);
      }
      if (cluster.name !== null) {
        for (const hash of hashes) this.#catalog.personEditImage(hash, [], [characterTag(cluster.name)]);
      }
      refreshCharacterTags(this.#catalog, hashes);
    });
  }

  /** A person says the cluster is noise (no one character) or takes that back; noise gives its crops no character tag. */
  markNoise(clusterId: number, noise: boolean): void {
    this.#catalog.batch(() => {
      this.#cluster(clusterId);
      this.#sql('UPDATE character_clusters SET noise = ? WHERE id = ?').run(noise ? 1 : 0, clusterId);
      refreshCharacterTags(this.#catalog, this.#memberHashes(clusterId));
    });
  }

  /** Automatic: a new cluster of these crops (none may be in a cluster yet); returns its id. */
  create(series: string, hashes: readonly string[]): number {
    return this.#catalog.batch(() => {
      const id = Number(this.#sql('INSERT INTO character_clusters (series, created_at) VALUES (?, ?)').run(series, new Date().toISOString()).lastInsertRowid);
      this.add(id, hashes);
      return id;
    });
  }

  /**
   * Automatic: these crops join the cluster, except where a person moved one
   * out of it; a crop already in a cluster stays there. Returns how many joined.
   */
  add(clusterId: number, hashes: readonly string[]): number {
    return this.#catalog.batch(() => {
      this.#cluster(clusterId);
      const insert = this.#sql(`INSERT OR IGNORE INTO cluster_members (image_id, cluster_id, by_person)
        SELECT id, @clusterId, 0 FROM images WHERE hash = @hash
        AND id NOT IN (SELECT image_id FROM moved_out WHERE cluster_id = @clusterId)`);
      const joined = hashes.filter((hash) => {
        this.#imageId(hash);
        return insert.run({ clusterId, hash }).changes === 1;
      });
      refreshCharacterTags(this.#catalog, joined);
      return joined.length;
    });
  }

  /** Automatic: a name found from reference pictures, taken unless a person named the cluster. Returns whether it was taken. */
  nameFromReference(clusterId: number, name: string): boolean {
    const normal = validName(name, `the reference name for cluster ${clusterId}`);
    return this.#catalog.batch(() => {
      const cluster = this.#cluster(clusterId);
      if (cluster.named_by === 'person' || cluster.name === normal) return false;
      this.#sql("UPDATE character_clusters SET name = ?, named_by = 'reference' WHERE id = ?").run(normal, clusterId);
      refreshCharacterTags(this.#catalog, this.#memberHashes(clusterId));
      return true;
    });
  }

  exists(clusterId: number): boolean {
    return this.#sql('SELECT 1 FROM character_clusters WHERE id = ?').get(clusterId) !== undefined;
  }

  /** Those of these crops that are in no cluster. */
  unclustered(hashes: readonly string[]): string[] {
    const member = this.#sql('SELECT 1 FROM cluster_members m JOIN images i ON i.id = m.image_id WHERE i.hash = ?');
    return hashes.filter((hash) => member.get(hash) === undefined);
  }

  /**
   * Where the series' crops are: crop hash -> cluster id, and for each crop a
   * person moved out, the clusters it must not rejoin.
   */
  assignments(series: string): { clusterOf: Map<string, number>; movedOut: Map<string, Set<number>> } {
    const clusterOf = new Map((this.#sql(`SELECT i.hash, m.cluster_id FROM cluster_members m JOIN images i ON i.id = m.image_id
      JOIN character_clusters c ON c.id = m.cluster_id WHERE c.series = ?`).raw().all(series) as [string, number][]));
    const movedOut = new Map<string, Set<number>>();
    for (const [hash, clusterId] of this.#sql(`SELECT i.hash, o.cluster_id FROM moved_out o JOIN images i ON i.id = o.image_id
      JOIN character_clusters c ON c.id = o.cluster_id WHERE c.series = ?`).raw().all(series) as [string, number][]) {
      movedOut.set(hash, (movedOut.get(hash) ?? new Set()).add(clusterId));
    }
    return { clusterOf, movedOut };
  }

  #sql(text: string): Statement {
    let statement = this.#statements.get(text);
    if (!statement) {
      statement = this.#catalog.database.prepare(text);
      this.#statements.set(text, statement);
    }
    return statement;
  }

  #cluster(id: number): ClusterRow {
    const row = this.#sql('SELECT id, series, name, named_by, noise FROM character_clusters WHERE id = ?').get(id) as ClusterRow | undefined;
    if (!row) throw new CelforgeError('FILE_NOT_FOUND', `${this.#catalog.file}: no character cluster with id ${id}`);
    return row;
  }

  #imageId(hash: string): number {
    const id = this.#sql('SELECT id FROM images WHERE hash = ?').pluck().get(hash) as number | undefined;
    if (id === undefined) throw new CelforgeError('FILE_NOT_FOUND', `${this.#catalog.file}: no image with hash ${hash}`);
    return id;
  }

  #memberHashes(clusterId: number): string[] {
    return this.#sql('SELECT i.hash FROM cluster_members m JOIN images i ON i.id = m.image_id WHERE m.cluster_id = ?').pluck().all(clusterId) as string[];
  }
}

/** A character name as its tag spells it (`Saber Alter` -> `saber_alter`); a name no tag can carry is refused. */
function validName(name: string, where: string): string {
  if (!name.trim()) throw new CelforgeError('CONFIG_INVALID', `${where}: a character name cannot be empty`);
  checkPersonTags([`character:${name}`], where);
  return parseTag(`character:${name}`)!.name;
}
