/** Hydrus sync through the CLI against the fake Hydrus server: push, corrections pulled back as a person's edits, a closed Hydrus. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import sharp from 'sharp';
import { HydrusClient } from '../../src/adapters/hydrus-client.ts';
import { FakeHydrus } from '../fixtures/fake-hydrus.ts';
import { runCli, tempDir, writeConfig } from '../helpers.ts';

test('push sends images and tags; pull brings back what a person changed in Hydrus, and it survives re-import', async (t) => {
  const { fake, cli, drop } = await libraryWithHydrus(t);
  for (const [name, colour] of [['a', '#aa0000'], ['b', '#00aa00']] as const) {
    await sharp({ create: { width: 32, height: 32, channels: 3, background: colour } }).png().toFile(path.join(drop, `${name}.png`));
    writeFileSync(path.join(drop, `${name}.txt`), '1girl, solo, long hair');
  }
  await cli('import', drop);
  const hashes = (await cli('search', '1girl', '--json')).stdout.trim().split('\n').map((line) => JSON.parse(line).hash as string);

  const push = await cli('hydrus', 'push', '1girl');
  assert.equal(push.code, 0, push.stderr);
  assert.match(push.stdout, /push: 2 images, 6 tags added/);
  assert.equal(fake.files.size, 2);
  assert.deepEqual(fake.tagsOn('my tags', hashes[0]!).current.sort(), ['1girl', 'long_hair', 'solo']);
  assert.match((await cli('hydrus', 'push', '1girl')).stdout, /push: 2 images, 0 tags added/, 'a second push sends nothing again');

  // A person in Hydrus: "solo" is wrong on the first image, "red hair" is missing.
  const person = new HydrusClient({ url: fake.url, accessKey: fake.accessKey, tagService: 'my tags' });
  await person.addTags([hashes[0]!], ['red hair'], ['solo']);
  const pull = await cli('hydrus', 'pull', '1girl');
  assert.equal(pull.code, 0, pull.stderr);
  assert.match(pull.stdout, /pull: 2 images, 1 tags added, 1 removed/);
  const tagsOf = async (hash: string) => (await cli('search', '1girl', '--json')).stdout.trim().split('\n').map((l) => JSON.parse(l)).find((i) => i.hash === hash).tags;
  assert.deepEqual(await tagsOf(hashes[0]!), ['1girl', 'long_hair', 'red_hair']);

  await cli('import', drop); // the sidecar still says "solo": the person's correction holds
  assert.deepEqual(await tagsOf(hashes[0]!), ['1girl', 'long_hair', 'red_hair']);
  assert.deepEqual(await tagsOf(hashes[1]!), ['1girl', 'long_hair', 'solo']);
});

test('a closed Hydrus gives a clear message without the key, and loses nothing', async (t) => {
  const fake = await FakeHydrus.start();
  const dir = tempDir(t);
  const configFile = writeConfig(dir, { hydrus: { url: fake.url, accessKey: fake.accessKey } });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  const drop = path.join(dir, 'drop');
  mkdirSync(drop);
  await sharp({ create: { width: 16, height: 16, channels: 3, background: '#123456' } }).png().toFile(path.join(drop, 'a.png'));
  writeFileSync(path.join(drop, 'a.txt'), 'sky');
  await cli('import', drop);
  await fake.stop();
  const push = await cli('hydrus', 'push', 'sky');
  assert.equal(push.code, 1);
  assert.match(push.stderr, /Hydrus does not answer \(is its client open\?\)\. Nothing was lost/);
  assert.doesNotMatch(push.stderr + push.stdout, new RegExp(fake.accessKey));
  assert.equal((await cli('search', 'sky')).stdout.trim().split('\n').length, 1);
  const verbose = await cli('--verbose', 'hydrus', 'push', 'sky');
  assert.doesNotMatch(verbose.stderr + verbose.stdout, new RegExp(fake.accessKey), 'not even with --verbose');
  const logs = path.join(dir, 'library', 'logs');
  const logText = existsSync(logs) ? readdirSync(logs).map((name) => readFileSync(path.join(logs, name), 'utf8')).join('') : '';
  assert.doesNotMatch(logText, new RegExp(fake.accessKey), 'nor in the log files');
});

test('emoticon tags survive a push and a pull: Hydrus\'s "::d" comes back as ":d", never as a second tag in the caption', async (t) => {
  const { fake, dir, cli, drop } = await libraryWithHydrus(t);
  await sharp({ create: { width: 32, height: 32, channels: 3, background: '#336699' } }).png().toFile(path.join(drop, 'a.png'));
  writeFileSync(path.join(drop, 'a.txt'), '1girl, :d, :o, :3');
  await cli('import', drop);
  const [hash] = (await cli('search', '1girl', '--json')).stdout.trim().split('\n').map((line) => JSON.parse(line).hash as string);

  assert.match((await cli('hydrus', 'push', '1girl')).stdout, /push: 1 images, 4 tags added/);
  assert.deepEqual(fake.tagsOn('my tags', hash!).current, ['::3', '::d', '::o', '1girl'], 'Hydrus keeps them with a doubled colon');
  assert.match((await cli('hydrus', 'push', '1girl')).stdout, /push: 1 images, 0 tags added/, 'a second push finds them there');

  const person = new HydrusClient({ url: fake.url, accessKey: fake.accessKey, tagService: 'my tags' });
  await person.addTags([hash!], [], [':o']); // a person in Hydrus: the mouth is not open
  const pull = await cli('hydrus', 'pull', '1girl');
  assert.equal(pull.code, 0, pull.stderr);
  assert.match(pull.stdout, /pull: 1 images, 0 tags added, 1 removed/);
  const tags = JSON.parse((await cli('search', '1girl', '--json')).stdout.trim()).tags as string[];
  assert.deepEqual([...tags].sort(), ['1girl', ':3', ':d']);

  const out = path.join(dir, 'out');
  const exported = await cli('export', '1girl', '--out', out);
  assert.equal(exported.code, 0, exported.stderr);
  const captions = readdirSync(out, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.txt'));
  assert.equal(captions.length, 1, String(captions));
  const caption = readFileSync(path.join(out, captions[0]!), 'utf8').split(',').map((token) => token.trim());
  assert.ok(caption.includes(':d') && caption.includes(':3'), caption.join(', '));
  assert.ok(!caption.some((token) => token.startsWith('::') || token === ':o'), caption.join(', '));
});

/** A library whose config names a running fake Hydrus, with an empty folder to import from. */
async function libraryWithHydrus(t: TestContext) {
  const fake = await FakeHydrus.start();
  t.after(() => fake.stop());
  const dir = tempDir(t);
  const configFile = writeConfig(dir, { disk: { reserve: 0 }, hydrus: { url: fake.url, accessKey: fake.accessKey, tagService: 'my tags' } });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  const drop = path.join(dir, 'drop');
  mkdirSync(drop);
  return { fake, dir, cli, drop };
}
