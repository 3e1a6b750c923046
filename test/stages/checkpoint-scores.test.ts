/**
 * Checkpoint review scores: prompts read into tags by A1111's attention
 * syntax, renders scored against their prompts, seeds aggregated, regressions
 * flagged against a margin; and render tagging on real ONNX Runtime sessions
 * with the generated taggers whose answers are known (test/fixtures/model-folder.ts).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { validateConfig } from '../../src/config/load.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import {
  aggregateScores, promptTags, regressions, scoreRender, tagRenders, type RenderScore, type TemplateScore,
} from '../../src/stages/checkpoint-review/scores.ts';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { tempDir } from '../helpers.ts';

const OPTIONS = validateConfig({}, 'test', '/tmp').tags;

test('prompt tags: emphasis, weights, de-emphasis, escapes, extra networks, BREAK and empty parts', () => {
  assert.deepEqual(promptTags('1girl, (long hair:1.2), ((blue sky)), [watermark], Solo'), ['1girl', 'long_hair', 'blue_sky', 'watermark', 'solo']);
  assert.deepEqual(promptTags('<lora:mychar_v2:0.8>1girl, <hypernet:foo:1> smile'), ['1girl', 'smile']);
  assert.deepEqual(promptTags('saber \\(fate\\), fate \\(series\\)'), ['saber_(fate)', 'fate_(series)'], 'escaped brackets are literal');
  assert.deepEqual(promptTags('1girl BREAK outdoors,, , BREAK\nsky'), ['1girl', 'outdoors', 'sky']);
  assert.deepEqual(promptTags('(red eyes:0.5), ( smile ), (((sky)))'), ['red_eyes', 'smile', 'sky']);
  assert.deepEqual(promptTags('^_^, 1girl, 1girl'), ['^_^', '1girl'], 'each tag once; kaomoji kept');
  assert.deepEqual(promptTags('looking at viewer:2'), ['looking_at_viewer:2'], 'a weight counts only inside brackets, as in A1111');
  assert.deepEqual(promptTags('breakfast, BREAKING, band'), ['breakfast', 'breaking', 'band'], 'BREAK and AND only as words of their own');
  assert.deepEqual(promptTags('1girl, solo AND 1boy'), ['1girl', 'solo', '1boy'], 'AND (composable prompts) separates like BREAK');
  assert.deepEqual(promptTags(''), []);
});

test('scoreRender: found share over taggable tags, vanished subjects with no_humans, composition drift', () => {
  const vocabulary = new Set(['1girl', 'solo', 'blue_sky', 'no_humans', 'portrait', 'full_body', 'upper_body', 'saber_(fate)']);
  const prompt = promptTags('masterpiece, 1girl, solo, blue sky, portrait, saber \\(fate\\)');
  const good = scoreRender(prompt, ['1girl', 'solo', 'blue_sky', 'portrait', 'character:saber_(fate)', 'rating:general'], OPTIONS, vocabulary);
  assert.deepEqual(good, { found: 1, vanishedSubjects: [], compositionDrift: [] }, 'masterpiece is no tagger tag; character: is matched by name');
  const lost = scoreRender(prompt, ['no_humans', 'blue_sky', 'full_body'], OPTIONS, vocabulary);
  assert.equal(lost.found, 1 / 5);
  assert.deepEqual(lost.vanishedSubjects, ['1girl', 'solo']);
  assert.deepEqual(lost.compositionDrift, ['full_body']);
  assert.deepEqual(scoreRender(prompt, ['blue_sky'], OPTIONS, vocabulary).vanishedSubjects, [], 'without no_humans a missing 1girl is only a lower share');
  assert.deepEqual(scoreRender(prompt, ['portrait', 'upper_body'], OPTIONS, vocabulary).compositionDrift, [], 'the prompted one found: no drift');
  assert.equal(scoreRender(prompt, [], OPTIONS).found, 0, 'without a vocabulary every prompt tag counts');
  assert.equal(scoreRender(['masterpiece'], [], OPTIONS, vocabulary).found, null);
});

function score(found: number | null, vanishedSubjects: string[] = [], compositionDrift: string[] = []): RenderScore {
  return { found, vanishedSubjects, compositionDrift };
}

function template(name: string, version: number, found: number | null, vanishedSubjects: string[] = [], compositionDrift: string[] = []): TemplateScore {
  return { template: name, version, seeds: 2, found, vanishedSubjects, compositionDrift };
}

test('aggregate over seeds: mean share, union of vanished and drifted tags', () => {
  const scores = aggregateScores([
    { template: 'a', version: 1, seed: 1, score: score(1) },
    { template: 'a', version: 1, seed: 2, score: score(0.5, ['1girl'], ['full_body']) },
    { template: 'a', version: 1, seed: 3, score: score(null, ['solo', '1girl']) },
    { template: 'b', version: 1, seed: 1, score: score(null) },
  ]);
  assert.deepEqual(scores, [
    { template: 'a', version: 1, seeds: 3, found: 0.75, vanishedSubjects: ['1girl', 'solo'], compositionDrift: ['full_body'] },
    { template: 'b', version: 1, seeds: 1, found: null, vanishedSubjects: [], compositionDrift: [] },
  ]);
});

test('regressions: a drop beyond the margin, newly vanished subjects and new drift are flagged; within the margin is not', () => {
  const previous = [template('drop', 1, 0.8), template('within', 1, 0.8), template('exact', 1, 0.8), template('lost', 1, 0.9), template('drift', 1, 0.9, [], ['upper_body']), template('old-loss', 1, 0.5, ['1girl'])];
  const current = [
    template('drop', 2, 0.65), template('within', 2, 0.75), template('exact', 2, 0.7), template('lost', 2, 0.9, ['1girl']),
    template('drift', 2, 0.9, [], ['upper_body', 'full_body']), template('old-loss', 2, 0.5, ['1girl']), template('new', 2, 0, ['1girl']),
  ];
  assert.deepEqual(regressions(previous, current, 0.1), [
    { template: 'drop', reasons: [{ kind: 'found', previous: 0.8, current: 0.65 }] },
    { template: 'lost', reasons: [{ kind: 'vanished', tags: ['1girl'] }] },
    { template: 'drift', reasons: [{ kind: 'drift', tags: ['full_body'] }] },
  ]);
  assert.equal(regressions(previous, current, 0.2).length, 2, 'a wider margin lets the 0.15 drop pass');
  assert.equal(validateConfig({}, 'test', '/tmp').review.scoreMargin, 0.1);
  assert.throws(() => validateConfig({ review: { scoreMargin: 2 } }, 'test', '/tmp'), /review\.scoreMargin/);
});

test('tagRenders: the configured ensemble on rendered pictures gives the generated models\' tags, ungated', async (t) => {
  const dir = tempDir(t);
  const models = writeModelFolder(dir, { taggers: [{ id: 'tagger-a', blueSky: 1 }, { id: 'tagger-b', blueSky: 0.5 }] });
  const config = validateConfig({ models, tags: { taggers: ['tagger-a', 'tagger-b'], blacklist: ['watermark'] } }, 'test', dir);
  const blue = path.join(dir, 'blue.png');
  const red = path.join(dir, 'red.png');
  await sharp({ create: { width: 64, height: 64, channels: 3, background: '#0000ff' } }).png().toFile(blue);
  await sharp({ create: { width: 64, height: 64, channels: 3, background: '#ff0000' } }).png().toFile(red);
  const images = createImageWorkers(1);
  t.after(() => images.close());
  const result = await tagRenders([blue, red], { config, images, models: new ModelCache(), log: pino({ level: 'silent' }) });
  // Each tag is bias + weights . mean colour, clipped to 0..1: blue_sky is 2*blue - 2*red times 1 and 0.5, averaged (1 on blue, 0 on red);
  // the copyright tag and the blacklisted watermark never come out; no face detector runs, so 1girl stays.
  const sorted = result.renders.map((render) => ({ file: render.file, tags: [...render.tags].sort() }));
  assert.deepEqual(sorted, [
    { file: blue, tags: ['1girl', '^_^', 'blue_sky', 'long_hair', 'rating:general', 'solo'] },
    { file: red, tags: ['1girl', '^_^', 'long_hair', 'rating:general', 'solo'] },
  ]);
  assert.ok(result.vocabulary.has('blue_sky') && !result.vocabulary.has('general') && !result.vocabulary.has('fate_(series)'));
  const prompt = promptTags('masterpiece, 1girl, (blue sky:1.2), <lora:v2:1>');
  assert.deepEqual(result.renders.map((render) => scoreRender(prompt, render.tags, config.tags, result.vocabulary).found), [1, 0.5]);
});

test('from prompt to flag: 1girl prompted and no_humans found on v2 is a regression; full_body instead of portrait is drift', () => {
  const prompt = promptTags('(masterpiece:1.2), 1girl, solo, portrait, <lora:mine:0.7>');
  const renders: Record<number, string[][]> = {
    1: [['1girl', 'solo', 'portrait'], ['1girl', 'solo', 'portrait', 'upper_body']],
    2: [['1girl', 'solo', 'full_body'], ['no_humans', 'scenery']],
  };
  const scores = aggregateScores(Object.entries(renders).flatMap(([version, seeds]) => seeds.map((tags, seed) => ({
    template: 'face', version: Number(version), seed, score: scoreRender(prompt, tags, OPTIONS),
  }))));
  const [v1, v2] = [scores.filter((entry) => entry.version === 1), scores.filter((entry) => entry.version === 2)];
  assert.equal(v1[0]!.found, 3 / 4, 'masterpiece counts without a vocabulary; the lora tag never does');
  assert.deepEqual(regressions(v1, v2, 0.1), [{
    template: 'face',
    reasons: [{ kind: 'found', previous: 3 / 4, current: (2 / 4 + 0) / 2 }, { kind: 'vanished', tags: ['1girl', 'solo'] }, { kind: 'drift', tags: ['full_body'] }],
  }]);
  assert.deepEqual(regressions(v2, v2, 0.1), [], 'the same scores again are no regression');
});
