import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import sharp from 'sharp';
import { CelforgeError } from '../../../src/errors.ts';
import { exportKohyaDataset, type ExportImage, type ExportOptions } from '../../../src/stages/export/kohya-export.ts';
import { parseSimpleToml } from '../../../src/stages/export/kohya-toml.ts';
import { exportOptions } from '../../fixtures/export-options.ts';

function tempDir(t: TestContext, parent = os.tmpdir()): string {
  const dir = mkdtempSync(path.join(parent, 'celforge-export-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function makeImage(dir: string, name: string, width: number, height: number, tags: string[]): Promise<ExportImage> {
  const file = path.join(dir, name);
  const format = path.extname(name) === '.webp' ? 'webp' : 'png';
  await sharp({ create: { width, height, channels: 3, background: '#808080' } })[format]().toFile(file);
  const hash = createHash('sha256').update(readFileSync(file)).digest('hex');
  return { hash, path: file, width, height, tags };
}

/** A 16:9 frame, a 9:16 one and a 4:3 one, tiny but with the aspect ratios of real frames. */
async function library(t: TestContext, parent?: string): Promise<ExportImage[]> {
  const dir = tempDir(t, parent);
  return [
    await makeImage(dir, 'wide.png', 64, 36, ['series:fate', 'episode:03', 'character:saber_(fate)', '1girl', 'long_hair', 'rating:general']),
    await makeImage(dir, 'tall.png', 36, 64, ['1girl', 'standing', '^_^']),
    await makeImage(dir, 'tv.webp', 48, 36, ['scene:0012', 'sky', 'sky']),
  ];
}

function optionsFor(out: string, changes: Partial<ExportOptions> = {}): ExportOptions {
  return exportOptions(out, { numRepeats: 10, batchSize: 2, ...changes });
}

const readText = (file: string) => readFileSync(file, 'utf8');

test('an export: linked images, caption sidecars, dataset_config.toml, bucket report, fine-tune metadata', async (t) => {
  const images = await library(t);
  const out = path.join(tempDir(t), 'my dataset');
  const result = await exportKohyaDataset(images, optionsFor(out, { fineTuneMetadata: true }));
  const [wide, tall, tv] = images as [ExportImage, ExportImage, ExportImage];
  const imagesDir = path.join(out, 'images');

  assert.equal(result.images, 3);
  assert.equal(result.linked, 3);
  assert.equal(result.copied, 0);
  assert.equal(result.removed, 0);
  assert.deepEqual(result.foreign, []);
  assert.equal(result.datasetConfig, path.join(out, 'dataset_config.toml'));
  assert.equal(result.metadataFile, path.join(out, 'meta_cap.json'));
  assert.equal(result.form, 'dreambooth');

  assert.deepEqual(readdirSync(imagesDir).sort(), [
    `${wide.hash}.png`, `${wide.hash}.txt`, `${tall.hash}.png`, `${tall.hash}.txt`, `${tv.hash}.webp`, `${tv.hash}.txt`,
  ].sort());
  for (const [image, extension] of [[wide, '.png'], [tall, '.png'], [tv, '.webp']] as const) {
    assert.equal(statSync(path.join(imagesDir, `${image.hash}${extension}`)).ino, statSync(image.path).ino);
  }
  assert.equal(readText(path.join(imagesDir, `${wide.hash}.txt`)), 'celchar, saber (fate), 1girl, long hair, general\n');
  assert.equal(readText(path.join(imagesDir, `${tall.hash}.txt`)), 'celchar, 1girl, standing, ^_^\n');
  assert.equal(readText(path.join(imagesDir, `${tv.hash}.txt`)), 'celchar, sky\n');

  assert.deepEqual(parseSimpleToml(readText(result.datasetConfig)), {
    general: { enable_bucket: true, caption_extension: '.txt', shuffle_caption: true, keep_tokens: 1 },
    datasets: [{
      resolution: 512,
      batch_size: 2,
      min_bucket_reso: 256,
      max_bucket_reso: 1024,
      bucket_reso_steps: 64,
      bucket_no_upscale: false,
      subsets: [{ image_dir: imagesDir, num_repeats: 10, class_tokens: 'celchar' }],
    }],
  });

  // 64x36 is 16:9 -> 640x384; 36x64 -> 384x640; 48x36 is 4:3 -> 576x448 (see kohya-buckets.test.ts)
  const expectedReport = {
    buckets: [
      { resolution: [384, 640], count: 1 },
      { resolution: [576, 448], count: 1 },
      { resolution: [640, 384], count: 1 },
    ],
    meanAspectError: ((64 / 36 - 640 / 384) + (384 / 640 - 36 / 64) + (48 / 36 - 576 / 448)) / 3,
  };
  assert.deepEqual(result.bucketReport.buckets, expectedReport.buckets);
  assert.ok(Math.abs(result.bucketReport.meanAspectError - expectedReport.meanAspectError) < 1e-12);
  assert.deepEqual(JSON.parse(readText(path.join(out, 'bucket_report.json'))), result.bucketReport);

  // Keyed by absolute path, which sd-scripts finds before and after v0.10.0 (see kohya-dataset-form.test.ts), with [width, height].
  assert.deepEqual(JSON.parse(readText(path.join(out, 'meta_cap.json'))), {
    [path.join(imagesDir, `${wide.hash}.png`)]: { caption: 'celchar, saber (fate), 1girl, long hair, general', image_size: [64, 36] },
    [path.join(imagesDir, `${tall.hash}.png`)]: { caption: 'celchar, 1girl, standing, ^_^', image_size: [36, 64] },
    [path.join(imagesDir, `${tv.hash}.webp`)]: { caption: 'celchar, sky', image_size: [48, 36] },
  });
  assert.deepEqual(readdirSync(out).sort(), ['.celforge-export.json', 'bucket_report.json', 'dataset_config.toml', 'images', 'meta_cap.json']);
});

test("link: 'copy' writes copies, not links", async (t) => {
  const images = await library(t);
  const out = tempDir(t);
  const result = await exportKohyaDataset(images, optionsFor(out, { link: 'copy' }));
  assert.equal(result.linked, 0);
  assert.equal(result.copied, 3);
  assert.equal(result.metadataFile, null);
  assert.equal(existsSync(path.join(out, 'meta_cap.json')), false);
  for (const image of images) {
    const exported = path.join(out, 'images', `${image.hash}${path.extname(image.path)}`);
    assert.notEqual(statSync(exported).ino, statSync(image.path).ino);
    assert.deepEqual(readFileSync(exported), readFileSync(image.path));
  }
  // And back to links: an export asking for links replaces the copies.
  const relinked = await exportKohyaDataset(images, optionsFor(out, { link: 'hardlink' }));
  assert.equal(relinked.linked, 3);
  for (const image of images) {
    assert.equal(statSync(path.join(out, 'images', `${image.hash}${path.extname(image.path)}`)).ino, statSync(image.path).ino);
  }
});

const otherVolume = existsSync('/dev/shm') && statSync('/dev/shm').dev !== statSync(os.tmpdir()).dev;
test("link: 'auto' copies where the library is on another volume", { skip: otherVolume ? false : 'no second volume (/dev/shm) here' }, async (t) => {
  const images = await library(t, '/dev/shm');
  const out = tempDir(t);
  await assert.rejects(
    exportKohyaDataset(images, optionsFor(out, { link: 'hardlink' })),
    (error: unknown) => error instanceof CelforgeError && error.code === 'CONFIG_INVALID' && /EXDEV/.test(error.message),
  );
  const result = await exportKohyaDataset(images, optionsFor(out, { link: 'auto' }));
  assert.equal(result.linked, 0);
  assert.equal(result.copied, 3);
  const again = await exportKohyaDataset(images, optionsFor(out, { link: 'auto' }));
  assert.equal(again.copied, 3);
});

test('exporting again: captions follow the tags, dropped images go, nothing else is touched', async (t) => {
  const images = await library(t);
  const [wide, tall, tv] = images as [ExportImage, ExportImage, ExportImage];
  const out = tempDir(t);
  await exportKohyaDataset(images, optionsFor(out));
  const imagesDir = path.join(out, 'images');
  const firstConfig = readText(path.join(out, 'dataset_config.toml'));
  const captionBefore = statSync(path.join(imagesDir, `${tall.hash}.txt`));

  // The person's own files, and a cache Kohya wrote beside an image.
  writeFileSync(path.join(imagesDir, 'extra.png'), 'not ours');
  writeFileSync(path.join(imagesDir, 'notes.md'), 'mine');
  writeFileSync(path.join(imagesDir, `${tv.hash}.npz`), 'latents');
  mkdirSync(path.join(out, 'samples'));

  const newImage = await makeImage(tempDir(t), 'new.png', 64, 64, ['smile']);
  const selection = [{ ...wide, tags: ['1girl', 'short_hair'] }, tall, newImage];
  const result = await exportKohyaDataset(selection, optionsFor(out));

  assert.equal(result.images, 3);
  assert.equal(result.linked, 3);
  assert.equal(result.removed, 1);
  assert.deepEqual(result.foreign, ['extra.png']);
  assert.deepEqual(readdirSync(imagesDir).sort(), [
    `${wide.hash}.png`, `${wide.hash}.txt`, `${tall.hash}.png`, `${tall.hash}.txt`, `${newImage.hash}.png`, `${newImage.hash}.txt`,
    'extra.png', 'notes.md', `${tv.hash}.npz`,
  ].sort());
  assert.equal(readText(path.join(imagesDir, `${wide.hash}.txt`)), 'celchar, 1girl, short hair\n');
  assert.equal(readText(path.join(imagesDir, `${newImage.hash}.txt`)), 'celchar, smile\n');
  // An unchanged caption is not rewritten.
  assert.equal(statSync(path.join(imagesDir, `${tall.hash}.txt`)).mtimeMs, captionBefore.mtimeMs);
  assert.equal(readText(path.join(out, 'dataset_config.toml')), firstConfig);
  assert.ok(existsSync(path.join(out, 'samples')));
  assert.equal(readText(path.join(imagesDir, 'notes.md')), 'mine');

  // The same selection a third time changes nothing.
  const listing = readdirSync(imagesDir).sort();
  const same = await exportKohyaDataset(selection, optionsFor(out));
  assert.equal(same.removed, 0);
  assert.deepEqual(readdirSync(imagesDir).sort(), listing);
  assert.equal(readdirSync(out).filter((name) => name.includes('tmp')).length, 0);
});

test('fine-tune metadata written earlier goes when no longer asked for', async (t) => {
  const images = await library(t);
  const out = tempDir(t);
  await exportKohyaDataset(images, optionsFor(out, { fineTuneMetadata: true }));
  assert.ok(existsSync(path.join(out, 'meta_cap.json')));
  await exportKohyaDataset(images, optionsFor(out));
  assert.equal(existsSync(path.join(out, 'meta_cap.json')), false);
});

test('what Kohya cannot train from is refused before anything is written', async (t) => {
  const images = await library(t);
  const out = path.join(tempDir(t), 'out');
  const refused = async (selection: ExportImage[], changes: Partial<ExportOptions>, code: string, pattern: RegExp) => {
    await assert.rejects(exportKohyaDataset(selection, optionsFor(out, changes)), (error: unknown) =>
      error instanceof CelforgeError && error.code === code && pattern.test(error.message));
  };
  await refused([{ ...images[0]!, path: '/nowhere/frame.gif' }], {}, 'CONFIG_INVALID', /Kohya reads only \.png \.jpg \.jpeg \.webp \.bmp/);
  await refused([images[0]!, { ...images[1]!, hash: images[0]!.hash }], {}, 'CONFIG_INVALID', /selected twice/);
  await refused([{ ...images[0]!, hash: '../etc' }], {}, 'CONFIG_INVALID', /not a file-safe hash/);
  await refused(images, { numRepeats: 0 }, 'CONFIG_INVALID', /numRepeats/);
  await refused(images, { caption: { triggerWords: ['a', 'b'], keepTokens: 1, underscoresToSpaces: true } }, 'CONFIG_INVALID', /keepTokens is 1 but there are 2 trigger words/);
  await refused(images, { buckets: { resolution: [512, 512], minBucketReso: 576, maxBucketReso: 1024, bucketResoSteps: 64 } }, 'CONFIG_INVALID', /minBucketReso/);
  await refused([images[0]!, { ...images[1]!, path: '/nowhere/frame.png' }], {}, 'FILE_NOT_FOUND', /\/nowhere\/frame\.png/);
  assert.equal(existsSync(out), false);
});
