/**
 * Writes a dataset folder that Kohya sd-scripts trains from as it is:
 *
 *   <out>/images/<hash>.<ext>    the image, hard-linked to the library (or copied)
 *   <out>/images/<hash>.txt      its caption (caption_extension ".txt")
 *                                or, with layout 'per-character', the same in a
 *                                folder per subset (character-layout.ts):
 *                                images/characters_1/<name>/, images/characters_2/<a>+<b>/,
 *                                images/scenery/, each with its own num_repeats
 *   <out>/dataset_config.toml    for --dataset_config, in the form the training
 *                                script accepts (kohya-dataset-form.ts); num_repeats
 *                                is in the subset, so the folder needs no
 *                                "<repeats>_<name>" DreamBooth name
 *   <out>/bucket_report.json     which bucket each image will train in (BucketReport), and in
 *                                the per-character layout each character's images, repeats and
 *                                share of steps (`characters`, CharacterBalanceReport)
 *   <out>/meta_cap.json          captions and sizes for the fine-tuning form (its
 *                                metadata_file; per subset folder in the per-character
 *                                layout), or with fineTuneMetadata for --in_json
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
import { mkdir, readdir, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { CelforgeError } from '../../errors.ts';
import { checkCaptionOptions, type CaptionOptions } from '../../catalog/captions.ts';
import type { BalanceSettings } from './character-balance.ts';
import { flatLayout, perCharacterLayout, type CharacterBalanceReport, type Layout, type PlannedSubset } from './character-layout.ts';
import { datasetConfig } from './dataset-config.ts';
import { bucketReport, checkBucketSettings, type BucketReport, type BucketSettings } from './kohya-buckets.ts';
import type { DatasetForm } from './kohya-dataset-form.ts';
import { datasetConfigToml } from './kohya-toml.ts';
import { readManifest, refuseConflicts, statFingerprint, textFingerprint, writeManifest, type Fingerprint, type Manifest, type PlannedFile } from './export-manifest.ts';
import { placeImage, removeTemporaries, sourceStat, writeIfChanged, type LinkMode } from './image-placement.ts';

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
  /** num_repeats; in the per-character layout, the balance's repeats are multiplied by it. */
  numRepeats: number;
  batchSize: number;
  link: LinkMode;
  /** The dataset_config.toml form the training script accepts; dreambooth when not given. */
  form?: DatasetForm;
  /** Also write meta_cap.json with the DreamBooth form, for fine_tune.py's `--in_json`. */
  fineTuneMetadata?: boolean;
  /** flat when not given. */
  layout?: Layout;
  /** Needed by the per-character layout. */
  balance?: BalanceSettings;
  /** Prune each character's tags found on at least this share of the images where it is alone (core-tags.ts); null or absent: keep them. */
  pruneCoreTags?: number | null;
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
  /** The per-character layout's balance, also in bucket_report.json; null in the flat layout. */
  characters: CharacterBalanceReport | null;
  /** Path of meta_cap.json at the top of the export, or null. */
  metadataFile: string | null;
  /** Images from an earlier export, no longer selected, removed with their captions. */
  removed: number;
  /** Image files in the subset folders that this exporter did not write, relative to <out>/images; Kohya will train on them. */
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

export async function exportKohyaDataset(images: ExportImage[], options: ExportOptions): Promise<ExportResult> {
  checkOptions(images, options);
  const out = path.resolve(options.out);
  const form = options.form ?? 'dreambooth';
  const perCharacter = options.layout === 'per-character';
  // Everything that can be refused is worked out, and every source looked at,
  // before anything is written: a refusal leaves the folder as it was.
  const layout = perCharacter ? perCharacterLayout(images, { ...options, balance: options.balance! }) : { subsets: flatLayout(images, options), report: null };
  const { subsets, report: characters } = layout;
  const report = bucketReport(options.buckets, images);
  for (const image of images) await sourceStat(image.path);

  const fileOf = (image: ExportImage) => `${image.hash}${path.extname(image.path)}`;
  const planned: PlannedFile[] = subsets.flatMap((subset) => subset.images.flatMap(({ image, caption }): PlannedFile[] => [
    { name: `${subset.folder}/${fileOf(image)}`, source: image.path },
    // One line with a newline, as the WD14 tagger writes; Kohya refuses an empty caption file.
    { name: `${subset.folder}/${image.hash}${CAPTION_EXTENSION}`, text: `${caption}\n` },
  ]));
  // The fine-tuning form reads one metadata_file per subset (each must differ, see dataset-config.ts);
  // fineTuneMetadata's --in_json reads one for everything.
  const metadataOf = (subset: PlannedSubset<ExportImage>) => (perCharacter ? `${subset.folder}/${METADATA_FILE}` : METADATA_FILE);
  const topMetadata = !perCharacter ? form === 'fine-tuning' || Boolean(options.fineTuneMetadata) : form === 'dreambooth' && Boolean(options.fineTuneMetadata);
  const metadataFor = (chosen: PlannedSubset<ExportImage>[]) => {
    // FineTuningDataset (library/train_util.py at 48d368f, lines 2275-2284) joins image_dir and a relative
    // key with no extension search since c6bc632e (v0.10.0); before it, a key was tried as a path and then
    // as a file stem in image_dir (glob_images). An absolute path is found by both. image_size, [width,
    // height], spares it opening every image for its size (lines 2304, 2349-2351).
    const metadata = Object.fromEntries(chosen.flatMap((subset) => subset.images.map(({ image, caption }) => [
      path.join(out, ...subset.folder.split('/'), fileOf(image)), { caption, image_size: [image.width, image.height] },
    ])));
    return `${JSON.stringify(metadata, null, 2)}\n`;
  };
  if (topMetadata) planned.push({ name: METADATA_FILE, text: metadataFor(subsets) });
  if (perCharacter && form === 'fine-tuning') {
    for (const subset of subsets) planned.push({ name: metadataOf(subset), text: metadataFor([subset]) });
  }
  const config = datasetConfig(out, form, subsets.map((subset) => ({ ...subset, metadataFile: metadataOf(subset) })), {
    buckets: options.buckets, batchSize: options.batchSize, keepTokens: options.caption.keepTokens, captionExtension: CAPTION_EXTENSION,
  });
  planned.push(
    { name: BUCKET_REPORT, text: `${JSON.stringify(characters ? { ...report, characters } : report, null, 2)}\n` },
    { name: DATASET_CONFIG, text: datasetConfigToml(config) },
  );

  const previous = await readManifest(out);
  const wanted = new Set(planned.map((p) => p.name));
  const stale = [...previous.files.keys()].filter((name) => !wanted.has(name));
  await refuseConflicts(out, planned, stale, previous);

  const folders = subsets.map((subset) => path.join(out, ...subset.folder.split('/')));
  for (const folder of folders) await mkdir(folder, { recursive: true });
  await removeTemporaries(out);
  for (const folder of folders) await removeTemporaries(folder);
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
    const file = path.join(out, ...p.name.split('/'));
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

  for (const name of stale) await rm(path.join(out, ...name.split('/')), { force: true });
  await removeEmptyFolders(out, stale);
  const removed = stale.filter((name) => name.startsWith(`${IMAGES_DIR}/`) && isKohyaImage(name)).length;

  await writeManifest(out, written);

  const foreign: string[] = [];
  for (const subset of subsets) {
    const inImages = subset.folder.slice(IMAGES_DIR.length + 1);
    for (const name of await readdir(path.join(out, ...subset.folder.split('/')))) {
      if (isKohyaImage(name) && !wanted.has(`${subset.folder}/${name}`)) foreign.push(inImages === '' ? name : `${inImages}/${name}`);
    }
  }

  return {
    images: images.length,
    linked,
    copied,
    datasetConfig: path.join(out, DATASET_CONFIG),
    form,
    bucketReport: report,
    characters,
    metadataFile: topMetadata ? path.join(out, METADATA_FILE) : null,
    removed,
    foreign: foreign.sort(),
  };
}

function isKohyaImage(name: string): boolean {
  return KOHYA_IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase());
}

/** Subset folders an earlier export made and this one emptied (a character renamed, the layout changed); a folder with anything left in it stays. */
async function removeEmptyFolders(out: string, removedFiles: string[]): Promise<void> {
  const folders = new Set<string>();
  for (const name of removedFiles) {
    const parts = name.split('/');
    for (let depth = parts.length - 1; depth > 1; depth--) folders.add(parts.slice(0, depth).join('/'));
  }
  // Deepest first, so a parent is tried after its children.
  for (const folder of [...folders].sort((a, b) => b.split('/').length - a.split('/').length)) {
    await rmdir(path.join(out, ...folder.split('/'))).catch(() => undefined);
  }
}

function checkOptions(images: ExportImage[], options: ExportOptions): void {
  const invalid = (message: string) => new CelforgeError('CONFIG_INVALID', `export: ${message}`);
  checkCaptionOptions(options.caption);
  checkBucketSettings(options.buckets);
  if (options.layout === 'per-character' && options.balance === undefined) throw invalid('the per-character layout needs balance settings.');
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
