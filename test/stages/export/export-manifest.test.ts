/**
 * An export never overwrites or removes a file celforge did not write, or
 * one a person changed after celforge wrote it: it stops before writing
 * anything and names the files. Real files in real folders throughout.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import sharp from 'sharp';
import { CelforgeError } from '../../../src/errors.ts';
import { exportKohyaDataset, type ExportImage, type ExportOptions } from '../../../src/stages/export/kohya-export.ts';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-export-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function makeImage(dir: string, name: string, colour: string, tags: string[]): Promise<ExportImage> {
  const file = path.join(dir, name);
  await sharp({ create: { width: 64, height: 36, channels: 3, background: colour } }).png().toFile(file);
  return { hash: createHash('sha256').update(readFileSync(file)).digest('hex'), path: file, width: 64, height: 36, tags };
}

async function library(t: TestContext): Promise<[ExportImage, ExportImage]> {
  const dir = tempDir(t);
  return [await makeImage(dir, 'a.png', '#aa0000', ['1girl', 'smile']), await makeImage(dir, 'b.png', '#0000aa', ['sky'])];
}

function optionsFor(out: string, changes: Partial<ExportOptions> = {}): ExportOptions {
  return {
    out,
    caption: { triggerWords: [], keepTokens: 0, underscoresToSpaces: true },
    buckets: { resolution: [512, 512], minBucketReso: 256, maxBucketReso: 1024, bucketResoSteps: 64 },
    numRepeats: 1,
    batchSize: 1,
    link: 'hardlink',
    ...changes,
  };
}

/** Every file under `dir` with its bytes, to show that a refused export changed nothing. */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    files.set(path.relative(dir, file), `${readFileSync(file, 'base64')} ${statSync(file).mtimeMs}`);
  }
  return files;
}

async function refused(promise: Promise<unknown>, conflicts: string[]): Promise<CelforgeError> {
  let caught: unknown;
  await promise.catch((error: unknown) => (caught = error));
  assert.ok(caught instanceof CelforgeError && caught.code === 'EXPORT_CONFLICT', `expected EXPORT_CONFLICT, got ${String(caught)}`);
  const listed = caught.message.split('\n').filter((line) => line.startsWith('  ')).map((line) => line.trim()).sort();
  assert.deepEqual(listed, [...conflicts].sort());
  assert.match(caught.message, /Nothing was written\. Move (it|them) out of .* or export to another folder with --out\./);
  return caught;
}

const personToml = '# my own settings for another dataset\n[general]\ncaption_extension = ".caption"\n';
const personReport = '{"mine": true}\n';

test("a person's own dataset_config.toml and bucket_report.json: the export stops before writing anything", async (t) => {
  const images = await library(t);
  const out = tempDir(t);
  writeFileSync(path.join(out, 'dataset_config.toml'), personToml);
  writeFileSync(path.join(out, 'bucket_report.json'), personReport);
  const before = snapshot(out);

  const error = await refused(exportKohyaDataset(images, optionsFor(out)), ['dataset_config.toml', 'bucket_report.json']);
  assert.ok(error.message.startsWith(`${out}: these 2 files were not written by celforge`), error.message);
  assert.deepEqual(snapshot(out), before, 'not one file written, changed or removed');
  assert.equal(existsSync(path.join(out, 'images')), false);

  // Moved away, as the message says: the export goes through, and the person's files are where they were moved.
  mkdirSync(path.join(out, 'mine'));
  renameSync(path.join(out, 'dataset_config.toml'), path.join(out, 'mine', 'dataset_config.toml'));
  renameSync(path.join(out, 'bucket_report.json'), path.join(out, 'mine', 'bucket_report.json'));
  const result = await exportKohyaDataset(images, optionsFor(out));
  assert.equal(result.images, 2);
  assert.equal(readFileSync(path.join(out, 'mine', 'dataset_config.toml'), 'utf8'), personToml);
  assert.equal(readFileSync(path.join(out, 'mine', 'bucket_report.json'), 'utf8'), personReport);
});

test('a caption a person edited after the export is neither overwritten nor removed', async (t) => {
  const [a, b] = await library(t);
  const out = tempDir(t);
  await exportKohyaDataset([a, b], optionsFor(out));
  const captionA = path.join(out, 'images', `${a.hash}.txt`);
  assert.equal(readFileSync(captionA, 'utf8'), '1girl, smile\n');
  writeFileSync(captionA, '1girl, smile, red dress\n');
  const before = snapshot(out);

  // The tags changed in the catalog: the export would rewrite both captions.
  const retagged = [{ ...a, tags: ['1girl'] }, { ...b, tags: ['sky', 'cloud'] }];
  await refused(exportKohyaDataset(retagged, optionsFor(out)), [`images/${a.hash}.txt`]);
  assert.deepEqual(snapshot(out), before);
  // With the same tags it would still put the old caption back over the edit.
  await refused(exportKohyaDataset([a, b], optionsFor(out)), [`images/${a.hash}.txt`]);
  // And leaving the image out would remove the caption with it.
  await refused(exportKohyaDataset([b], optionsFor(out)), [`images/${a.hash}.txt`]);
  assert.deepEqual(snapshot(out), before);
  assert.equal(readFileSync(captionA, 'utf8'), '1girl, smile, red dress\n');

  // The person puts it back as celforge wrote it (the same bytes): it is celforge's again.
  writeFileSync(captionA, '1girl, smile\n');
  const result = await exportKohyaDataset(retagged, optionsFor(out));
  assert.equal(result.images, 2);
  assert.equal(readFileSync(captionA, 'utf8'), '1girl\n');
  assert.equal(readFileSync(path.join(out, 'images', `${b.hash}.txt`), 'utf8'), 'sky, cloud\n');
});

test("a person's file where an image or caption goes, an edited image, an edited toml: each stops the export", async (t) => {
  const [a, b] = await library(t);
  const out = tempDir(t);
  mkdirSync(path.join(out, 'images'));
  // Their own caption for an image celforge is about to export, and their own picture under its name.
  writeFileSync(path.join(out, 'images', `${a.hash}.txt`), 'my caption\n');
  await sharp({ create: { width: 64, height: 36, channels: 3, background: '#00ff00' } }).png().toFile(path.join(out, 'images', `${b.hash}.png`));
  await refused(exportKohyaDataset([a, b], optionsFor(out)), [`images/${a.hash}.txt`, `images/${b.hash}.png`]);
  assert.equal(readFileSync(path.join(out, 'images', `${a.hash}.txt`), 'utf8'), 'my caption\n');
  assert.equal(existsSync(path.join(out, '.celforge-export.json')), false);
  rmSync(path.join(out, 'images'), { recursive: true });

  await exportKohyaDataset([a, b], optionsFor(out, { link: 'copy' }));
  // A copied image painted over in place, and a hand-tuned dataset_config.toml.
  const copiedB = path.join(out, 'images', `${b.hash}.png`);
  await sharp({ create: { width: 64, height: 36, channels: 3, background: '#ffff00' } }).png().toFile(`${copiedB}.edit`);
  renameSync(`${copiedB}.edit`, copiedB);
  const toml = path.join(out, 'dataset_config.toml');
  writeFileSync(toml, readFileSync(toml, 'utf8').replace('num_repeats = 1', 'num_repeats = 7'));
  const before = snapshot(out);
  await refused(exportKohyaDataset([a, b], optionsFor(out, { link: 'copy' })), [`images/${b.hash}.png`, 'dataset_config.toml']);
  await refused(exportKohyaDataset([a], optionsFor(out, { link: 'copy' })), [`images/${b.hash}.png`, 'dataset_config.toml']);
  assert.deepEqual(snapshot(out), before);
});

test('files holding exactly what the export writes are taken over; after a clean export every file is recorded', async (t) => {
  const [a, b] = await library(t);
  const first = tempDir(t);
  await exportKohyaDataset([a, b], optionsFor(first, { fineTuneMetadata: true }));

  // Another folder holding the same bytes (the record lost, say): nothing would be lost by writing them again.
  const out = tempDir(t);
  for (const name of ['bucket_report.json', path.join('images', `${a.hash}.txt`)]) {
    mkdirSync(path.dirname(path.join(out, name)), { recursive: true });
    writeFileSync(path.join(out, name), readFileSync(path.join(first, name)));
  }
  writeFileSync(path.join(out, 'images', `${b.hash}.png`), readFileSync(b.path)); // a copy, not a link
  const result = await exportKohyaDataset([a, b], optionsFor(out, { fineTuneMetadata: true }));
  assert.equal(result.images, 2);

  const record = JSON.parse(readFileSync(path.join(out, '.celforge-export.json'), 'utf8'));
  assert.equal(record.format, 'celforge-kohya-export/2');
  assert.deepEqual(Object.keys(record.files).sort(), [
    'bucket_report.json', 'dataset_config.toml', `images/${a.hash}.png`, `images/${a.hash}.txt`, `images/${b.hash}.png`, `images/${b.hash}.txt`, 'meta_cap.json',
  ].sort());
  for (const [name, fingerprints] of Object.entries(record.files) as [string, object[]][]) {
    assert.equal(fingerprints.length, 1, name);
  }
  // Exporting again, and leaving meta_cap.json and an image out, works on the record alone.
  const again = await exportKohyaDataset([a], optionsFor(out));
  assert.equal(again.removed, 1);
  assert.deepEqual(readdirSync(out).sort(), ['.celforge-export.json', 'bucket_report.json', 'dataset_config.toml', 'images']);
  assert.deepEqual(readdirSync(path.join(out, 'images')).sort(), [`${a.hash}.png`, `${a.hash}.txt`]);
});

test('a folder exported by the first record format: what it wrote is celforge\'s until changed after that record', async (t) => {
  const [a, b] = await library(t);
  const out = tempDir(t);
  await exportKohyaDataset([a, b], optionsFor(out, { fineTuneMetadata: true }));
  // What the first format wrote: names only.
  const names = [`${a.hash}.png`, `${a.hash}.txt`, `${b.hash}.png`, `${b.hash}.txt`];
  const record = path.join(out, '.celforge-export.json');
  writeFileSync(record, JSON.stringify({ format: 'celforge-kohya-export/1', images: names, metadataFile: true }));
  const recordTime = new Date(Date.now() - 60_000);
  utimesSync(record, recordTime, recordTime);
  const older = new Date(recordTime.getTime() - 60_000);
  for (const name of ['dataset_config.toml', 'bucket_report.json', 'meta_cap.json', ...names.filter((n) => n.endsWith('.txt')).map((n) => `images/${n}`)]) {
    utimesSync(path.join(out, name), older, older);
  }
  // Changed after the record was written: a person's.
  writeFileSync(path.join(out, 'images', `${b.hash}.txt`), 'sky, my words\n');
  await refused(exportKohyaDataset([a, { ...b, tags: ['night'] }], optionsFor(out)), [`images/${b.hash}.txt`]);

  rmSync(path.join(out, 'images', `${b.hash}.txt`));
  const result = await exportKohyaDataset([a, { ...b, tags: ['night'] }], optionsFor(out));
  assert.equal(result.images, 2);
  assert.equal(existsSync(path.join(out, 'meta_cap.json')), false, 'meta_cap.json, written by the first format, went when no longer asked for');
  assert.equal(JSON.parse(readFileSync(record, 'utf8')).format, 'celforge-kohya-export/2');
});

test('a record that is not celforge\'s, a file where the images folder goes, a file as the export folder: refused without writing', async (t) => {
  const images = await library(t);
  const out = tempDir(t);
  writeFileSync(path.join(out, '.celforge-export.json'), '{"something": "else"}');
  await assert.rejects(exportKohyaDataset(images, optionsFor(out)), (error: unknown) =>
    error instanceof CelforgeError && error.code === 'CONFIG_INVALID' && /\.celforge-export\.json: cannot read the record of an earlier export/.test(error.message));
  assert.equal(readFileSync(path.join(out, '.celforge-export.json'), 'utf8'), '{"something": "else"}');

  const other = tempDir(t);
  writeFileSync(path.join(other, 'images'), 'a file');
  await refused(exportKohyaDataset(images, optionsFor(other)), ['images (not a folder)']);
  assert.deepEqual(readdirSync(other), ['images']);

  const file = path.join(other, 'images');
  await assert.rejects(exportKohyaDataset(images, optionsFor(file)), (error: unknown) =>
    error instanceof CelforgeError && error.code === 'EXPORT_CONFLICT' && error.message === `${file} is a file, not a folder; nothing was written. Export to a folder with --out.`);
  assert.equal(readFileSync(file, 'utf8'), 'a file');
});
