/**
 * characters: who is in each crop. The CCIP model gives every crop of the
 * configured kinds (the video's crops.jsonl) a feature vector, kept in the
 * catalog; the series' crops not in a cluster yet then join the clusters
 * that exist or form new ones (series-clusters.ts), so a new episode's faces
 * land where the earlier episodes' are. Clusters take names from reference
 * pictures (reference-names.ts) unless a person named them, and every member
 * crop of a named cluster, and its frame, carries `character:<name>`
 * (source `ccip`, src/catalog/character-tags.ts), flagged for review where
 * the taggers name another character.
 *
 * A missing model makes the job wait (`characters.enabled: false` turns the
 * stage off; a video without crops needs no model). A restart computes only the features not stored yet; the
 * clusters are written in one transaction after every decision is made, so
 * a crop is never clustered twice.
 *
 * The features are one step of the stage, so that a coordinator
 * (queue.redis) can have workers compute them: `charactersStageWith(step)`
 * runs the stage with another feature step, the clusters and names made
 * here as always. API: charactersStage, charactersStageWith, FeatureStep,
 * FeatureWork, loadCcipFor.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { readCrops, type CropRecord } from '../../adapters/crops-file.ts';
import { CharacterClusters } from '../../catalog/character-clusters.ts';
import { refreshCharacterTags } from '../../catalog/character-tags.ts';
import { CropFeatures } from '../../catalog/crop-features.ts';
import type { Job } from '../../daemon/job.ts';
import { videoLayoutOf } from '../../daemon/library-paths.ts';
import type { Config } from '../../config/schema.ts';
import { modelFile, type AvailableModel } from '../../models/model-availability.ts';
import { forEachBatch } from '../batches.ts';
import { markRunning, modelsOrWait } from '../model-wait.ts';
import type { Stage, StagePorts, StageResult } from '../stage.ts';
import { CCIP_FEATURE_FILE, loadCcipModel, type CcipModel } from '../../inference/ccip.ts';
import { chooseName, readReferences, type ReferenceSet } from './reference-names.ts';
import { clusterSeries } from './series-clusters.ts';

/** Crops per feature batch recorded at once (progress and the resume point). */
const FEATURE_BATCH = 64;
/** Crops of a cluster compared with the reference pictures. */
const REFERENCE_SAMPLE = 32;

/** What a feature step works on: the video's crops, those whose features are not stored yet, and where to store them. */
export interface FeatureWork {
  job: Job;
  library: string;
  model: CcipModel;
  stored: CropFeatures;
  /** The video's crops of the configured kinds, in crops.jsonl's order. */
  crops: readonly CropRecord[];
  /** Those of them without stored features, in the same order. */
  missing: readonly CropRecord[];
  /** Stores a batch's features, `features[i]` of `crops[i]` (CropFeatures.put), and saves the progress. */
  record: (crops: readonly CropRecord[], features: readonly Float32Array[]) => Promise<void>;
  /** The ledger's progress before the missing ones: the crops whose features were stored. */
  storedBefore: number;
}

/** Computes the missing features, each batch given to `work.record`; null once all are stored, else what the stage returns (a shutdown, a wait). */
export type FeatureStep = (work: FeatureWork, ports: StagePorts) => Promise<StageResult | null>;

/** Here, in batches, the next batch's crops read while this one runs. */
const localFeatures: FeatureStep = async (work, ports) => {
  const outcome = await forEachBatch(
    work.missing,
    FEATURE_BATCH,
    (batch) => work.model.features(batch.map((crop) => path.join(work.library, crop.file))),
    (batch, features) => work.record(batch, features),
    ports.signal,
  );
  return outcome === 'aborted' ? { kind: 'interrupted' } : null;
};

/**
 * The stage with its feature step: computed here (the local stage), or on
 * the workers (src/daemon/remote-ccip.ts); the clusters and names are made
 * here either way.
 */
export function charactersStageWith(computeFeatures: FeatureStep): Stage {
  return async (job, ports) => {
    const config = ports.config();
    if (!config.characters.enabled) return { kind: 'done', change: (target) => void delete target.characters };
    const layout = videoLayoutOf(job, config.library);
    const kinds = new Set(config.characters.cropKinds);
    const crops = (await readCrops(layout.crops)).filter((crop) => kinds.has(crop.kind) && isUsable(crop, layout.library, ports));
    // Nothing to look at: no model is needed (a video without faces, or the crops stage off).
    if (crops.length === 0) return { kind: 'done', change: (target) => void delete target.characters };

    const available = await modelsOrWait(ports, [config.characters.model], ['ccip']);
    if (!available.ready) return available.result;
    if (job.state !== 'running') await markRunning(ports);
    const model = await loadCcipFor(config, available.models[0]!, ports);
    const stored = new CropFeatures(ports.catalog, model.id);

    const missing = crops.filter((crop) => !stored.has(crop.sha256));
    let done = crops.length - missing.length;
    const progress = (clusters: number | null) => {
      const state = { model: model.id, crops: crops.length, cropsDone: done, clusters };
      return (target: Job) => {
        target.characters = { ...state };
        target.progress = { done: state.cropsDone, total: state.crops };
      };
    };
    const stopped = await computeFeatures({
      job, library: layout.library, model, stored, crops, missing, storedBefore: done,
      record: async (batch, features) => {
        stored.put(new Map(batch.map((crop, index) => [crop.sha256, features[index]!])));
        done += batch.length;
        await ports.save(progress(null));
      },
    }, ports);
    if (stopped) return stopped;

    const clusters = new CharacterClusters(ports.catalog);
    const made = await clusterSeries(job.series, model, stored, clusters, ports.catalog, config.characters.method);
    const references = await readReferences(config.library, job.series);
    for (const problem of references.refused) ports.log.warn({ job: job.id }, `${problem}; it names no cluster`);
    const named = references.sets.length ? await nameFromReferences(job.series, model, stored, clusters, references.sets, config.characters.referenceShare, ports) : 0;
    // Tags of this video's crops again: the taggers may have spoken since (a re-run), and frames follow their crops.
    refreshCharacterTags(ports.catalog, crops.map((crop) => crop.sha256));
    const series = clusters.clusters(job.series, 0).length;
    ports.log.info({ job: job.id, crops: crops.length, joined: made.joined, created: made.created, unclustered: made.unclustered, named, clusters: series }, `${job.source}: characters clustered`);
    return { kind: 'done', change: progress(series) };
  };
}

export const charactersStage: Stage = charactersStageWith(localFeatures);

/** A crop the catalog holds (not rejected) whose file is there. */
function isUsable(crop: CropRecord, library: string, ports: StagePorts): boolean {
  const image = ports.catalog.get(crop.sha256);
  return image !== undefined && image.rejectedAt === null && existsSync(path.join(library, crop.file));
}

/** The CCIP model of the configuration, loaded once per process (the model cache), as the stage and a CCIP worker load it. */
export function loadCcipFor(config: Config, available: AvailableModel, ports: Pick<StagePorts, 'models' | 'images' | 'log'>): Promise<CcipModel> {
  const dir = path.dirname(modelFile(available, CCIP_FEATURE_FILE));
  const providers = config.inference.providers;
  return ports.models.get(`ccip:${dir}:${providers.join(',')}`, () => loadCcipModel(dir, {
    providers, batchSize: config.inference.batchSize, log: ports.log, images: ports.images,
  }));
}

/** Gives each cluster the reference name most of its sampled crops match, unless a person named it; returns how many took one. */
async function nameFromReferences(
  series: string, model: CcipModel, stored: CropFeatures, clusters: CharacterClusters, sets: readonly ReferenceSet[], share: number, ports: StagePorts,
): Promise<number> {
  const pictures = await model.features(sets.flatMap((set) => set.files));
  const choices: { id: number; name: string }[] = [];
  for (const cluster of clusters.clusters(series, REFERENCE_SAMPLE)) {
    if (cluster.noise) continue;
    const sample = [...stored.get(cluster.samples.map((crop) => crop.hash)).values()];
    if (sample.length === 0) continue;
    const name = chooseName(await model.crossDifferences(sample, pictures), sample.length, sets, model.threshold, share);
    if (name !== null) choices.push({ id: cluster.id, name });
  }
  // A cluster a person merged away meanwhile is left out.
  return ports.catalog.batch(() => choices.filter((choice) => clusters.exists(choice.id) && clusters.nameFromReference(choice.id, choice.name)).length);
}
