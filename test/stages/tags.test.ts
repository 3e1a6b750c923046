/**
 * Tagging on real ONNX Runtime sessions with small generated models whose
 * answers are known: each tag's probability is a linear function of the
 * picture's mean blue, green and red after WD14 preprocessing.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import { openOnnxModel } from '../../src/adapters/onnx-session.ts';
import { CelforgeError } from '../../src/errors.ts';
import { averageTaggers, mcutThreshold, selectTags } from '../../src/inference/ensemble.ts';
import { loadWd14Tagger, parseSelectedTags, runWd14 } from '../../src/inference/wd14.ts';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { captionFor } from '../../src/catalog/captions.ts';
import { parseTag } from '../../src/catalog/tags.ts';
import { wd14Tensor as wd14Input } from '../../src/adapters/image-tensors.ts';
import { writeTaggerModel, type TaggerSpec } from '../fixtures/onnx-models.ts';
import { tempDir } from '../helpers.ts';

const silent = pino({ level: 'silent' });
// category ids as in selected_tags.csv: 0 general, 3 copyright, 4 character, 9 rating
const LABELS = [
  { name: 'red_thing', category: 0, weights: { blue: 0, green: 0, red: 1, bias: 0 } },
  { name: 'blue_thing', category: 0, weights: { blue: 1, green: 0, red: 0, bias: 0 } },
  { name: 'not_red', category: 0, weights: { blue: 0, green: 0, red: -1, bias: 1 } },
  { name: 'saber_(fate)', category: 4, weights: { blue: 0, green: 0, red: 0.9, bias: 0 } },
  { name: 'fate_(series)', category: 3, weights: { blue: 0, green: 0, red: 1, bias: 0 } },
  { name: 'general', category: 9, weights: { blue: 0, green: 0, red: 0.6, bias: 0 } },
  { name: 'sensitive', category: 9, weights: { blue: 0, green: 0, red: 0.3, bias: 0 } },
  { name: 'watermark', category: 0, weights: { blue: 0, green: 0, red: 1, bias: 0 } },
];

function writeTagger(dir: string, id: string, size: number, scale = 1) {
  const spec: TaggerSpec = { size, tags: LABELS.map((label) => ({ ...label.weights, red: label.weights.red * scale })) };
  const modelFile = path.join(dir, `${id}.onnx`);
  const tagsFile = path.join(dir, `${id}.csv`);
  writeTaggerModel(modelFile, spec);
  writeFileSync(tagsFile, `tag_id,name,category,count\n${LABELS.map((l, i) => `${i},${l.name},${l.category},100`).join('\n')}\n`);
  return { modelFile, tagsFile };
}

async function redPicture(dir: string): Promise<string> {
  const file = path.join(dir, 'red.png');
  // 64x48 pure red: padded to 64x64 with white, mean red 255, mean blue (16/64)*255, mean green the same.
  await sharp({ create: { width: 64, height: 48, channels: 3, background: '#ff0000' } }).png().toFile(file);
  return file;
}

test('WD14 preprocessing: white padding to a square, BGR order, 0-255, read through a real session', async (t) => {
  const dir = tempDir(t);
  const { modelFile, tagsFile } = writeTagger(dir, 'tagger-a', 32);
  const tagger = await loadWd14Tagger('tagger-a', modelFile, tagsFile, ['cpu'], silent);
  assert.equal(tagger.size, 32, 'the input size is read from the model');
  const [probabilities] = await runWd14(tagger, [await wd14Input(await redPicture(dir), tagger.size)], 4);
  const byName = Object.fromEntries(tagger.labels.map((label, i) => [label.name, probabilities![i]!]));
  assert.ok(Math.abs(byName.red_thing! - 1) < 0.01, `red_thing ${byName.red_thing}`);
  assert.ok(Math.abs(byName.blue_thing! - 0.25) < 0.01, `blue_thing ${byName.blue_thing}: white padding is 16 of 64 rows, and blue must be channel 0`);
  assert.ok(byName.not_red! < 0.01);
});

test('batching gives the same probabilities as one picture at a time', async (t) => {
  const dir = tempDir(t);
  const { modelFile, tagsFile } = writeTagger(dir, 'tagger-a', 16);
  const tagger = await loadWd14Tagger('tagger-a', modelFile, tagsFile, ['cpu'], silent);
  const inputs = await Promise.all(['#ff0000', '#00ff00', '#0000ff', '#808080', '#ffffff'].map(async (colour, i) => {
    const file = path.join(dir, `${i}.png`);
    await sharp({ create: { width: 20 + i, height: 30, channels: 3, background: colour } }).png().toFile(file);
    return wd14Input(file, 16);
  }));
  const batched = await runWd14(tagger, inputs, 4);
  const single = await runWd14(tagger, inputs, 1);
  assert.equal(batched.length, 5);
  batched.forEach((probabilities, i) => assert.deepEqual(Array.from(probabilities), Array.from(single[i]!)));
});

test('ensemble: averaged over taggers; thresholds per category; one rating; copyright and blacklist removed', async (t) => {
  const dir = tempDir(t);
  const a = writeTagger(dir, 'tagger-a', 16, 1);
  const b = writeTagger(dir, 'tagger-b', 16, 0.8);
  const picture = await redPicture(dir);
  const outputs = [];
  for (const [id, files] of [['tagger-a', a], ['tagger-b', b]] as const) {
    const tagger = await loadWd14Tagger(id, files.modelFile, files.tagsFile, ['cpu'], silent);
    const [probabilities] = await runWd14(tagger, [await wd14Input(picture, 16)], 1);
    outputs.push({ labels: tagger.labels, probabilities: probabilities! });
  }
  const averaged = averageTaggers(outputs);
  // red weight 1 and 0.8 at mean red 1.0 average to 0.9; saber: 0.9 and 0.72 average to 0.81, under the 0.85 character threshold.
  assert.ok(Math.abs(averaged.get('red_thing')!.probability - 0.9) < 0.01);
  const tags = selectTags(averaged, { general: 0.35, character: 0.85, mcut: false, blacklist: ['watermark'] }).map((t) => t.tag);
  assert.deepEqual(tags.sort(), ['rating:general', 'red_thing']);
  const lowerCharacter = selectTags(averaged, { general: 0.35, character: 0.8, mcut: false, blacklist: [] }).map((t) => t.tag);
  assert.ok(lowerCharacter.includes('character:saber_(fate)'));
  assert.ok(lowerCharacter.includes('watermark'));
  assert.ok(!lowerCharacter.some((tag) => tag.includes('fate_(series)')), 'copyright tags are removed');
  assert.equal(lowerCharacter.filter((tag) => tag.startsWith('rating:')).length, 1);
});

test('MCut picks the middle of the largest gap', () => {
  assert.equal(mcutThreshold([0.9, 0.85, 0.2, 0.1]), (0.85 + 0.2) / 2);
  assert.equal(mcutThreshold([0.5]), 0);
});

test('a provider that cannot load falls back to CPU with one log line; a broken or missing model is named', async (t) => {
  const dir = tempDir(t);
  const { modelFile } = writeTagger(dir, 'tagger-a', 16);
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
  const model = await openOnnxModel(modelFile, ['cuda', 'cpu'], log);
  if (model.providers.includes('cuda')) return; // a machine where CUDA loads: nothing to fall back from
  assert.deepEqual(model.providers, ['cpu']);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /execution providers cuda, cpu could not load .*; using CPU/);

  const broken = path.join(dir, 'broken.onnx');
  writeFileSync(broken, 'not a model');
  await assert.rejects(openOnnxModel(broken, ['cpu'], log), (error: unknown) => {
    assert.ok(error instanceof CelforgeError);
    assert.match(error.message, /broken\.onnx: ONNX Runtime cannot load this model/);
    return true;
  });
  await assert.rejects(openOnnxModel(path.join(dir, 'absent.onnx'), ['cpu'], log), /absent\.onnx: model file missing; run "celforge models fetch"/);
});

test('selected_tags.csv is read as CSV: quoted names with commas and doubled quotes, CRLF, a BOM', async (t) => {
  const dir = tempDir(t);
  const names = ['hello,_world', 'say_"hi"', '>:(', '2b_(nier:automata)_(cosplay)', 'general'];
  const modelFile = path.join(dir, 'tagger.onnx');
  writeTaggerModel(modelFile, { size: 16, tags: names.map((_, i) => ({ blue: 0, green: 0, red: 0, bias: i / 10 })) });
  const tagsFile = path.join(dir, 'selected_tags.csv');
  // As Python's csv module writes a name with a comma or a quote (QUOTE_MINIMAL).
  writeFileSync(tagsFile, '\ufefftag_id,name,category,count\r\n1,"hello,_world",0,5\r\n2,"say_""hi""",0,3\r\n3,>:(,0,7\r\n4,2b_(nier:automata)_(cosplay),0,2\r\n"5",general,9,100\r\n');
  const tagger = await loadWd14Tagger('t', modelFile, tagsFile, ['cpu'], silent);
  assert.deepEqual(tagger.labels, [
    { name: 'hello,_world', category: 'general' },
    { name: 'say_"hi"', category: 'general' },
    { name: '>:(', category: 'general' },
    { name: '2b_(nier:automata)_(cosplay)', category: 'general' },
    { name: 'general', category: 'rating' },
  ]);
  const [probabilities] = await runWd14(tagger, [new Float32Array(16 * 16 * 3)], 1);
  assert.equal(probabilities!.length, names.length, 'one score per label');
});

test('a selected_tags.csv that is not CSV, or a row short of fields, is refused naming the file and where', () => {
  assert.throws(() => parseSelectedTags('tag_id,name,category,count\n1,"open,0,5\n', '/m/selected_tags.csv'), (error: unknown) => {
    assert.ok(error instanceof CelforgeError);
    assert.equal(error.code, 'CONFIG_INVALID');
    assert.match(error.message, /\/m\/selected_tags\.csv: not a readable selected_tags\.csv \(line 2: a quoted field is never closed\)/);
    return true;
  });
  assert.throws(() => parseSelectedTags('tag_id,name,category,count\n1,"a"b,0,5\n', 'x.csv'), /x\.csv: .*line 2: a quoted field is followed by "b"/);
  assert.throws(() => parseSelectedTags('tag_id,name,category,count\n1,solo,0,5\n2,smile\n', 'x.csv'), /x\.csv: row 3 has 2 fields where the header has 4/);
});

test('general tags with an inner colon are tags, not namespaces, and reach the caption', (t) => {
  for (const tag of ['>:(', '>:)', '2b_(nier:automata)_(cosplay)', 're:zero_kara_hajimeru_isekai_seikatsu', ':d']) {
    assert.deepEqual(parseTag(tag), { namespace: '', name: tag }, tag);
  }
  for (const [text, namespace, name] of [['series:fate', 'series', 'fate'], ['character:2b_(nier:automata)', 'character', '2b_(nier:automata)'], ['rating:general', 'rating', 'general'], ['creator:ufotable', 'creator', 'ufotable']]) {
    assert.deepEqual(parseTag(text!), { namespace, name }, text);
  }
  // What the tags stage does with a picture's tags: selected, into the catalog (real SQLite), out as a caption.
  const labels = [
    { name: '>:(', category: 'general' as const }, { name: '>:)', category: 'general' as const },
    { name: '2b_(nier:automata)_(cosplay)', category: 'general' as const }, { name: '2b_(nier:automata)', category: 'character' as const },
    { name: 'general', category: 'rating' as const },
  ];
  const selected = selectTags(averageTaggers([{ labels, probabilities: new Float32Array([0.9, 0.8, 0.7, 0.95, 0.9]) }]), { general: 0.35, character: 0.85, mcut: false, blacklist: [] });
  const catalog = Catalog.open(path.join(tempDir(t), 'catalog.sqlite'));
  t.after(() => catalog.close());
  const hash = 'a'.repeat(64);
  catalog.addImage({ hash, path: 'x.png', size: 1, width: 1, height: 1, series: 'show', episode: '01', scene: 1, frame: 0, source: null }, ['series:show', 'episode:01'], 'pipeline');
  catalog.setSourceTags(hash, 'tagger:ensemble', selected.map((tag) => tag.tag));
  assert.equal(catalog.count('>:('), 1, 'searchable as the tag it is');
  assert.equal(catalog.count('2b_(nier:automata)_(cosplay)'), 1);
  const caption = captionFor(selected.map((tag) => tag.tag).filter((tag) => catalog.tagsOf(hash).includes(tag)), { triggerWords: [], keepTokens: 0, underscoresToSpaces: true });
  assert.equal(caption, '2b (nier:automata), >:(, general, >:), 2b (nier:automata) (cosplay)');
});
