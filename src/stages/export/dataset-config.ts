/**
 * The dataset_config.toml of an export, from its subsets:
 *
 *   datasetConfig(out, form, subsets, settings)
 *
 * One [[datasets]] with a [[datasets.subsets]] per subset folder. The keys
 * each form may hold are those of library/config_util.py's schemas at
 * 48d368f: caption_extension and class_tokens only where the script supports
 * DreamBooth (lines 209-213, 349), metadata_file required in a fine-tuning
 * subset (lines 220-224), image_dir required in a DreamBooth one (line 215),
 * num_repeats and keep_tokens in any subset (lines 187, 190); see
 * kohya-dataset-form.ts. Kohya ignores a second subset with the same
 * image_dir, or in the fine-tuning form the same metadata_file
 * (library/train_util.py DreamBoothSubset.__eq__ line 543,
 * FineTuningSubset.__eq__ line 609, used at lines 2124-2128 and 2235-2239): each subset has
 * its own folder, and in the fine-tuning form its own metadata file.
 */
import path from 'node:path';
import type { BucketSettings } from './kohya-buckets.ts';
import type { DatasetForm } from './kohya-dataset-form.ts';
import type { DatasetConfig } from './kohya-toml.ts';

export interface ConfigSubset {
  /** Relative to the export folder, "/"-separated. */
  folder: string;
  numRepeats: number;
  /** null: [general]'s keep_tokens holds. */
  keepTokens: number | null;
  classTokens: string;
  /** The fine-tuning form's metadata_file, relative to the export folder. */
  metadataFile: string;
}

export interface ConfigSettings {
  buckets: BucketSettings;
  batchSize: number;
  keepTokens: number;
  captionExtension: string;
}

export function datasetConfig(out: string, form: DatasetForm, subsets: readonly ConfigSubset[], settings: ConfigSettings): DatasetConfig {
  const [width, height] = settings.buckets.resolution;
  // Absolute: Kohya resolves a relative path against the trainer's working folder, not this file.
  const absolute = (relative: string) => path.join(out, ...relative.split('/'));
  return {
    general: {
      enable_bucket: true,
      ...(form === 'dreambooth' ? { caption_extension: settings.captionExtension } : {}),
      // keep_tokens pins the trigger words only while the rest is shuffled.
      shuffle_caption: true,
      keep_tokens: settings.keepTokens,
    },
    datasets: [{
      resolution: width === height ? width : [width, height],
      batch_size: settings.batchSize,
      min_bucket_reso: settings.buckets.minBucketReso,
      max_bucket_reso: settings.buckets.maxBucketReso,
      bucket_reso_steps: settings.buckets.bucketResoSteps,
      bucket_no_upscale: Boolean(settings.buckets.noUpscale),
      subsets: subsets.map((subset) => {
        const keep = subset.keepTokens === null ? {} : { keep_tokens: subset.keepTokens };
        return form === 'fine-tuning'
          ? { metadata_file: absolute(subset.metadataFile), image_dir: absolute(subset.folder), num_repeats: subset.numRepeats, ...keep }
          : {
            image_dir: absolute(subset.folder),
            num_repeats: subset.numRepeats,
            ...keep,
            // Used by Kohya only for an image without a caption file.
            ...(subset.classTokens !== '' ? { class_tokens: subset.classTokens } : {}),
          };
      }),
    }],
  };
}
