/**
 * Writes a dataset folder that Kohya sd-scripts trains from as it is:
 *
 *   <out>/images/<hash>.<ext>    the image, hard-linked to the library (or copied)
 *   <out>/images/<hash>.txt      its caption (caption_extension ".txt")
 *   <out>/dataset_config.toml    for --dataset_config, in the form the training
 *                                script accepts (kohya-dataset-form.ts); num_repeats
 *                                is in the subset, so the folder needs no
 *                                "<repeats>_<name>" DreamBooth name
 *   <out>/bucket_report.json     which bucket each image will train in (BucketReport)
 *   <out>/meta_cap.json          captions and sizes for the fine-tuning form (its
 *                                metadata_file), or with fineTuneMetadata for --in_json
 *   <out>/.celforge-export.json  what this exporter wrote, for the next run (export-manifest.ts)
 *
 * Exporting again into the same folder leaves it as if exported once: a
 * caption is rewritten only when its text changed, an image already in place
 * is kept. An image this exporter wrote earlier that is no longer selected is
 * removed with its caption, because a DreamBooth subset trains on every image
 * in image_dir (`library/train_util.py` `load_dreambooth_dir` globs the
 * folder): left there, it would be trained on.
 *
 * A file this exporter did not write, or that was changed after it wrote it
 * (a caption edited by hand, a person's own dataset_config.toml), is never
 * overwritten or removed: every file the export would write or remove is
 * checked first, and if any of them belongs to a person the export stops
 * with the list before writing anything (EXPORT_CONFLICT). A file that
 * already holds exactly what would be written is taken over, since nothing
 * is lost. Other files a person keeps there are left alone; images among them
 * are listed in `foreign`, since Kohya will train on them too. Kohya's own
 * caches beside the images (`<hash>_<w>x<h>_sd.npz` and the like, `metadata_cache.json`)
 * are left alone.
 *
 * Each file is written to a temporary name and renamed into place.
 */
import { constants } from 'node:fs';
import { copyFile, link, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeThenRename } from '../../adapters/durable-file.ts';
import { CelforgeError, errorMessage } from '../../errors.ts';
import { captionFor, checkCaptionOptions, type CaptionOptions } from '../../catalog/captions.ts';
import { bucketReport, checkBucketSettings, type BucketReport, type BucketSettings } from './kohya-buckets.ts';
import type { DatasetForm } from './kohya-dataset-form.ts';
import { datasetConfigToml, type DatasetConfig } from './kohya-toml.ts';
import { readManifest, refuseConflicts, statFingerprint, textFingerprint, writeManifest, type Fingerprint, type Manifest, type PlannedFile } from './export-manifest.ts';

export interface ExportImage {
  /** SHA-256 of the image's bytes: the file name in the dataset. */
  hash: string;
  /** Absolute path of the image in the library. */
  path: string;
  width: number;
  height: number;
  tags: string[];
}

export interface ExportOptions {
  out: string;
  caption: CaptionOptions;
  buckets: BucketSettings;
  numRepeats: number;
  batchSize: number;
  /** auto: a hard link, or a copy where linking fails (another volume: EXDEV; a file system without links: EPERM). */
  link: 'hardlink' | 'copy' | 'auto';
  /** The dataset_config.toml form the training script accepts; dreambooth when not given. */
  form?: DatasetForm;
  /** Also write meta_cap.json with the DreamBooth form, for fine_tune.py's `--in_json`. */
  fineTuneMetadata?: boolean;
}

export interface ExportResult {
  images: number;
  /** Images in the dataset that are hard links to their source. */
  linked: number;
  /** Images in the dataset that are copies. */
  copied: number;
  /** Path of dataset_config.toml. */
  datasetConfig: string;
  form: DatasetForm;
  bucketReport: BucketReport;
  /** Path of meta_cap.json, or null. */
  metadataFile: string | null;
  /** Images from an earlier export, no longer selected, removed with their captions. */
  removed: number;
  /** Image files in <out>/images that this exporter did not write; Kohya will train on them. */
  foreign: string[];
}

/** `IMAGE_EXTENSIONS` of library/train_util.py, without the optional AVIF and JPEG XL plugins. */
const KOHYA_IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.bmp']);
const CAPTION_EXTENSION = '.txt';
const IMAGES_DIR = 'images';
const DATASET_CONFIG = 'dataset_config.toml';
const BUCKET_REPORT = 'bucket_report.json';
const METADATA_FILE = 'meta_cap.json';
/** Hex or base-36 hashes; no "_", which Kohya's face-crop naming splits file names on. */
const SAFE_HASH = /^[A-Za-z0-9-]{1,128}$/;
/**
 * Link errors after which `auto` copies instead: another volume (EXDEV), a
 * file system without hard links (EPERM on FAT and exFAT, ENOTSUP on some
 * network and FUSE mounts), a source at its link limit (EMLINK).
 */
const LINK_UNSUPPORTED = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EMLINK']);
const TEMPORARY_SUFFIX = '.celforge-tmp';

export async function exportKohyaDataset(images: ExportImage[], options: ExportOptions): Promise<ExportResult> {
  checkOptions(images, options);
  const out = path.resolve(options.out);
  const imagesDir = path.join(out, IMAGES_DIR);
  const form = options.form ?? 'dreambooth';
  const withMetadata = form === 'fine-tuning' || Boolean(options.fineTuneMetadata);
  // Everything that can be refused is worked out, and every source looked at,
  // before anything is written: a refusal leaves the folder as it was.
  const selected = images.map((image) => ({ image, file: `${image.hash}${path.extname(image.path)}`, caption: captionFor(image.tags, options.caption) }));
  const report = bucketReport(options.buckets, images);
  for (const image of images) await sourceStat(image.path);

  const planned: PlannedFile[] = selected.flatMap(({ image, file, caption }): PlannedFile[] => [
    { name: `${IMAGES_DIR}/${file}`, source: image.path },
    // One line with a newline, as the WD14 tagger writes; Kohya refuses an empty caption file.
    { name: `${IMAGES_DIR}/${image.hash}${CAPTION_EXTENSION}`, text: `${caption}\n` },
  ]);
  if (withMetadata) {
    // FineTuningDataset (library/train_util.py at 48d368f, lines 2275-2284) joins image_dir and a relative
    // key with no extension search since c6bc632e (v0.10.0); before it, a key was tried as a path and then
    // as a file stem in image_dir (glob_images). An absolute path is found by both. image_size, [width,
    // height], spares it opening every image for its size (lines 2304, 2349-2351).
    const metadata = Object.fromEntries(selected.map(({ image, file, caption }) => [
      path.join(imagesDir, file), { caption, image_size: [image.width, image.height] },
    ]));
    planned.push({ name: METADATA_FILE, text: `${JSON.stringify(metadata, null, 2)}\n` });
  }
  planned.push(
    { name: BUCKET_REPORT, text: `${JSON.stringify(report, null, 2)}\n` },
    { name: DATASET_CONFIG, text: datasetConfigToml(configFor(out, form, options)) },
  );

  const previous = await readManifest(out);
  const wanted = new Set(planned.map((p) => p.name));
  const stale = [...previous.files.keys()].filter((name) => !wanted.has(name));
  await refuseConflicts(out, planned, stale, previous);

  await mkdir(imagesDir, { recursive: true });
  await removeTemporaries(out);
  await removeTemporaries(imagesDir);
  // Recorded before anything is placed, with what each text file will hold,
  // so that a run cut short still knows what it wrote.
  const pending: Manifest = { files: new Map(previous.files) };
  for (const p of planned) {
    if ('text' in p) pending.files.set(p.name, [...(previous.files.get(p.name) ?? []), textFingerprint(p.text)]);
    else if (!pending.files.has(p.name)) pending.files.set(p.name, []);
  }
  await writeManifest(out, pending);

  const written: Manifest = { files: new Map() };
  let linked = 0;
  let copied = 0;
  for (const p of planned) {
    const file = path.join(out, p.name);
    let fingerprint: Fingerprint;
    if ('text' in p) {
      await writeIfChanged(file, p.text);
      fingerprint = textFingerprint(p.text);
    } else {
      const how = await placeImage(p.source, file, options.link);
      if (how === 'linked') linked += 1;
      else copied += 1;
      fingerprint = statFingerprint(await stat(file));
    }
    written.files.set(p.name, [fingerprint]);
  }

  for (const name of stale) await rm(path.join(out, name), { force: true });
  const removed = stale.filter((name) => name.startsWith(`${IMAGES_DIR}/`) && isKohyaImage(name)).length;

  await writeManifest(out, written);

  const foreign = (await readdir(imagesDir)).filter((name) => isKohyaImage(name) && !wanted.has(`${IMAGES_DIR}/${name}`)).sort();

  return {
    images: selected.length,
    linked,
    copied,
    datasetConfig: path.join(out, DATASET_CONFIG),
    form,
    bucketReport: report,
    metadataFile: withMetadata ? path.join(out, METADATA_FILE) : null,
    removed,
    foreign,
  };
}

function isKohyaImage(name: string): boolean {
  return KOHYA_IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase());
}

/**
 * The keys each form may hold are those of library/config_util.py's schemas
 * (48d368f): caption_extension and class_tokens only where the script
 * supports DreamBooth (lines 209-213, 349), metadata_file required in a
 * fine-tuning subset (lines 220-224); see kohya-dataset-form.ts.
 */
function configFor(out: string, form: DatasetForm, options: ExportOptions): DatasetConfig {
  const [width, height] = options.buckets.resolution;
  const triggers = [...new Set(options.caption.triggerWords.map((w) => w.trim()))];
  // Absolute: Kohya resolves a relative path against the trainer's working folder, not this file.
  const imageDir = path.join(out, IMAGES_DIR);
  return {
    general: {
      enable_bucket: true,
      ...(form === 'dreambooth' ? { caption_extension: CAPTION_EXTENSION } : {}),
      // keep_tokens pins the trigger words only while the rest is shuffled.
      shuffle_caption: true,
      keep_tokens: options.caption.keepTokens,
    },
    datasets: [{
      resolution: width === height ? width : [width, height],
      batch_size: options.batchSize,
      min_bucket_reso: options.buckets.minBucketReso,
      max_bucket_reso: options.buckets.maxBucketReso,
      bucket_reso_steps: options.buckets.bucketResoSteps,
      bucket_no_upscale: Boolean(options.buckets.noUpscale),
      subsets: [form === 'fine-tuning'
        ? { metadata_file: path.join(out, METADATA_FILE), image_dir: imageDir, num_repeats: options.numRepeats }
        : {
          image_dir: imageDir,
          num_repeats: options.numRepeats,
          // Used by Kohya only for an image without a caption file.
          ...(triggers.length > 0 ? { class_tokens: triggers.join(', ') } : {}),
        }],
    }],
  };
}

function checkOptions(images: ExportImage[], options: ExportOptions): void {
  const invalid = (message: string) => new CelforgeError('CONFIG_INVALID', `export: ${message}`);
  checkCaptionOptions(options.caption);
  checkBucketSettings(options.buckets);
  if (!Number.isSafeInteger(options.numRepeats) || options.numRepeats < 1) {
    // Kohya ignores a subset with num_repeats below 1.
    throw invalid(`numRepeats must be a whole number, 1 or more; got ${options.numRepeats}.`);
  }
  if (!Number.isSafeInteger(options.batchSize) || options.batchSize < 1) {
    throw invalid(`batchSize must be a whole number, 1 or more; got ${options.batchSize}.`);
  }
  const seen = new Set<string>();
  for (const image of images) {
    if (!SAFE_HASH.test(image.hash)) throw invalid(`${image.path}: hash ${JSON.stringify(image.hash)} is not a file-safe hash (letters, digits, "-").`);
    if (seen.has(image.hash.toLowerCase())) throw invalid(`${image.path}: hash ${image.hash} is selected twice; each image may appear once.`);
    seen.add(image.hash.toLowerCase());
    const extension = path.extname(image.path).toLowerCase();
    if (!KOHYA_IMAGE_EXTENSIONS.has(extension)) {
      throw invalid(`${image.path}: Kohya reads only ${[...KOHYA_IMAGE_EXTENSIONS].join(' ')} images; convert it or leave it out.`);
    }
    if (!Number.isSafeInteger(image.width) || !Number.isSafeInteger(image.height) || image.width <= 0 || image.height <= 0) {
      throw invalid(`${image.path}: size ${image.width}x${image.height} is not a valid image size.`);
    }
  }
}

async function placeImage(source: string, target: string, mode: ExportOptions['link']): Promise<'linked' | 'copied'> {
  const sourceInfo = await sourceStat(source);
  const targetInfo = await stat(target).catch(() => null);
  const sameFile = targetInfo !== null && targetInfo.dev === sourceInfo.dev && targetInfo.ino === sourceInfo.ino;
  const earlierCopy = targetInfo !== null && !sameFile && targetInfo.isFile() && targetInfo.size === sourceInfo.size;

  if (mode === 'copy') {
    if (earlierCopy) return 'copied';
    await viaTemporary(target, (temporary) => copyFile(source, temporary, constants.COPYFILE_FICLONE));
    return 'copied';
  }
  if (sameFile) return 'linked';
  try {
    await viaTemporary(target, (temporary) => link(source, temporary));
    return 'linked';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (!LINK_UNSUPPORTED.has(code)) throw error;
    if (mode === 'hardlink') {
      throw new CelforgeError('CONFIG_INVALID', `${target}: cannot hard-link ${source} (${code}); export to a folder on the library's volume, or set link to 'copy' or 'auto'.`, { file: source, cause: error });
    }
  }
  if (earlierCopy) return 'copied';
  await viaTemporary(target, (temporary) => copyFile(source, temporary, constants.COPYFILE_FICLONE));
  return 'copied';
}

async function sourceStat(source: string) {
  const info = await stat(source).catch((error: unknown) => {
    throw new CelforgeError('FILE_NOT_FOUND', `${source}: the image to export cannot be read (${errorMessage(error)}); check the library or leave the image out.`, { file: source, cause: error });
  });
  if (!info.isFile()) throw new CelforgeError('FILE_NOT_FOUND', `${source}: the image to export is not a file.`, { file: source });
  return info;
}

async function viaTemporary(target: string, write: (temporary: string) => Promise<void>): Promise<void> {
  const temporary = `${target}.${process.pid}${TEMPORARY_SUFFIX}`;
  await rm(temporary, { force: true });
  try {
    await write(temporary);
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** What a run cut short left behind; the names are ours alone. */
async function removeTemporaries(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (name.endsWith(TEMPORARY_SUFFIX)) await rm(path.join(dir, name), { force: true });
  }
}

async function writeIfChanged(file: string, content: string): Promise<void> {
  const existing = await readFile(file, 'utf8').catch(() => null);
  if (existing === content) return;
  await writeThenRename(file, `${file}.${process.pid}${TEMPORARY_SUFFIX}`, content);
}
