/** The catalog through the real CLI: import with both sidecar forms, search, bulk edits, reject, and pipeline frames entering it. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { makeClip } from '../fixtures/clips.ts';
import { runCli, tempDir, writeConfig } from '../helpers.ts';

async function png(file: string, colour: string, width = 64, height = 48) {
  mkdirSync(path.dirname(file), { recursive: true });
  await sharp({ create: { width, height, channels: 3, background: colour } }).png().toFile(file);
}

async function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const configFile = writeConfig(dir, { disk: { reserve: 0 } });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  return { dir, cli, library: path.join(dir, 'library') };
}

test('import reads Kohya and Hydrus sidecars; importing again only merges tags; search finds them', async (t) => {
  const { dir, cli, library } = await setup(t);
  const drop = path.join(dir, 'drop');
  await png(path.join(drop, 'a.png'), '#ff0000');
  writeFileSync(path.join(drop, 'a.txt'), 'mychar, 1girl, long hair, solo\n');
  await png(path.join(drop, 'sub', 'b.png'), '#00ff00');
  writeFileSync(path.join(drop, 'sub', 'b.png.txt'), 'series:ubw\n1boy\nsky\n');
  await png(path.join(drop, 'c.png'), '#0000ff');

  const first = await cli('import', drop);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /3 images: 3 new, 0 already known \(tags merged\), 7 tags read/);
  const found = async (query: string) => (await cli('search', query)).stdout.trim().split('\n').filter(Boolean).map((file) => path.basename(file));
  assert.equal((await found('1girl long_hair')).length, 1);
  assert.equal((await found('series:ubw 1boy')).length, 1);
  assert.equal((await found('-1girl -1boy')).length, 1);

  writeFileSync(path.join(drop, 'a.txt'), 'smile\n');
  const again = await cli('import', drop);
  assert.match(again.stdout, /3 images: 0 new, 3 already known/);
  const json = (await cli('search', 'smile', '--json')).stdout.trim().split('\n').map((line) => JSON.parse(line));
  assert.equal(json.length, 1);
  assert.deepEqual(json[0].tags, ['1girl', 'long_hair', 'mychar', 'smile', 'solo']);
  assert.ok(json[0].path.startsWith(path.join(library, 'imported')));
  assert.ok(existsSync(json[0].path));
  assert.ok(existsSync(path.join(drop, 'a.png')), 'the source was moved');
});

test('a bulk edit strips subject tags from a batch, and reject moves files to the trash', async (t) => {
  const { dir, cli, library } = await setup(t);
  const drop = path.join(dir, 'drop');
  for (let n = 0; n < 6; n += 1) {
    await png(path.join(drop, `f${n}.png`), `#${(n * 40).toString(16).padStart(2, '0')}8080`);
    writeFileSync(path.join(drop, `f${n}.txt`), n < 4 ? '1girl, solo, scenery' : '1girl, solo, indoors');
  }
  await cli('import', drop);
  const edit = await cli('tag', 'scenery', '--remove', '1girl,solo', '--add', 'no_humans');
  assert.equal(edit.code, 0, edit.stderr);
  assert.match(edit.stdout, /^4 images: added no_humans; removed 1girl, solo/);
  assert.equal((await cli('search', 'scenery 1girl')).stdout.trim(), '');
  assert.equal((await cli('search', 'no_humans')).stdout.trim().split('\n').length, 4);

  const reject = await cli('reject', 'indoors', '--yes'); // 2 of 6 images: more than catalog.rejectConfirmShare
  assert.match(reject.stdout, /2 images moved to .*trash/);
  assert.equal((await cli('search', 'indoors')).stdout.trim(), '');
  assert.equal(readdirSync(path.join(library, 'trash'), { recursive: true }).map(String).filter((name) => name.endsWith('.png')).length, 2);

  const nothing = await cli('tag', 'scenery');
  assert.equal(nothing.code, 1);
  assert.match(nothing.stderr, /nothing to do/);
});

test('a malformed sidecar is named and skipped; the other images are imported', async (t) => {
  const { dir, cli } = await setup(t);
  const drop = path.join(dir, 'drop');
  await png(path.join(drop, 'good.png'), '#123456');
  writeFileSync(path.join(drop, 'good.txt'), 'ok_tag');
  await png(path.join(drop, 'bad.png'), '#654321');
  writeFileSync(path.join(drop, 'bad.txt'), Buffer.from([0xff, 0xfe, 0x00, 0x41, 0xc3]));
  const result = await cli('import', drop);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /bad\.txt: not a text sidecar/);
  assert.match(result.stdout, /1 images: 1 new/);
});

test('frames kept by the pipeline enter the catalog with series, episode and scene tags', async (t) => {
  const { dir, cli } = await setup(t);
  const clip = await makeClip({ width: 320, height: 180, seconds: 1 });
  const video = path.join(dir, 'Show', 'Show 07.m2ts');
  mkdirSync(path.dirname(video));
  const { copyFileSync } = await import('node:fs');
  copyFileSync(clip, video);
  const processed = await cli('process', video);
  assert.equal(processed.code, 0, processed.stderr);
  const kept = Number(/(\d+) kept/.exec(processed.stdout)![1]);
  const found = (await cli('search', 'series:show episode:07 scene:0001', '--json')).stdout.trim().split('\n').map((line) => JSON.parse(line));
  assert.equal(found.length, kept);
  assert.deepEqual(found[0].tags, ['episode:07', 'scene:0001', 'series:show']);
  assert.equal(found[0].frame, 0);
  // The hash recorded when the frame was written is the file's.
  const { createHash } = await import('node:crypto');
  const { readFileSync } = await import('node:fs');
  for (const image of found) assert.equal(image.hash, createHash('sha256').update(readFileSync(image.path)).digest('hex'));
});
