/**
 * `celforge export "<query>" --out DIR`: the images a query finds as a Kohya
 * sd-scripts dataset (images hard-linked or copied, `.txt` captions,
 * dataset_config.toml, bucket_report.json); with export.layout
 * 'per-character', a subset per character with its repeats and share of
 * steps printed, and a balance that cannot be met said on stderr. A file in the folder that
 * celforge did not write, or that a person changed since, stops the export
 * before anything is written (EXPORT_CONFLICT). With Hydrus configured, a
 * person's corrections there are pulled first; a closed Hydrus stops the
 * export rather than train on tags a person already fixed (--skip-hydrus
 * exports anyway).
 */
import path from 'node:path';
import { HydrusClient, HydrusUnreachable } from '../adapters/hydrus-client.ts';
import { assertWritableFolder } from '../adapters/writable-folder.ts';
import { pullFromHydrus } from '../catalog/hydrus-sync.ts';
import { CelforgeError } from '../errors.ts';
import { exportQuery } from '../stages/export/export-query.ts';
import type { GlobalOptions } from './context.ts';
import { withCatalog } from './catalog-context.ts';

export interface ExportCommandOptions extends GlobalOptions {
  out: string;
  skipHydrus?: boolean;
}

export async function exportCommand(query: string, options: ExportCommandOptions): Promise<void> {
  await assertWritableFolder(path.resolve(options.out), 'the export folder');
  await withCatalog(options, async (catalog, config) => {
    if (config.hydrus?.pullBeforeExport && !options.skipHydrus) {
      const client = new HydrusClient(config.hydrus);
      try {
        const pulled = await pullFromHydrus(catalog, client, query);
        process.stdout.write(`hydrus: ${pulled.tagsAdded} tags added, ${pulled.tagsRemoved} removed by a person there\n`);
      } catch (error) {
        if (!(error instanceof HydrusUnreachable)) throw error;
        throw new CelforgeError('FILE_NOT_FOUND', `${config.hydrus.url}: Hydrus does not answer, so corrections made there cannot be pulled before the export. Open its client and export again, or export with --skip-hydrus.`, { cause: error });
      }
    }
    const result = await exportQuery(catalog, config, query, path.resolve(options.out));
    process.stdout.write(`${result.images} images (${result.linked} linked, ${result.copied} copied), ${result.removed} no longer selected removed\n`);
    process.stdout.write(`dataset config: ${result.datasetConfig} (${result.form === 'fine-tuning' ? `fine-tuning form: captions in ${result.characters ? 'a meta_cap.json per subset' : 'meta_cap.json'}` : 'DreamBooth form: captions beside the images'})\n`);
    for (const bucket of result.bucketReport.buckets) process.stdout.write(`  bucket ${bucket.resolution[0]}x${bucket.resolution[1]}: ${bucket.count}\n`);
    process.stdout.write(`  mean aspect error ${result.bucketReport.meanAspectError.toFixed(4)}\n`);
    if (result.characters) {
      const percent = (value: number) => `${(value * 100).toFixed(1)}%`;
      for (const subset of result.characters.subsets) {
        process.stdout.write(`  subset ${subset.folder}: ${subset.images} images x ${subset.numRepeats} repeats, keep_tokens ${subset.keepTokens}\n`);
      }
      for (const character of result.characters.characters) {
        process.stdout.write(`  character ${character.name}: ${character.images} images, ${character.steps} steps, ${percent(character.share)} of steps, ${character.ofMean.toFixed(2)} of the mean${character.withinBand ? '' : ' (outside the band)'}\n`);
      }
      if (result.characters.scenery) process.stdout.write(`  scenery: ${result.characters.scenery.images} images, ${percent(result.characters.scenery.share)} of steps\n`);
      for (const problem of result.characters.problems) process.stderr.write(`celforge: balance not met: ${problem}\n`);
    }
    if (result.metadataFile) process.stdout.write(`fine-tune metadata: ${result.metadataFile}\n`);
    for (const file of result.foreign) process.stderr.write(`celforge: ${file} was not written by celforge; Kohya will train on it too\n`);
  });
}
