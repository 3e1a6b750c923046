/** `celforge export` through the CLI: catalog tags (with a person's edits) become Kohya captions and config, read back. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { parseSimpleToml } from '../../src/stages/export/kohya-toml.ts';
import { FakeHydrus } from '../fixtures/fake-hydrus.ts';
import { runCli, tempDir, writeConfig } from '../helpers.ts';

async function setup(t: Parameters<typeof tempDir>[0], extra: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  const configFile = writeConfig(dir, {
    export: { triggerWords: ['mychar'], keepTokens: 1, resolution: 512, minBucketReso: 256, maxBucketReso: 1024, numRepeats: 3 },
    ...extra,
  });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  const drop = path.join(dir, 'drop');
  mkdirSync(drop);
  for (const [name, width, height] of [['wide', 192, 108], ['tall', 108, 192], ['square', 128, 128]] as const) {
    await sharp({ create: { width, height, channels: 3, background: '#446688' } }).png().toFile(path.join(drop, `${name}.png`));
    writeFileSync(path.join(drop, `${name}.txt`), `1girl, solo, long hair, ${name}, series:ubw, rating:general, ^_^`);
  }
  await cli('import', drop);
  return { dir, cli };
}

test('export writes captions with trigger words first and a person\'s edits, a dataset config Kohya reads, and buckets', async (t) => {
  const { dir, cli } = await setup(t);
  await cli('tag', 'square', '--remove', 'solo');
  const out = path.join(dir, 'dataset');
  const result = await cli('export', '1girl', '--out', out);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /3 images \(3 linked, 0 copied\)/);

  const toml = parseSimpleToml(readFileSync(path.join(out, 'dataset_config.toml'), 'utf8')) as any;
  assert.equal(toml.general.keep_tokens, 1);
  assert.equal(toml.general.caption_extension, '.txt');
  assert.equal(toml.general.enable_bucket, true);
  assert.equal(toml.datasets[0].resolution, 512);
  assert.equal(toml.datasets[0].min_bucket_reso, 256);
  assert.equal(toml.datasets[0].subsets[0].num_repeats, 3);
  assert.equal(toml.datasets[0].subsets[0].image_dir, path.join(out, 'images'));

  const files = readdirSync(path.join(out, 'images')).sort();
  assert.equal(files.filter((f) => f.endsWith('.png')).length, 3);
  const captions = files.filter((f) => f.endsWith('.txt')).map((f) => readFileSync(path.join(out, 'images', f), 'utf8').trim());
  for (const caption of captions) {
    assert.ok(caption.startsWith('mychar, '), caption);
    assert.doesNotMatch(caption, /series|ubw/, 'organisation tags are not captions');
    assert.match(caption, /long hair/);
    assert.match(caption, /\^_\^/, 'kaomoji keep their underscores');
  }
  const square = captions.find((c) => c.includes('square'))!;
  assert.doesNotMatch(square, /solo/, "a person's removal reaches the caption");
  // 192x108 at 512: Kohya's buckets (see kohya-buckets.test.ts) put 16:9 in 640x384 and 1:1 in 512x512.
  const report = JSON.parse(readFileSync(path.join(out, 'bucket_report.json'), 'utf8'));
  const buckets = Object.fromEntries(report.buckets.map((b: any) => [`${b.resolution[0]}x${b.resolution[1]}`, b.count]));
  assert.deepEqual(buckets, { '384x640': 1, '512x512': 1, '640x384': 1 });
  const png = files.find((f) => f.endsWith('.png'))!;
  assert.ok(statSync(path.join(out, 'images', png)).nlink >= 2, 'images are hard links into the library');
});

test('with Hydrus configured, export pulls corrections first, and refuses when Hydrus is closed unless told to skip it', async (t) => {
  const fake = await FakeHydrus.start();
  const { dir, cli } = await setup(t, { hydrus: { url: fake.url, accessKey: fake.accessKey } });
  await cli('hydrus', 'push', '1girl');
  const { HydrusClient } = await import('../../src/adapters/hydrus-client.ts');
  const hashes = (await cli('search', 'wide', '--json')).stdout.trim().split('\n').map((l) => JSON.parse(l).hash);
  await new HydrusClient({ url: fake.url, accessKey: fake.accessKey, tagService: 'my tags' }).addTags(hashes, ['smile'], ['solo']);
  const out = path.join(dir, 'dataset');
  const exported = await cli('export', 'wide', '--out', out);
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(exported.stdout, /hydrus: 1 tags added, 1 removed/);
  const caption = readFileSync(path.join(out, 'images', `${hashes[0]}.txt`), 'utf8');
  assert.match(caption, /smile/);
  assert.doesNotMatch(caption, /solo/);

  await fake.stop();
  const refused = await cli('export', 'wide', '--out', out);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /Hydrus does not answer.*--skip-hydrus/);
  assert.equal((await cli('export', 'wide', '--out', out, '--skip-hydrus')).code, 0);
});

test("export into a folder with a person's own dataset_config.toml and bucket_report.json stops, names them, and writes nothing", async (t) => {
  const { dir, cli } = await setup(t);
  const out = path.join(dir, 'dataset');
  mkdirSync(out);
  const toml = '# for my other LoRA\n[general]\ncaption_extension = ".caption"\n';
  const report = '{"notes": "mine"}\n';
  writeFileSync(path.join(out, 'dataset_config.toml'), toml);
  writeFileSync(path.join(out, 'bucket_report.json'), report);

  const refused = await cli('export', '1girl', '--out', out);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /these 2 files were not written by celforge/);
  assert.match(refused.stderr, /^ {2}dataset_config\.toml$/m);
  assert.match(refused.stderr, /^ {2}bucket_report\.json$/m);
  assert.match(refused.stderr, /Nothing was written\. Move them out of .* or export to another folder with --out\./);
  assert.equal(readFileSync(path.join(out, 'dataset_config.toml'), 'utf8'), toml);
  assert.equal(readFileSync(path.join(out, 'bucket_report.json'), 'utf8'), report);
  assert.deepEqual(readdirSync(out).sort(), ['bucket_report.json', 'dataset_config.toml']);

  // A caption the person corrected in an export celforge made is kept the same way.
  const other = path.join(dir, 'other');
  assert.equal((await cli('export', '1girl', '--out', other)).code, 0);
  const caption = readdirSync(path.join(other, 'images')).find((name) => name.endsWith('.txt'))!;
  writeFileSync(path.join(other, 'images', caption), 'mychar, my own words\n');
  const again = await cli('export', '1girl', '--out', other);
  assert.equal(again.code, 1);
  assert.match(again.stderr, new RegExp(`^ {2}images/${caption.replace('.', '\\.')}$`, 'm'));
  assert.equal(readFileSync(path.join(other, 'images', caption), 'utf8'), 'mychar, my own words\n');
});

test('with train.script fine_tune.py, export writes the fine-tuning form: metadata_file, no caption_extension', async (t) => {
  const { dir, cli } = await setup(t, { train: { sdScripts: '.', script: 'fine_tune.py', maxTrainSteps: 100 } });
  const out = path.join(dir, 'dataset');
  const result = await cli('export', '1girl', '--out', out);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /fine-tuning form: captions in meta_cap\.json/);
  const toml = parseSimpleToml(readFileSync(path.join(out, 'dataset_config.toml'), 'utf8')) as any;
  assert.equal(toml.general.caption_extension, undefined);
  assert.equal(toml.datasets[0].subsets[0].metadata_file, path.join(out, 'meta_cap.json'));
  const metadata = JSON.parse(readFileSync(path.join(out, 'meta_cap.json'), 'utf8'));
  assert.equal(Object.keys(metadata).length, 3);
  for (const [key, entry] of Object.entries(metadata) as [string, { caption: string; image_size: number[] }][]) {
    assert.ok(existsSync(key), key);
    assert.ok(entry.caption.startsWith('mychar, '));
    assert.equal(entry.image_size.length, 2);
  }
});

test('with export.layout per-character, export writes a subset per character and prints each one\'s repeats and share of steps', async (t) => {
  const dir = tempDir(t);
  const configFile = writeConfig(dir, {
    export: { triggerWords: ['mychar'], keepTokens: 1, resolution: 512, minBucketReso: 256, maxBucketReso: 1024, layout: 'per-character', balance: { band: [0.9, 1.1], sceneryShare: 0.3 } },
  });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  const drop = path.join(dir, 'drop');
  mkdirSync(drop);
  const cast = [...Array.from({ length: 4 }, () => 'character:saber, 1girl'), 'character:rin, 1girl', 'sky, no humans'];
  for (const [index, tags] of cast.entries()) {
    await sharp({ create: { width: 96 + index, height: 54, channels: 3, background: '#446688' } }).png().toFile(path.join(drop, `${index}.png`));
    writeFileSync(path.join(drop, `${index}.txt`), tags);
  }
  await cli('import', drop);
  const out = path.join(dir, 'dataset');
  const result = await cli('export', '', '--out', out);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^ {2}subset images\/characters_1\/rin: 1 images x 4 repeats, keep_tokens 2$/m);
  assert.match(result.stdout, /^ {2}subset images\/characters_1\/saber: 4 images x 1 repeats, keep_tokens 2$/m);
  assert.match(result.stdout, /^ {2}character saber: 4 images, 4 steps, 44\.4% of steps, 1\.00 of the mean$/m);
  assert.match(result.stdout, /^ {2}scenery: 1 images, 11\.1% of steps$/m);
  assert.equal(result.stderr, '');
  const toml = parseSimpleToml(readFileSync(path.join(out, 'dataset_config.toml'), 'utf8')) as any;
  assert.deepEqual(toml.datasets[0].subsets.map((s: any) => [path.relative(out, s.image_dir), s.num_repeats, s.keep_tokens]), [
    [path.join('images', 'scenery'), 1, 1], [path.join('images', 'characters_1', 'rin'), 4, 2], [path.join('images', 'characters_1', 'saber'), 1, 2],
  ]);
  const caption = readdirSync(path.join(out, 'images', 'characters_1', 'rin')).find((name) => name.endsWith('.txt'))!;
  assert.equal(readFileSync(path.join(out, 'images', 'characters_1', 'rin', caption), 'utf8'), 'mychar, rin, 1girl\n');

  // A band whole repeats cannot meet is exported all the same, and said on stderr.
  writeConfig(dir, {
    export: { triggerWords: ['mychar'], keepTokens: 1, resolution: 512, minBucketReso: 256, maxBucketReso: 1024, layout: 'per-character', balance: { band: [0.9, 1.1], sceneryShare: 0.3, maxRepeats: 2 } },
  });
  const unmet = await cli('export', '', '--out', out);
  assert.equal(unmet.code, 0, unmet.stderr);
  assert.match(unmet.stderr, /^celforge: balance not met: rin \(0\.667 of the mean\), saber \(1\.333 of the mean\): outside the band \[0\.9, 1\.1\]/m);
  assert.match(unmet.stdout, /character rin: 1 images, 2 steps, .* \(outside the band\)$/m);
});
