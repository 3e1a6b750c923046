/**
 * A person's tags through the real CLI and the review page's HTTP API: tags
 * that search could not find again or Kohya would split are refused (named)
 * wherever they come in; an edit rewrites the caption beside each edited
 * frame; importing a file that is not a picture leaves nothing in imported/.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

async function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const configFile = writeConfig(dir, { inbox: './inbox', library: './library', disk: { reserve: 0 }, notify: { desktop: false } });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  return { dir, configFile, cli, library: path.join(dir, 'library') };
}

async function png(file: string, colour: string) {
  mkdirSync(path.dirname(file), { recursive: true });
  await sharp({ create: { width: 32, height: 24, channels: 3, background: colour } }).png().toFile(file);
}

const filesUnder = (dir: string) => (existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => entry.name) : []);

test('tags that could never be searched or that Kohya would split are refused from the CLI and skipped (named) from sidecars', async (t) => {
  const { dir, cli } = await setup(t);
  const drop = path.join(dir, 'drop');
  await png(path.join(drop, 'a.png'), '#204060');
  writeFileSync(path.join(drop, 'a.png.txt'), 'good_tag\nsmile, open mouth\n-_-\nseries:*\nepisode:3\n');
  const imported = await cli('import', drop);
  assert.equal(imported.code, 1);
  assert.match(imported.stdout, /1 images: 1 new, 0 already known \(tags merged\), 2 tags read/);
  assert.match(imported.stderr, /a\.png\.txt: tag "smile, open mouth" skipped: it contains a comma/);
  assert.match(imported.stderr, /a\.png\.txt: tag "-_-" skipped: it starts with "-"/);
  assert.match(imported.stderr, /a\.png\.txt: tag "series:\*" skipped: it ends in ":\*"/);
  const tagsOf = async (query: string) => (JSON.parse((await cli('search', query, '--json')).stdout) as { tags: string[] }).tags;
  assert.deepEqual(await tagsOf('good_tag'), ['good_tag', 'episode:03']);
  assert.deepEqual(await tagsOf('episode:3'), ['good_tag', 'episode:03'], 'the help\'s episode:3 finds episode:03');

  for (const [add, reason] of [['-solo', /"-solo" starts with "-"/], ['character:*', /"character:\*" ends in ":\*"/], ['"quoted"', /contains a double quote/]] as const) {
    const refused = await cli('tag', 'good_tag', '--add', add);
    assert.equal(refused.code, 1, add);
    assert.match(refused.stderr, reason);
    assert.match(refused.stderr, /^celforge: celforge tag --add: .*Nothing was changed/);
  }
  assert.deepEqual(await tagsOf('good_tag'), ['good_tag', 'episode:03'], 'nothing was changed');
});

test('importing a file that is not a picture names it and leaves no link in imported/', async (t) => {
  const { dir, cli, library } = await setup(t);
  const drop = path.join(dir, 'drop');
  mkdirSync(drop);
  writeFileSync(path.join(drop, 'notes.png'), 'this is text, not a PNG\n');
  await png(path.join(drop, 'real.png'), '#102030');
  const result = await cli('import', drop);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /notes\.png: not a readable image \(.+\); nothing was imported from it/);
  assert.match(result.stdout, /1 images: 1 new/);
  assert.equal(filesUnder(path.join(library, 'imported')).length, 1, 'only the real picture is stored');
});

test("a person's tag edits (CLI, review page) rewrite the caption beside each frame, in the tags stage's form", async (t) => {
  const { dir, cli, configFile, library } = await setup(t);
  // A frame as the pipeline leaves it: the picture, its catalog entry and the caption the tags stage wrote
  // (the tagger's tags by rank, underscores as spaces, rating bare).
  const frames = ['Show/03/frames/scene-0001/Show_03_000000.png', 'Show/03/frames/scene-0001/Show_03_000004.png'];
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  const hashes = frames.map((_, n) => String(n + 1).padStart(64, 'a'));
  for (const [n, frame] of frames.entries()) {
    await png(path.join(library, frame), n ? '#405060' : '#604050');
    catalog.addImage({ hash: hashes[n]!, path: frame, size: 1, width: 32, height: 24, series: 'Show', episode: '03', scene: 1, frame: n * 4, source: '/in/Show 03.m2ts' },
      ['series:show', 'episode:03', 'scene:0001'], 'pipeline');
    catalog.setSourceTags(hashes[n]!, 'tagger:ensemble', ['solo', '1girl', 'long_hair', 'smile', 'rating:general']);
    writeFileSync(path.join(library, frame.replace(/\.png$/, '.txt')), '1girl, solo, long hair, smile, general\n');
  }
  catalog.close();
  const caption = (n: number) => readFileSync(path.join(library, frames[n]!.replace(/\.png$/, '.txt')), 'utf8');

  const edit = await cli('tag', 'series:show scene:1', '--add', 'red_eyes', '--remove', 'smile');
  assert.equal(edit.code, 0, edit.stderr);
  for (const n of [0, 1]) assert.equal(caption(n), '1girl, solo, long hair, general, red eyes\n');

  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  const url = await waitFor('the review page', () => /review page: (http:\/\/\S+\/)/.exec(daemon.output())?.[1], 60_000);
  const token = /name="celforge-token" content="([0-9a-f]+)"/.exec(await (await fetch(url)).text())![1]!;
  const post = (pathname: string, body: unknown) =>
    fetch(new URL(pathname, url), { method: 'POST', headers: { 'X-Celforge-Token': token, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

  const one = await post(`api/images/${hashes[0]}/tags`, { add: ['open_mouth'] });
  assert.equal(one.status, 200, await one.text());
  assert.equal(caption(0), '1girl, solo, long hair, general, red eyes, open mouth\n');
  assert.equal(caption(1), '1girl, solo, long hair, general, red eyes\n');

  const bulk = await post('api/tags', { hashes, remove: ['1girl'], add: ['looking_at_viewer'] });
  assert.equal(bulk.status, 200, await bulk.text());
  assert.equal(caption(0), 'solo, long hair, general, red eyes, open mouth, looking at viewer\n');
  assert.equal(caption(1), 'solo, long hair, general, red eyes, looking at viewer\n');

  const refused = await post(`api/images/${hashes[1]}/tags`, { add: ['smile, open mouth'] });
  assert.equal(refused.status, 400);
  assert.match(((await refused.json()) as { error: string }).error, /"smile, open mouth" contains a comma/);
  assert.equal(caption(1), 'solo, long hair, general, red eyes, looking at viewer\n', 'unchanged');
});
