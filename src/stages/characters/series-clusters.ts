/**
 * One series' crops into clusters: the crops with features that are in no
 * cluster yet (this episode's, and earlier ones' that were noise) join the
 * clusters that exist or form new ones among themselves, by clustering.ts'
 * `clusterIncrementally` with the configured method and imgutils' default
 * parameters for the model's threshold. A crop a person moved out of a
 * cluster is not put back into it (it stays out of every cluster until a
 * later run places it elsewhere). Every decision is made first, then written
 * in one transaction: an interrupted run leaves nothing half-clustered.
 */
import type { Catalog } from '../../adapters/catalog-store.ts';
import type { CharacterClusters } from '../../catalog/character-clusters.ts';
import type { CropFeatures } from '../../catalog/crop-features.ts';
import type { CcipModel } from '../../inference/ccip.ts';
import { clusterIncrementally, defaultClusterParams, type ClusterMethod } from './clustering.ts';

export interface SeriesClustering {
  /** Crops that joined a cluster that existed. */
  joined: number;
  /** Clusters made. */
  created: number;
  /** Crops this run placed in no cluster (noise, moved out by a person, or its cluster merged away meanwhile). */
  unclustered: number;
}

export async function clusterSeries(
  series: string, model: CcipModel, features: CropFeatures, clusters: CharacterClusters, catalog: Catalog, method: ClusterMethod,
): Promise<SeriesClustering> {
  const all = features.ofSeries(series);
  const { clusterOf, movedOut } = clusters.assignments(series);
  const existing = [...all].filter(([hash]) => clusterOf.has(hash));
  const added = [...all].filter(([hash]) => !clusterOf.has(hash));
  if (added.length === 0) return { joined: 0, created: 0, unclustered: 0 };
  const increment = await clusterIncrementally(
    model,
    { features: existing.map(([, feature]) => feature), labels: existing.map(([hash]) => clusterOf.get(hash)!) },
    added.map(([, feature]) => feature),
    defaultClusterParams(method, model.threshold),
  );
  const known = new Set(clusterOf.values());
  const joins = new Map<number, string[]>();
  const fresh = new Map<number, string[]>();
  let unclustered = 0;
  added.forEach(([hash], index) => {
    const label = increment.added[index]!;
    if (label < 0 || movedOut.get(hash)?.has(label)) {
      unclustered += 1;
      return;
    }
    const target = known.has(label) ? joins : fresh;
    const hashes = target.get(label) ?? [];
    hashes.push(hash);
    target.set(label, hashes);
  });
  // A person may have merged or moved crops on the review page while this was decided: a cluster merged away
  // takes no crops, and a crop placed meanwhile stays where it is.
  return catalog.batch(() => {
    let joined = 0;
    let created = 0;
    for (const [id, hashes] of joins) {
      const added = clusters.exists(id) ? clusters.add(id, hashes) : 0;
      joined += added;
      unclustered += hashes.length - added;
    }
    for (const hashes of fresh.values()) {
      const free = clusters.unclustered(hashes);
      if (free.length) clusters.create(series, free);
      created += free.length ? 1 : 0;
      unclustered += hashes.length - free.length;
    }
    return { joined, created, unclustered };
  });
}
