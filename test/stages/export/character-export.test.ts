/**
 * The per-character layout on disk: a skewed cast exported, then read back
 * the way Kohya reads it (each subset's image_dir globbed, captions split on
 * commas, keep_tokens taken from the front), checked against the band, the
 * scenery cap and bucket_report.json; core-tag pruning; adversarial names;
 * exporting again; characters from the catalog's effective tags.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import sharp from 'sharp';
import { Catalog } from '../../../src/adapters/catalog-store.ts';
import { validateConfig } from '../../../src/config/load.ts';
import { CelforgeError } from '../../../src/errors.ts';
import { exportQuery } from '../../../src/stages/export/export-query.ts';
import { exportKohyaDataset, type ExportImage, type ExportOptions } from '../../../src/stages/export/kohya-export.ts';
import { parseSimpleToml } from '../../../src/stages/export/kohya-toml.ts';
import { exportOptions } from '../../fixtures/export-options.ts';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'celforge-characters-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let made = 0;
/** A tiny PNG of its own bytes: a 16:9 frame, or a square crop where the tags say so. */
async function makeImage(dir: string, tags: string[]): Promise<ExportImage> {
  made += 1;
  const [width, height] = tags.some((tag) => tag.startsWith('crop:')) ? [16, 16] : [32, 18];
  const pixels = Buffer.alloc(width * height * 3, 128);
  pixels.writeUInt32BE(made, 0);
  const file = path.join(dir, `${made}.png`);
  await sharp(pixels, { raw: { width, height, channels: 3 } }).png().toFile(file);
  return { hash: createHash('sha256').update(readFileSync(file)).digest('hex'), path: file, width, height, tags };
}

async function cast(dir: string, groups: [count: number, tags: (i: number) => string[]][]): Promise<ExportImage[]> {
  const images: ExportImage[] = [];
  for (const [count, tags] of groups) for (let i = 0; i < count; i++) images.push(await makeImage(dir, tags(i)));
  return images;
}

const options = (out: string, changes: Partial<ExportOptions> = {}): ExportOptions =>
  exportOptions(out, { layout: 'per-character', balance: { band: [0.9, 1.1], sceneryShare: 0.1, maxRepeats: 100 }, ...changes });

const IMAGE = /\.(png|jpe?g|webp|bmp)$/i;
/** Python's `[t.strip() for t in caption.strip().split(",")]`: Kohya's tokens (train_util.py process_caption). */
const tokens = (caption: string) => caption.trim().split(',').map((token) => token.trim());

/** What Kohya would train on: every subset's images (glob of image_dir), with the caption beside each. */
function readBack(datasetConfig: string) {
  const config = parseSimpleToml(readFileSync(datasetConfig, 'utf8')) as any;
  const subsets = (config.datasets[0].subsets as any[]).map((subset) => {
    const files = readdirSync(subset.image_dir).filter((name) => IMAGE.test(name));
    const captions = files.map((name) => readFileSync(path.join(subset.image_dir, name.replace(IMAGE, '.txt')), 'utf8'));
    return { ...subset, files, captions };
  });
  return { config, subsets };
}

test('a skewed cast: a subset per set of characters, repeats that keep each character in the band and scenery under its cap', async (t) => {
  const dir = tempDir(t);
  const images = await cast(dir, [
    [300, (i) => ['character:alice', '1girl', 'blonde_hair', ...(i % 3 === 0 ? ['crop:face'] : []), ...(i % 2 ? ['smile'] : [])]],
    [40, () => ['character:bob', '1boy', 'cap']],
    [5, () => ['character:chen_(touhou)', '1girl', 'cat_ears']],
    [2, () => ['character:alice', 'character:bob', '1girl', '1boy']],
    [100, (i) => ['no_humans', i % 2 ? 'sky' : 'building']],
  ]);
  const out = path.join(tempDir(t), 'dataset');
  const result = await exportKohyaDataset(images, options(out));
  assert.equal(result.images, 447);
  assert.deepEqual(result.foreign, []);

  assert.deepEqual(readdirSync(path.join(out, 'images')).sort(), ['characters_1', 'characters_2', 'scenery']);
  assert.deepEqual(readdirSync(path.join(out, 'images', 'characters_1')).sort(), ['alice', 'bob', 'chen_(touhou)']);
  assert.deepEqual(readdirSync(path.join(out, 'images', 'characters_2')), ['alice+bob']);

  const { config, subsets } = readBack(result.datasetConfig);
  assert.equal(config.general.keep_tokens, 1);
  assert.equal(subsets.length, 5);
  const steps = new Map<string, number>();
  let total = 0;
  let scenery = 0;
  const byFolder = new Map<string, (typeof subsets)[number]>();
  for (const subset of subsets) {
    assert.ok(subset.image_dir.startsWith(path.join(out, 'images') + path.sep), subset.image_dir);
    byFolder.set(path.relative(out, subset.image_dir).split(path.sep).join('/'), subset);
    assert.ok(Number.isSafeInteger(subset.num_repeats) && subset.num_repeats >= 2 && subset.num_repeats % 2 === 0, `num_repeats ${subset.num_repeats}: the balance's times numRepeats 2`);
    // The names are the tokens keep_tokens holds after the trigger word, the same in every caption of the subset.
    const names = tokens(subset.captions[0]!).slice(1, subset.keep_tokens);
    for (const caption of subset.captions) {
      assert.deepEqual(tokens(caption).slice(0, subset.keep_tokens), ['celchar', ...names], caption);
      assert.equal(tokens(caption).filter((token) => names.includes(token)).length, names.length, `${caption}: each name once`);
    }
    assert.equal(subset.class_tokens, ['celchar', ...names].join(', '));
    total += subset.files.length * subset.num_repeats;
    if (names.length === 0) scenery += subset.files.length * subset.num_repeats;
    for (const name of names) steps.set(name, (steps.get(name) ?? 0) + subset.files.length * subset.num_repeats);
  }
  assert.deepEqual(new Map([...byFolder].map(([folder, s]) => [folder, [s.files.length, s.keep_tokens]])), new Map([
    ['images/characters_1/alice', [300, 2]], ['images/characters_1/bob', [40, 2]], ['images/characters_1/chen_(touhou)', [5, 2]],
    ['images/characters_2/alice+bob', [2, 3]], ['images/scenery', [100, 1]],
  ]));
  assert.deepEqual([...steps.keys()].sort(), ['alice', 'bob', 'chen (touhou)']);
  const mean = [...steps.values()].reduce((a, b) => a + b, 0) / steps.size;
  for (const [name, s] of steps) assert.ok(s >= 0.9 * mean && s <= 1.1 * mean, `${name}: ${s} steps, mean ${mean}`);
  assert.ok(scenery / total <= 0.1, `scenery ${scenery} of ${total}`);
  assert.equal(byFolder.get('images/characters_1/alice')!.num_repeats, 2, 'the most frequent character is not repeated beyond numRepeats');

  // bucket_report.json says the same as the files.
  const report = JSON.parse(readFileSync(path.join(out, 'bucket_report.json'), 'utf8'));
  assert.deepEqual(report.characters, result.characters);
  assert.equal(report.buckets.reduce((sum: number, b: { count: number }) => sum + b.count, 0), 447);
  const balance = report.characters;
  assert.equal(balance.met, true);
  assert.deepEqual(balance.problems, []);
  assert.equal(balance.totalSteps, total);
  assert.equal(balance.meanCharacterSteps, mean);
  const tokenOf = (name: string) => name.replaceAll('_', ' ');
  assert.deepEqual(balance.characters.map((c: any) => c.name), ['alice', 'bob', 'chen_(touhou)']);
  for (const character of balance.characters) {
    assert.equal(character.steps, steps.get(tokenOf(character.name)));
    assert.equal(character.share, character.steps / total);
    assert.ok(Math.abs(character.ofMean - character.steps / mean) < 1e-12);
    assert.equal(character.withinBand, true);
    assert.deepEqual(character.coreTags, []);
  }
  assert.deepEqual(balance.characters.map((c: any) => c.images), [302, 42, 5]);
  assert.deepEqual(balance.characters.map((c: any) => c.repeats), ['alice', 'bob', 'chen_(touhou)'].map((name) => byFolder.get(`images/characters_1/${name}`)!.num_repeats));
  for (const subset of balance.subsets) {
    const onDisk = byFolder.get(subset.folder)!;
    assert.deepEqual([subset.images, subset.numRepeats, subset.keepTokens, subset.steps], [onDisk.files.length, onDisk.num_repeats, onDisk.keep_tokens, onDisk.files.length * onDisk.num_repeats]);
  }
  assert.deepEqual(balance.scenery, { images: 100, steps: scenery, share: scenery / total, withinCap: true });
  assert.deepEqual(balance.band, [0.9, 1.1]);
});

test('core tags: the tags on at least the share of a character\'s images alone leave the captions of every image with it, and only those', async (t) => {
  const dir = tempDir(t);
  // alice alone: 10 images. blonde_hair on 10 (core), red_bow on exactly 5 (core at 0.5), smile on 4 (not),
  // scarf on 4 (not: 0.4 of her images alone, though with the 2 shared ones it would be 6 of 12).
  // bob alone: 4 images. cap on 4 (core), jacket on 1 (not).
  const images = await cast(dir, [
    [10, (i) => ['character:alice', 'blonde_hair', ...(i < 5 ? ['red_bow'] : []), ...(i < 4 ? ['smile', 'scarf'] : []), 'rating:general']],
    [4, (i) => ['character:bob', 'cap', ...(i < 1 ? ['jacket'] : [])]],
    [2, () => ['character:alice', 'character:bob', 'blonde_hair', 'red_bow', 'cap', 'scarf', 'jacket']],
    [3, () => ['no_humans', 'red_bow', 'cap']],
  ]);
  const out = tempDir(t);
  const result = await exportKohyaDataset(images, options(out, { pruneCoreTags: 0.5, balance: { band: [0.5, 2], sceneryShare: 1, maxRepeats: 10 } }));
  assert.deepEqual(result.characters!.characters.map((c) => [c.name, c.coreTags]), [['alice', ['blonde_hair', 'red_bow']], ['bob', ['cap']]]);
  const { subsets } = readBack(result.datasetConfig);
  const captions = (folder: string) => subsets.find((s) => s.image_dir === path.join(out, 'images', ...folder.split('/')))!.captions.map((c: string) => c.trim()).sort();
  assert.deepEqual([...new Set(captions('characters_1/alice'))], ['celchar, alice, general', 'celchar, alice, smile, scarf, general']);
  assert.equal(captions('characters_1/alice').filter((c: string) => c.includes('smile')).length, 4);
  assert.deepEqual([...new Set(captions('characters_1/bob'))], ['celchar, bob', 'celchar, bob, jacket']);
  // An image with both loses the core tags of each.
  assert.deepEqual([...new Set(captions('characters_2/alice+bob'))], ['celchar, alice, bob, scarf, jacket']);
  // Scenery has no character to absorb them.
  assert.deepEqual([...new Set(captions('scenery'))], ['celchar, no humans, red bow, cap']);

  // A share of 0.51 no longer takes red_bow (5 of 10).
  const stricter = await exportKohyaDataset(images, options(tempDir(t), { pruneCoreTags: 0.51, balance: { band: [0.5, 2], sceneryShare: 1, maxRepeats: 10 } }));
  assert.deepEqual(stricter.characters!.characters.map((c) => c.coreTags), [['blonde_hair'], ['cap']]);
});

test('adversarial names give safe, distinct folders inside the export, with the names in the captions as they are', async (t) => {
  const dir = tempDir(t);
  const names = ['a/b', 'a_b', 'a\\b', '../etc', '..', 'k.o.', 'con', 'nul.txt', 'ツンデレ', 'é', 'e\u0301', 'x'.repeat(300), 'y'.repeat(300), '-rf', 'a:b*?'];
  const images = await cast(dir, names.map((name) => [1, () => [`character:${name}`, 'solo']] as [number, (i: number) => string[]]));
  images.push(await makeImage(dir, ['character:a/b', 'character:x'.concat('x'.repeat(299)), 'character:ツンデレ', 'duo']));
  const out = tempDir(t);
  const result = await exportKohyaDataset(images, options(out, { balance: { band: [0.5, 2], sceneryShare: 1, maxRepeats: 5 } }));

  const solo = readdirSync(path.join(out, 'images', 'characters_1'));
  assert.equal(solo.length, names.length);
  assert.equal(new Set(solo.map((name) => name.toLowerCase())).size, names.length, `distinct ignoring case: ${solo}`);
  for (const folder of solo) {
    assert.match(folder, /^[\p{L}\p{M}\p{N}_()+-]+$/u, folder);
    assert.ok(Buffer.byteLength(folder) <= 64, folder);
    assert.doesNotMatch(folder, /^(con|prn|aux|nul|com\d|lpt\d)$/i);
  }
  assert.ok(solo.includes('a_b') && solo.includes('ツンデレ') && solo.includes('é') && solo.includes('k_o_-' + createHash('sha256').update('k.o.').digest('hex').slice(0, 8)), String(solo));
  const groups = readdirSync(path.join(out, 'images', 'characters_3'));
  assert.equal(groups.length, 1);
  assert.ok(Buffer.byteLength(groups[0]!) <= 100, groups[0]);

  const { subsets } = readBack(result.datasetConfig);
  assert.equal(new Set(subsets.map((s) => s.image_dir)).size, subsets.length, 'no two subsets share an image_dir (Kohya would drop the second)');
  for (const subset of subsets) {
    assert.equal(path.dirname(path.dirname(subset.image_dir)), path.join(out, 'images'));
    assert.equal(subset.files.length, 1);
  }
  const captionOf = (name: string) => subsets.flatMap((s) => s.captions).find((c: string) => tokens(c)[1] === name && tokens(c)[2] === 'solo');
  for (const name of ['a/b', '../etc', 'k.o.', 'a:b*?', 'e\u0301']) assert.ok(captionOf(name), `${name} starts its caption`);

  // A comma would split a name into two tokens: refused, nothing written.
  const refusedOut = path.join(tempDir(t), 'refused');
  await assert.rejects(exportKohyaDataset([await makeImage(dir, ['character:smith,_john'])], options(refusedOut)),
    (error: unknown) => error instanceof CelforgeError && error.code === 'CONFIG_INVALID' && /character:smith,_john: a character name with a comma/.test(error.message));
  assert.equal(existsSync(refusedOut), false);
});

test('fineTuneMetadata with the per-character layout: one meta_cap.json for --in_json, naming every image in its subset folder', async (t) => {
  const dir = tempDir(t);
  const images = await cast(dir, [[2, () => ['character:alice', 'smile']], [1, () => ['character:alice', 'character:bob']], [1, () => ['sky']]]);
  const out = tempDir(t);
  const result = await exportKohyaDataset(images, options(out, { fineTuneMetadata: true, balance: { band: [0.5, 2], sceneryShare: 1, maxRepeats: 5 } }));
  assert.equal(result.metadataFile, path.join(out, 'meta_cap.json'));
  const metadata = JSON.parse(readFileSync(result.metadataFile!, 'utf8')) as Record<string, { caption: string }>;
  assert.equal(Object.keys(metadata).length, 4);
  for (const [file, entry] of Object.entries(metadata)) {
    assert.ok(existsSync(file), file);
    assert.equal(readFileSync(file.replace(/\.png$/, '.txt'), 'utf8'), `${entry.caption}\n`);
  }
  assert.deepEqual(Object.keys(metadata).map((file) => path.relative(out, path.dirname(file)).split(path.sep).join('/')).sort(),
    ['images/characters_1/alice', 'images/characters_1/alice', 'images/characters_2/alice+bob', 'images/scenery']);
});

test('exporting again: the flat layout gives way to subsets, emptied folders go, a person\'s files stay or stop the export', async (t) => {
  const dir = tempDir(t);
  const images = await cast(dir, [[3, () => ['character:alice']], [2, () => ['character:bob']], [2, () => ['sky']]]);
  const out = tempDir(t);
  const flat = await exportKohyaDataset(images, options(out, { layout: 'flat' }));
  assert.equal(flat.characters, null);
  assert.equal(readdirSync(path.join(out, 'images')).length, 14);

  const split = await exportKohyaDataset(images, options(out, { balance: { band: [0.5, 2], sceneryShare: 1, maxRepeats: 5 } }));
  assert.equal(split.removed, 7);
  assert.deepEqual(readdirSync(path.join(out, 'images')).sort(), ['characters_1', 'scenery']);

  // bob renamed robert: his old folder goes with his files; a person's picture in a subset folder stays, listed as foreign.
  writeFileSync(path.join(out, 'images', 'scenery', 'mine.png'), 'a person\'s');
  const renamed = images.map((image) => ({ ...image, tags: image.tags.map((tag) => (tag === 'character:bob' ? 'character:robert' : tag)) }));
  const again = await exportKohyaDataset(renamed, options(out, { balance: { band: [0.5, 2], sceneryShare: 1, maxRepeats: 5 } }));
  assert.deepEqual(readdirSync(path.join(out, 'images', 'characters_1')).sort(), ['alice', 'robert']);
  assert.deepEqual(again.foreign, ['scenery/mine.png']);
  assert.equal(readFileSync(path.join(out, 'images', 'scenery', 'mine.png'), 'utf8'), 'a person\'s');

  // A person's file where a subset folder goes, or their caption in one, stops the export before it writes anything.
  rmSync(path.join(out, 'images', 'characters_1', 'robert'), { recursive: true });
  writeFileSync(path.join(out, 'images', 'characters_1', 'robert'), 'notes');
  const caption = readdirSync(path.join(out, 'images', 'characters_1', 'alice')).find((name) => name.endsWith('.txt'))!;
  writeFileSync(path.join(out, 'images', 'characters_1', 'alice', caption), 'celchar, alice, my words\n');
  await assert.rejects(exportKohyaDataset(renamed, options(out, { balance: { band: [0.5, 2], sceneryShare: 1, maxRepeats: 5 } })), (error: unknown) =>
    error instanceof CelforgeError && error.code === 'EXPORT_CONFLICT'
    && /^ {2}images\/characters_1\/robert \(not a folder\)$/m.test(error.message) && new RegExp(`^ {2}images/characters_1/alice/${caption.replace('.', '\\.')}$`, 'm').test(error.message));
  assert.equal(readFileSync(path.join(out, 'images', 'characters_1', 'alice', caption), 'utf8'), 'celchar, alice, my words\n');
});

test('from the catalog: character tags of any source, a person\'s corrections, crops and frames alike; the query can leave crops out', async (t) => {
  const library = tempDir(t);
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  const add = async (name: string, tags: string[], source: 'tagger:wd' | 'pipeline' | 'person') => {
    const image = await makeImage(library, tags);
    catalog.addImage({ hash: image.hash, path: path.basename(image.path), size: 1, width: image.width, height: image.height, series: 's', episode: '01', scene: 1, frame: made, source: null }, tags, source);
    return image.hash;
  };
  await add('frame-a', ['character:alice', '1girl'], 'tagger:wd');
  const crop = await add('crop-a', ['character:alice', 'crop:face', '1girl'], 'pipeline');
  const wrong = await add('frame-b', ['character:alice', '1boy'], 'tagger:wd');
  await add('frame-scenery', ['sky'], 'tagger:wd');
  // A person says the third frame shows bob, not alice; the tagger's word stays recorded but loses.
  catalog.personEditImage(wrong, ['character:bob'], ['character:alice']);
  const config = validateConfig({
    library,
    export: { triggerWords: ['celchar'], keepTokens: 1, resolution: 512, minBucketReso: 256, maxBucketReso: 1024, layout: 'per-character', balance: { band: [0.5, 2], sceneryShare: 0.5 } },
  }, 'test', library);
  assert.equal(config.export.pruneCoreTags, null);
  assert.equal(config.export.balance.maxRepeats, 100);
  assert.throws(() => validateConfig({ library, export: { balance: { band: [1.1, 1.5] } } }, 'test', library), /export\.balance\.band/);
  assert.throws(() => validateConfig({ library, export: { layout: 'per-scene' } }, 'test', library), /export\.layout/);

  const out = tempDir(t);
  const all = await exportQuery(catalog, config, '', out);
  assert.deepEqual(all.characters!.characters.map((c) => [c.name, c.images]), [['alice', 2], ['bob', 1]]);
  assert.ok(existsSync(path.join(out, 'images', 'characters_1', 'alice', `${crop}.png`)));
  assert.equal(readFileSync(path.join(out, 'images', 'characters_1', 'bob', `${wrong}.txt`), 'utf8'), 'celchar, bob, 1boy\n');

  const framesOnly = await exportQuery(catalog, config, '-crop:face', out);
  assert.deepEqual(framesOnly.characters!.characters.map((c) => [c.name, c.images]), [['alice', 1], ['bob', 1]]);
  assert.equal(existsSync(path.join(out, 'images', 'characters_1', 'alice', `${crop}.png`)), false);
});
