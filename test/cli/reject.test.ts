/**
 * `reject` and `unreject` through the real CLI: an empty query and a query
 * taking more than catalog.rejectConfirmShare are refused (or asked about on
 * a terminal), nothing nests in trash/trash, pipeline frames are recorded as
 * rejected in the frame map (frames --json, the review page's scenes) and
 * unreject puts everything back where it was.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { makeClip } from '../fixtures/clips.ts';
import { projectRoot, readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

async function setup(t: Parameters<typeof tempDir>[0], extra: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  const configFile = writeConfig(dir, { inbox: './inbox', library: './library', disk: { reserve: 0 }, notify: { desktop: false }, ...extra });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  return { dir, configFile, cli, library: path.join(dir, 'library') };
}

/** Five imported pictures: four tagged `keep`, one `one`. */
async function importFive(dir: string, cli: (...args: string[]) => ReturnType<typeof runCli>) {
  const drop = path.join(dir, 'drop');
  mkdirSync(drop, { recursive: true });
  for (let n = 0; n < 5; n += 1) {
    await sharp({ create: { width: 32, height: 24, channels: 3, background: `#${(n * 50).toString(16).padStart(2, '0')}4060` } }).png().toFile(path.join(drop, `p${n}.png`));
    writeFileSync(path.join(drop, `p${n}.txt`), n === 0 ? 'one' : 'keep');
  }
  const imported = await cli('import', drop);
  assert.equal(imported.code, 0, imported.stderr);
}

const pngsUnder = (dir: string) => (existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String).filter((name) => name.endsWith('.png')) : []);

test('reject refuses an empty query, and without --yes a query that takes more than catalog.rejectConfirmShare; nothing moves', async (t) => {
  const { dir, cli, library } = await setup(t);
  await importFive(dir, cli);

  const empty = await cli('reject', '  ');
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /the query is empty/);

  const negation = await cli('reject', '-one');
  assert.equal(negation.code, 2, negation.stderr);
  assert.match(negation.stderr, /"-one" takes 4 of the library's 5 images \(80%\), more than catalog\.rejectConfirmShare \(20%\)\. Nothing was moved: run it again with --yes/);
  assert.equal(pngsUnder(path.join(library, 'trash')).length, 0);
  assert.equal((await cli('search', 'keep')).stdout.trim().split('\n').length, 4);

  const small = await cli('reject', 'one');
  assert.equal(small.code, 0, small.stderr);
  assert.match(small.stdout, /^1 image moved to /);

  const confirmed = await cli('reject', '-one', '--yes');
  assert.equal(confirmed.code, 0, confirmed.stderr);
  assert.match(confirmed.stdout, /^4 images moved to /);
  assert.equal(pngsUnder(path.join(library, 'trash')).length, 5);
  assert.equal(pngsUnder(path.join(library, 'imported')).length, 0);

  const back = await cli('unreject', 'keep');
  assert.equal(back.code, 0, back.stderr);
  assert.match(back.stdout, /^4 images back in the dataset/);
  const found = (await cli('search', 'keep')).stdout.trim().split('\n');
  assert.equal(found.length, 4);
  for (const file of found) assert.ok(file.startsWith(path.join(library, 'imported')) && existsSync(file), file);
  assert.equal(pngsUnder(path.join(library, 'trash')).length, 1, 'only the one still rejected');
});

test('on a terminal, reject asks first, and only "y" moves anything', { skip: process.platform !== 'linux' || spawnSync('script', ['--version']).status !== 0 }, async (t) => {
  const { dir, cli, configFile, library } = await setup(t);
  await importFive(dir, cli);
  const inTerminal = (answer: string) => new Promise<{ code: number | null; output: string }>((resolve) => {
    const quoted = [process.execPath, path.join(projectRoot, 'bin', 'celforge.js'), '--config', configFile, 'reject', 'keep'].map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(' ');
    // util-linux script(1) runs the command on a pseudo-terminal: its stdin is a TTY.
    const child = spawn('script', ['-qec', quoted, '/dev/null'], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.stdin.end(`${answer}\n`);
    child.on('close', (code) => resolve({ code, output }));
  });

  const declined = await inTerminal('n');
  assert.equal(declined.code, 2, declined.output);
  assert.match(declined.output, /takes 4 of the library's 5 images .*\? \[y\/N\]/s);
  assert.match(declined.output, /nothing was moved/);
  assert.equal(pngsUnder(path.join(library, 'trash')).length, 0);

  const accepted = await inTerminal('y');
  assert.equal(accepted.code, 0, accepted.output);
  assert.match(accepted.output, /4 images moved to /);
  assert.equal(pngsUnder(path.join(library, 'trash')).length, 4);
});

test('rejected pipeline frames are "rejected" in frames --json and the review page, never nest in trash/trash, and unreject restores the map', async (t) => {
  const { dir, cli, configFile, library } = await setup(t);
  const videos = [path.join(dir, 'Show', 'Show 07.m2ts'), path.join(dir, 'Show', 'Show 08.m2ts')];
  mkdirSync(path.dirname(videos[0]!));
  copyFileSync(await makeClip({ width: 320, height: 180, seconds: 1 }), videos[0]!);
  copyFileSync(await makeClip({ width: 320, height: 180, seconds: 1, variant: 1 }), videos[1]!);
  const processed = await cli('process', ...videos);
  assert.equal(processed.code, 0, processed.stderr);
  const frames = async (video: string) => {
    const listed = await cli('frames', video, '--json');
    assert.equal(listed.code, 0, listed.stderr);
    return listed.stdout.trim().split('\n').map((line) => JSON.parse(line) as { frame: number; status: string; file: string | null });
  };
  const before07 = await frames(videos[0]!);
  const before08 = await frames(videos[1]!);
  const kept07 = before07.filter((record) => record.status === 'kept');
  assert.ok(kept07.length > 0);

  // "episode:7" is the catalog's "episode:07"; half the library needs --yes.
  assert.equal((await cli('reject', 'series:show episode:7')).code, 2);
  const rejected = await cli('reject', 'series:show episode:7', '--yes');
  assert.equal(rejected.code, 0, rejected.stderr);
  assert.match(rejected.stdout, new RegExp(`^${kept07.length} images? moved`));

  const after07 = await frames(videos[0]!);
  for (const record of after07) {
    const was = before07[record.frame]!;
    if (was.status !== 'kept') {
      assert.deepEqual(record, was);
      continue;
    }
    assert.equal(record.status, 'rejected');
    assert.equal(record.file, path.join(library, 'trash', path.relative(library, was.file!)));
    assert.ok(existsSync(record.file!), 'the frame map names where the file is');
    assert.ok(!existsSync(was.file!));
  }
  assert.deepEqual(await frames(videos[1]!), before08, 'the other episode is untouched');

  // The review page's dedup view reads the same map; rejecting an already rejected image again moves nothing.
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  const url = await waitFor('the review page', () => /review page: (http:\/\/\S+\/)/.exec(daemon.output())?.[1], 60_000);
  const token = /name="celforge-token" content="([0-9a-f]+)"/.exec(await (await fetch(url)).text())![1]!;
  const job = readJobs(library).find((candidate) => candidate.source === videos[0])!;
  const scenes = await (await fetch(new URL(`api/jobs/${job.id}/scenes`, url))).json() as { scenes: { frames: { frame: number; status: string; picture: string }[] }[] };
  const shown = scenes.scenes.flatMap((scene) => scene.frames);
  assert.deepEqual(shown.filter((frame) => frame.status === 'rejected').map((frame) => frame.frame), kept07.map((record) => record.frame));
  assert.equal(shown.filter((frame) => frame.status === 'kept').length, 0);
  assert.equal((await fetch(new URL(shown.find((frame) => frame.status === 'rejected')!.picture.slice(1), url))).status, 200, 'its picture is served from the trash');
  const hash = (JSON.parse((await cli('search', 'series:show episode:08', '--json')).stdout.split('\n')[0]!) as { hash: string }).hash;
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const response = await fetch(new URL(`api/images/${hash}/reject`, url), { method: 'POST', headers: { 'X-Celforge-Token': token, 'Content-Type': 'application/json' }, body: '{}' });
    assert.equal(response.status, 200, await response.text());
  }
  await stopDaemon(daemon);
  assert.ok(!existsSync(path.join(library, 'trash', 'trash')), 'rejecting twice does not nest the trash');
  assert.equal((await frames(videos[1]!)).filter((record) => record.status === 'rejected').length, 1);

  const back = await cli('unreject', 'episode:7');
  assert.equal(back.code, 0, back.stderr);
  assert.match(back.stdout, new RegExp(`^${kept07.length} images? back in the dataset`));
  assert.deepEqual(await frames(videos[0]!), before07);
  for (const record of kept07) assert.ok(existsSync(record.file!), record.file!);
  assert.equal((await cli('search', 'episode:07', '--json')).stdout.trim().split('\n').length, kept07.length);

  const restore = await cli('restore', videos[1]!, String((await frames(videos[1]!)).find((record) => record.status === 'rejected')!.frame));
  assert.equal(restore.code, 1);
  assert.match(restore.stderr, /was rejected, not set aside as duplicates; `celforge unreject/);
});
