/**
 * The dataset_config.toml an export writes passes the schema of the script
 * that will read it, and meta_cap.json names files that exist.
 *
 * The schema below is a transcription of `ConfigSanitizer` in
 * library/config_util.py of kohya-ss/sd-scripts at 48d368f (the line numbers
 * are that file's), which sd-scripts runs through voluptuous 0.15.2: a dict
 * schema refuses keys it does not name ("extra keys not allowed") and wants
 * every Required key ("required key not provided").
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import sharp from 'sharp';
import { datasetFormFor } from '../../../src/stages/export/kohya-dataset-form.ts';
import { exportKohyaDataset, type ExportImage } from '../../../src/stages/export/kohya-export.ts';
import { parseSimpleToml } from '../../../src/stages/export/kohya-toml.ts';
import { exportOptions } from '../../fixtures/export-options.ts';

type Rule = 'bool' | 'int' | 'str' | 'number' | 'dict' | 'float pair' | 'int or int pair';
type Schema = Record<string, Rule>;

// lines 183-201
const SUBSET_ASCENDABLE: Schema = {
  color_aug: 'bool', face_crop_aug_range: 'float pair', flip_aug: 'bool', num_repeats: 'int', random_crop: 'bool', shuffle_caption: 'bool',
  keep_tokens: 'int', keep_tokens_separator: 'str', secondary_separator: 'str', caption_separator: 'str', enable_wildcard: 'bool',
  token_warmup_min: 'int', token_warmup_step: 'number', caption_prefix: 'str', caption_suffix: 'str', custom_attributes: 'dict', resize_interpolation: 'str',
};
// lines 203-207
const DO_SUBSET_ASCENDABLE: Schema = { caption_dropout_every_n_epochs: 'int', caption_dropout_rate: 'number', caption_tag_dropout_rate: 'number' };
// lines 209-213
const DB_SUBSET_ASCENDABLE: Schema = { caption_extension: 'str', class_tokens: 'str', cache_info: 'bool' };
// lines 214-218; Required("image_dir")
const DB_SUBSET_DISTINCT: Schema = { image_dir: 'str', is_reg: 'bool', alpha_mask: 'bool' };
// lines 220-224; Required("metadata_file")
const FT_SUBSET_DISTINCT: Schema = { metadata_file: 'str', image_dir: 'str', alpha_mask: 'bool' };
// lines 225-232; Required("image_dir"), Required("conditioning_data_dir")
const CN_SUBSET_ASCENDABLE: Schema = { caption_extension: 'str', cache_info: 'bool' };
const CN_SUBSET_DISTINCT: Schema = { image_dir: 'str', conditioning_data_dir: 'str' };
// lines 235-247 (validation_split and network_multiplier are `float`: a TOML float; parseSimpleToml does not tell 1 from 1.0)
const DATASET_ASCENDABLE: Schema = {
  batch_size: 'int', bucket_no_upscale: 'bool', bucket_reso_steps: 'int', enable_bucket: 'bool', max_bucket_reso: 'int', min_bucket_reso: 'int',
  validation_seed: 'int', validation_split: 'number', resolution: 'int or int pair', network_multiplier: 'number', resize_interpolation: 'str',
};

interface Sanitizer { dreambooth: boolean; finetuning: boolean; controlnet: boolean; dropout: boolean }

/** ConfigSanitizer(support_dreambooth, support_finetuning, support_controlnet, support_dropout).user_config_validator; returns voluptuous-style errors. */
function validateUserConfig(config: Record<string, unknown>, flags: Sanitizer): string[] {
  const errors: string[] = [];
  const merge = (...schemas: (Schema | false)[]) => Object.assign({}, ...schemas.filter(Boolean)) as Schema;
  const dropout = flags.dropout && DO_SUBSET_ASCENDABLE;
  // lines 272-290
  const dbSubset = merge(SUBSET_ASCENDABLE, DB_SUBSET_DISTINCT, DB_SUBSET_ASCENDABLE, dropout);
  const ftSubset = merge(SUBSET_ASCENDABLE, FT_SUBSET_DISTINCT, dropout);
  const cnSubset = merge(SUBSET_ASCENDABLE, CN_SUBSET_DISTINCT, CN_SUBSET_ASCENDABLE, dropout);
  // lines 292-313: each dataset schema is its ascendable keys plus "subsets": [subset schema]
  const kinds = {
    db: { dataset: merge(DATASET_ASCENDABLE, SUBSET_ASCENDABLE, DB_SUBSET_ASCENDABLE, dropout), subset: dbSubset, required: ['image_dir'] },
    ft: { dataset: merge(DATASET_ASCENDABLE, SUBSET_ASCENDABLE, dropout), subset: ftSubset, required: ['metadata_file'] },
    cn: { dataset: merge(DATASET_ASCENDABLE, SUBSET_ASCENDABLE, CN_SUBSET_ASCENDABLE, dropout), subset: cnSubset, required: ['image_dir', 'conditioning_data_dir'] },
  };
  // lines 346-352
  const general = merge(DATASET_ASCENDABLE, SUBSET_ASCENDABLE, flags.dreambooth && DB_SUBSET_ASCENDABLE, flags.controlnet && CN_SUBSET_ASCENDABLE, dropout);

  const checkTable = (table: unknown, schema: Schema, where: string, required: string[] = [], nested?: (key: string, value: unknown) => void): void => {
    if (!isTable(table)) {
      errors.push(`expected a dictionary @ ${where}`);
      return;
    }
    for (const key of required) if (!(key in table)) errors.push(`required key not provided @ ${where}['${key}']`);
    for (const [key, value] of Object.entries(table)) {
      if (nested && key === 'subsets') nested(key, value);
      else if (!(key in schema)) errors.push(`extra keys not allowed @ ${where}['${key}']`);
      else if (!fits(schema[key]!, value)) errors.push(`expected ${schema[key]} @ ${where}['${key}']`);
    }
  };
  const checkDataset = (dataset: unknown, kind: keyof typeof kinds, where: string) => {
    const { dataset: schema, subset, required } = kinds[kind];
    checkTable(dataset, schema, where, [], (_key, subsets) => {
      if (!Array.isArray(subsets)) errors.push(`expected a list @ ${where}['subsets']`);
      else subsets.forEach((s, index) => checkTable(s, subset, `${where}['subsets'][${index}]`, required));
    });
  };
  // lines 315-344: which dataset schema
  const datasetKind = (dataset: unknown): keyof typeof kinds | string => {
    const subsets: unknown[] = isTable(dataset) && Array.isArray(dataset.subsets) ? dataset.subsets : [];
    const has = (key: string) => (subset: unknown) => isTable(subset) && key in subset;
    if (flags.dreambooth && flags.finetuning) {
      if (flags.controlnet && subsets.every(has('conditioning_data_dir'))) return 'cn';
      if (subsets.every(has('metadata_file'))) return 'ft';
      if (subsets.every((s) => !has('metadata_file')(s))) return 'db';
      return 'DreamBooth subset and fine tuning subset cannot be mixed in the same dataset';
    }
    if (flags.dreambooth) return flags.controlnet ? 'cn' : 'db';
    return flags.finetuning ? 'ft' : 'cn';
  };

  // lines 354-359: {"general": general_schema, "datasets": [dataset_schema]}
  for (const key of Object.keys(config)) if (key !== 'general' && key !== 'datasets') errors.push(`extra keys not allowed @ data['${key}']`);
  if (config.general !== undefined) checkTable(config.general, general, "data['general']");
  if (config.datasets !== undefined) {
    if (!Array.isArray(config.datasets)) errors.push("expected a list @ data['datasets']");
    else config.datasets.forEach((dataset, index) => {
      const kind = datasetKind(dataset);
      if (kind in kinds) checkDataset(dataset, kind as keyof typeof kinds, `data['datasets'][${index}]`);
      else errors.push(`${kind} @ data['datasets'][${index}]`);
    });
  }
  return errors;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fits(rule: Rule, value: unknown): boolean {
  switch (rule) {
    case 'bool': return typeof value === 'boolean';
    // voluptuous's `int` also takes a Python bool (a subclass of int); TOML gives none where an integer is meant here.
    case 'int': return Number.isSafeInteger(value);
    case 'str': return typeof value === 'string';
    case 'number': return typeof value === 'number';
    case 'dict': return isTable(value);
    case 'float pair': return Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'number');
    // __validate_and_convert_scalar_or_twodim(int), lines 174-180
    case 'int or int pair': return Number.isSafeInteger(value) || (Array.isArray(value) && value.length === 2 && value.every((v) => Number.isSafeInteger(v)));
  }
}

/** The ConfigSanitizer each script builds (the script at 48d368f, line). */
const SCRIPTS: Record<string, Sanitizer> = {
  'train_network.py': { dreambooth: true, finetuning: true, controlnet: false, dropout: true }, // train_network.py:517 (masked_loss off)
  'sdxl_train_network.py': { dreambooth: true, finetuning: true, controlnet: false, dropout: true }, // subclasses NetworkTrainer (sdxl_train_network.py:20)
  'train_db.py': { dreambooth: true, finetuning: false, controlnet: false, dropout: true }, // train_db.py:74
  'fine_tune.py': { dreambooth: false, finetuning: true, controlnet: false, dropout: true }, // fine_tune.py:69
  'sdxl_train.py': { dreambooth: true, finetuning: true, controlnet: false, dropout: true }, // sdxl_train.py:140
};

/** Python's os.path.join(a, b) on POSIX: an absolute b replaces a. */
function pythonJoin(a: string, b: string): string {
  if (b.startsWith('/')) return b;
  return a.endsWith('/') ? `${a}${b}` : `${a}/${b}`;
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-form-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function library(t: TestContext): Promise<ExportImage[]> {
  const dir = tempDir(t);
  const images: ExportImage[] = [];
  for (const [name, width, height, tags] of [['wide.png', 96, 54, ['1girl', 'smile']], ['tall.webp', 54, 96, ['sky']], ['tv.jpg', 64, 48, ['night']]] as const) {
    const file = path.join(dir, name);
    const image = sharp({ create: { width, height, channels: 3, background: '#336699' } });
    await (name.endsWith('.webp') ? image.webp() : name.endsWith('.jpg') ? image.jpeg() : image.png()).toFile(file);
    images.push({ hash: createHash('sha256').update(readFileSync(file)).digest('hex'), path: file, width, height, tags: [...tags] });
  }
  return images;
}

const options = exportOptions;

test('each training script gets its form: fine_tune.py and sdxl_train.py fine-tuning, the LoRA scripts and train_db.py DreamBooth', () => {
  assert.equal(datasetFormFor('fine_tune.py'), 'fine-tuning');
  assert.equal(datasetFormFor('sdxl_train.py'), 'fine-tuning');
  assert.equal(datasetFormFor('./sd-scripts/sdxl_train.py'), 'fine-tuning');
  assert.equal(datasetFormFor(String.raw`scripts\fine_tune.py`), 'fine-tuning');
  for (const script of ['train_network.py', 'sdxl_train_network.py', 'flux_train_network.py', 'train_db.py']) assert.equal(datasetFormFor(script), 'dreambooth');
  assert.equal(datasetFormFor(undefined), 'dreambooth');
});

for (const [script, sanitizer] of Object.entries(SCRIPTS)) {
  test(`${script}: the dataset_config.toml passes its ConfigSanitizer schema, and every image it names exists`, async (t) => {
    const images = await library(t);
    const out = path.join(tempDir(t), 'dataset');
    const form = datasetFormFor(script);
    const result = await exportKohyaDataset(images, options(out, { form }));
    const config = parseSimpleToml(readFileSync(result.datasetConfig, 'utf8')) as any;
    assert.deepEqual(validateUserConfig(config, sanitizer), []);
    const subset = config.datasets[0].subsets[0];
    const imagesDir = path.join(out, 'images');
    assert.equal(subset.image_dir, imagesDir);
    assert.equal(subset.num_repeats, 2);

    if (form === 'dreambooth') {
      // DreamBoothDataset reads `<image stem><caption_extension>` beside each image in image_dir.
      assert.equal(config.general.caption_extension, '.txt');
      assert.equal(result.metadataFile, null);
      for (const image of images) assert.ok(existsSync(path.join(imagesDir, `${image.hash}.txt`)));
      return;
    }
    // FineTuningDataset: metadata_file must exist (train_util.py:2242-2263); each key is joined with
    // image_dir when relative and used as it is when absolute (2276-2284), with no search for an extension.
    assert.equal(subset.metadata_file, result.metadataFile);
    assert.equal(config.general.caption_extension, undefined);
    const metadata = JSON.parse(readFileSync(subset.metadata_file, 'utf8')) as Record<string, { caption: string; image_size: [number, number] }>;
    assert.equal(Object.keys(metadata).length, images.length);
    for (const [key, entry] of Object.entries(metadata)) {
      const file = pythonJoin(subset.image_dir, key);
      assert.ok(statSync(file).isFile(), `${key} names no file`);
      // Before v0.10.0 a key was tried as a path first (os.path.exists(image_key)): an absolute one is found there too.
      assert.ok(path.isAbsolute(key));
      const { width, height } = await sharp(file).metadata();
      assert.deepEqual(entry.image_size, [width, height], `${key}: image_size is [width, height] of the file`);
      assert.equal(`${entry.caption}\n`, readFileSync(file.replace(/\.[^.]+$/, '.txt'), 'utf8'));
      assert.ok(entry.caption.startsWith('celchar, '));
    }
  });
}

test('the transcription is strict: the DreamBooth form, with bare-hash keys, is what fine_tune.py refused', async (t) => {
  const images = await library(t);
  const out = tempDir(t);
  const result = await exportKohyaDataset(images, options(out, { form: 'dreambooth', fineTuneMetadata: true }));
  const config = parseSimpleToml(readFileSync(result.datasetConfig, 'utf8'));
  assert.deepEqual(validateUserConfig(config, SCRIPTS['fine_tune.py']!).sort(), [
    "extra keys not allowed @ data['datasets'][0]['subsets'][0]['class_tokens']",
    "extra keys not allowed @ data['general']['caption_extension']",
    "required key not provided @ data['datasets'][0]['subsets'][0]['metadata_file']",
  ]);
  assert.deepEqual(validateUserConfig({ datasets: [{ subsets: [{ image_dir: 'a' }, { metadata_file: 'm.json' }] }] }, SCRIPTS['sdxl_train.py']!), [
    "DreamBooth subset and fine tuning subset cannot be mixed in the same dataset @ data['datasets'][0]",
  ]);
  // A key without its extension, joined with image_dir, names no file since v0.10.0.
  for (const image of images) assert.equal(existsSync(pythonJoin(path.join(out, 'images'), image.hash)), false);
});

/** A cast for the per-character layout: two characters alone, both together, scenery. */
async function castLibrary(t: TestContext): Promise<ExportImage[]> {
  const images = await library(t);
  const [wide, tall, tv] = images as [ExportImage, ExportImage, ExportImage];
  const dir = tempDir(t);
  const file = path.join(dir, 'both.png');
  await sharp({ create: { width: 80, height: 45, channels: 3, background: '#996633' } }).png().toFile(file);
  return [
    { ...wide, tags: ['character:saber_(fate)', '1girl'] },
    { ...tall, tags: ["character:o'brien", 'sky'] },
    tv,
    { hash: createHash('sha256').update(readFileSync(file)).digest('hex'), path: file, width: 80, height: 45, tags: ['character:saber_(fate)', "character:o'brien"] },
  ];
}

for (const [script, sanitizer] of Object.entries(SCRIPTS)) {
  test(`${script}: the per-character layout passes its ConfigSanitizer schema, each subset with its own image_dir (and metadata_file)`, async (t) => {
    const images = await castLibrary(t);
    const out = path.join(tempDir(t), 'dataset');
    const form = datasetFormFor(script);
    const result = await exportKohyaDataset(images, options(out, { form, layout: 'per-character', balance: { band: [0.8, 1.25], sceneryShare: 0.5, maxRepeats: 10 } }));
    const config = parseSimpleToml(readFileSync(result.datasetConfig, 'utf8')) as any;
    assert.deepEqual(validateUserConfig(config, sanitizer), []);
    const subsets = config.datasets[0].subsets as any[];
    assert.equal(subsets.length, 4);
    // Kohya drops a subset equal to an earlier one: the same image_dir, or in the fine-tuning form the same metadata_file.
    assert.equal(new Set(subsets.map((s) => s.image_dir)).size, 4);
    for (const subset of subsets) {
      assert.ok(Number.isSafeInteger(subset.keep_tokens) && subset.keep_tokens >= 1);
      assert.ok(statSync(subset.image_dir).isDirectory());
    }
    assert.deepEqual(subsets.map((s) => s.keep_tokens), [1, 2, 2, 3], 'celchar and the names');
    if (form === 'dreambooth') {
      assert.equal(result.metadataFile, null);
      assert.deepEqual(subsets.map((s) => s.class_tokens), ['celchar', "celchar, o'brien", 'celchar, saber (fate)', "celchar, o'brien, saber (fate)"]);
      return;
    }
    assert.equal(new Set(subsets.map((s) => s.metadata_file)).size, 4);
    for (const subset of subsets) {
      assert.equal(subset.metadata_file, path.join(subset.image_dir, 'meta_cap.json'));
      const metadata = JSON.parse(readFileSync(subset.metadata_file, 'utf8')) as Record<string, { caption: string; image_size: [number, number] }>;
      for (const [key, entry] of Object.entries(metadata)) {
        assert.equal(path.dirname(key), subset.image_dir);
        assert.ok(statSync(pythonJoin(subset.image_dir, key)).isFile());
        assert.equal(entry.caption.split(',').length >= subset.keep_tokens, true);
      }
    }
  });
}
