/**
 * The images a catalog query finds, exported as a Kohya dataset with the
 * configured export settings, in the dataset form the configured training
 * script accepts. Their tags are the catalog's effective tags (a person's
 * edits applied), so `character:` tags from any source, on frames and crops
 * alike, decide the per-character layout's subsets.
 */
import path from 'node:path';
import type { Catalog } from '../../adapters/catalog-store.ts';
import type { Config } from '../../config/schema.ts';
import { CelforgeError } from '../../errors.ts';
import { datasetFormFor } from './kohya-dataset-form.ts';
import { exportKohyaDataset, type ExportResult } from './kohya-export.ts';

export async function exportQuery(catalog: Catalog, config: Config, query: string, out: string): Promise<ExportResult> {
  const settings = config.export;
  const images = catalog.search(query).map((image) => ({
    hash: image.hash, path: path.resolve(config.library, image.path), width: image.width, height: image.height, tags: catalog.tagsOf(image.hash),
  }));
  if (images.length === 0) throw new CelforgeError('FILE_NOT_FOUND', `query "${query}": no images in ${config.library}; nothing exported`);
  return exportKohyaDataset(images, {
    out,
    caption: { triggerWords: settings.triggerWords, keepTokens: settings.keepTokens, underscoresToSpaces: settings.underscoresToSpaces },
    buckets: {
      resolution: settings.resolution, minBucketReso: settings.minBucketReso, maxBucketReso: settings.maxBucketReso,
      bucketResoSteps: settings.bucketResoSteps, noUpscale: settings.bucketNoUpscale,
    },
    numRepeats: settings.numRepeats,
    batchSize: settings.batchSize,
    link: settings.link,
    form: datasetFormFor(config.train?.script),
    fineTuneMetadata: settings.fineTuneMetadata,
    layout: settings.layout,
    balance: { band: settings.balance.band, sceneryShare: settings.balance.sceneryShare, maxRepeats: settings.balance.maxRepeats },
    pruneCoreTags: settings.pruneCoreTags,
  });
}
