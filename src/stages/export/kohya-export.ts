/**
 * Writes a dataset folder that Kohya sd-scripts trains from as it is:
 *
 *   <out>/images/<hash>.<ext>    the image, hard-linked to the library (or copied)
 *   <out>/images/<hash>.txt      its caption (caption_extension ".txt")
 *   <out>/dataset_config.toml    for --dataset_config; num_repeats is in the subset,
 *                                so the folder needs no "<repeats>_<name>" DreamBooth name
 *   <out>/bucket_report.json     which bucket each image will train in (BucketReport)
 *   <out>/meta_cap.json          with fineTuneMetadata: captions for fine_tune.py
 *   <out>/.celforge-export.json  what this exporter wrote, for the next run
 *
 * Exporting again into the same folder leaves it as if exported once: a
 * caption is rewritten only when its text changed, an image already in place
 * is kept. An image this exporter wrote earlier that is no longer selected is
 * removed with its caption, because a DreamBooth subset trains on every image
 * in image_dir (`library/train_util.py` `load_dreambooth_dir` globs the
 * folder): left there, it would be trained on. Files this exporter did not
 * write are never touched; images among them are listed in `foreign`, since
 * Kohya will train on them too. Kohya's own caches beside the images
 * (`<hash>.npz`, `metadata_cache.json`) are left alone.
 *
 * Each file is written to a temporary name and renamed into place. Images are
 * keyed by the SHA-256 of their bytes (the catalog's hash), so a file named
 * `<hash>.<ext>` of the source's size already holds that image.
 */
import { constants } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { CelforgeError, errorMessage } from '../../errors.ts';
import { captionFor, checkCaptionOptions, type CaptionOptions } from '../../catalog/captions.ts';
import { bucketReport, checkBucketSettings, type BucketReport, type BucketSettings } from './kohya-buckets.ts';
import { datasetConfigToml, type DatasetConfig } from './kohya-toml.ts';

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
  /** Also write meta_cap.json for fine_tune.py (`--in_json`, with `--train_data_dir <out>/images`). */
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
const MANIFEST = '.celforge-export.json';
const MANIFEST_FORMAT = 'celforge-kohya-export/1';
/** Hex or base-36 hashes; no "_", which Kohya's face-crop naming splits file names on. */
const SAFE_HASH = /^[A-Za-z0-9-]{1,128}$/;
/**
 * Link errors after which `auto` copies instead: another volume (EXDEV), a
 * file system without hard links (EPERM on FAT and exFAT, ENOTSUP on some
 * network and FUSE mounts), a source at its link limit (EMLINK).
 */
const LINK_UNSUPPORTED = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EMLINK']);
const TEMPORARY_SUFFIX = '.celforge-tmp';

interface Manifest {
  format: typeof MANIFEST_FORMAT;
  /** File names in images/ (image and caption) this exporter wrote. */
  images: string[];
  metadataFile: boolean;
}

export async function exportKohyaDataset(images: ExportImage[], options: ExportOptions): Promise<ExportResult> {
  checkOptions(images, options);
  const out = path.resolve(options.out);
  const imagesDir = path.join(out, IMAGES_DIR);
  // Everything that can be refused is worked out, and every source looked at,
  // before anything is written: a refusal leaves no half-made folder.
  const planned = images.map((image) => ({
    image,
    file: `${image.hash}${path.extname(image.path)}`,
    caption: captionFor(image.tags, options.caption),
  }));
  const report = bucketReport(options.buckets, images);
  const configText = datasetConfigToml(configFor(imagesDir, options));
  for (const image of images) await sourceStat(image.path);

  await mkdir(imagesDir, { recursive: true });
  await removeTemporaries(out);
  await removeTemporaries(imagesDir);
  const wanted = new Set(planned.flatMap((p) => [p.file, `${p.image.hash}${CAPTION_EXTENSION}`]));
  const previous = await readManifest(out);

  // Recorded before anything is placed, so that a run cut short still knows what it wrote.
  await writeManifest(out, { format: MANIFEST_FORMAT, images: [...new Set([...previous.images, ...wanted])].sort(), metadataFile: previous.metadataFile || Boolean(options.fineTuneMetadata) });

  let linked = 0;
  let copied = 0;
  for (const { image, file, caption } of planned) {
    const how = await placeImage(image.path, path.join(imagesDir, file), options.link);
    if (how === 'linked') linked += 1;
    else copied += 1;
    // One line with a newline, as the WD14 tagger writes; Kohya refuses an empty caption file.
    await writeIfChanged(path.join(imagesDir, `${image.hash}${CAPTION_EXTENSION}`), `${caption}\n`);
  }

  const stale = previous.images.filter((name) => !wanted.has(name));
  for (const name of stale) await rm(path.join(imagesDir, name), { force: true });
  const removed = stale.filter((name) => KOHYA_IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase())).length;

  const metadataFile = path.join(out, 'meta_cap.json');
  if (options.fineTuneMetadata) {
    // merge_captions_to_metadata.py keys images by file stem unless --full_path;
    // FineTuningDataset finds `<image_dir>/<stem>.<ext>` for such a key.
    const metadata = Object.fromEntries(planned.map((p) => [p.image.hash, { caption: p.caption }]));
    await writeIfChanged(metadataFile, `${JSON.stringify(metadata, null, 2)}\n`);
  } else if (previous.metadataFile) {
    await rm(metadataFile, { force: true });
  }

  await writeIfChanged(path.join(out, 'bucket_report.json'), `${JSON.stringify(report, null, 2)}\n`);
  const datasetConfig = path.join(out, 'dataset_config.toml');
  await writeIfChanged(datasetConfig, configText);

  await writeManifest(out, { format: MANIFEST_FORMAT, images: [...wanted].sort(), metadataFile: Boolean(options.fineTuneMetadata) });

  const foreign = (await readdir(imagesDir))
    .filter((name) => KOHYA_IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase()) && !wanted.has(name))
    .sort();

  return {
    images: planned.length,
    linked,
    copied,
    datasetConfig,
    bucketReport: report,
    metadataFile: options.fineTuneMetadata ? metadataFile : null,
    removed,
    foreign,
  };
}

function configFor(imagesDir: string, options: ExportOptions): DatasetConfig {
  const [width, height] = options.buckets.resolution;
  const triggers = [...new Set(options.caption.triggerWords.map((w) => w.trim()))];
  return {
    general: {
      enable_bucket: true,
      caption_extension: CAPTION_EXTENSION,
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
      subsets: [{
        // Absolute: Kohya resolves a relative image_dir against the trainer's working folder, not this file.
        image_dir: imagesDir,
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
  await viaTemporary(file, async (temporary) => {
    const handle = await open(temporary, 'w');
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
  });
}

async function readManifest(out: string): Promise<Manifest> {
  const file = path.join(out, MANIFEST);
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return { format: MANIFEST_FORMAT, images: [], metadataFile: false };
  try {
    const manifest = JSON.parse(text) as Partial<Manifest>;
    if (manifest.format !== MANIFEST_FORMAT || !Array.isArray(manifest.images)) throw new Error('not a celforge export manifest');
    // Only plain names inside images/: a hand-edited manifest must not reach outside it.
    const images = manifest.images.filter((name): name is string => typeof name === 'string' && name === path.basename(name) && name !== '..' && name !== '.');
    return { format: MANIFEST_FORMAT, images, metadataFile: manifest.metadataFile === true };
  } catch (error) {
    throw new CelforgeError('CONFIG_INVALID', `${file}: cannot read the record of an earlier export (${errorMessage(error)}); delete the file to treat everything in ${out} as not ours, or export to a new folder.`, { file, cause: error });
  }
}

async function writeManifest(out: string, manifest: Manifest): Promise<void> {
  await writeIfChanged(path.join(out, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
}
