/**
 * Bad input is refused with a message naming the file and the problem, and
 * loses nothing: zero-byte, truncated and garbage rips; names full of
 * spaces, quotes, unicode and shell metacharacters (which must never reach a
 * shell); odd sizes and frame rates; a corrupt or wrong-shaped model; a
 * damaged catalog.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { binaries, countDecodedFrames, makeClip } from '../fixtures/clips.ts';
import { makeFacesClip } from '../fixtures/faces-clip.ts';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { frameMapOf, readJobs, runCli, tempDir, writeConfig } from '../helpers.ts';

const run = promisify(execFile);

function setup(t: Parameters<typeof tempDir>[0], extra: Record<string, unknown> = {}) {
  const dir = tempDir(t);
  const configFile = writeConfig(dir, { library: './library', disk: { reserve: 0 }, notify: { desktop: false }, ...extra });
  return { dir, library: path.join(dir, 'library'), cli: (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir }) };
}

test('zero-byte, truncated and garbage rips fail with the file named; each file is left as it was', async (t) => {
  const { dir, cli } = setup(t);
  const clip = readFileSync(await makeClip({ width: 320, height: 180, seconds: 2 }));
  const cases = {
    'empty.m2ts': Buffer.alloc(0),
    'truncated.m2ts': clip.subarray(0, Math.floor(clip.length * 0.4)),
    'garbage.m2ts': Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 251)),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    const file = path.join(dir, name);
    writeFileSync(file, bytes);
    const result = await cli('process', file);
    assert.equal(result.code, 1, `${name}: ${result.stdout}`);
    assert.match(result.stdout + result.stderr, new RegExp(`${name.replace('.', '\\.')}.*(error|failed|truncated|no video|invalid|ffprobe)`, 'i'), name);
    assert.ok(readFileSync(file).equals(bytes), `${name} was changed`);
  }
});

test('names with spaces, quotes, unicode and shell metacharacters are processed and never reach a shell', async (t) => {
  const { dir, cli, library } = setup(t);
  const folder = path.join(dir, `Série's "Best" [BD] ☆`);
  mkdirSync(folder);
  const video = path.join(folder, 'Ep $(touch PWNED) `touch PWNED2`; rm -rf x && 第03話 | echo.m2ts');
  copyFileSync(await makeClip({ width: 320, height: 180, seconds: 1, variant: 7 }), video);
  const result = await cli('process', video);
  assert.equal(result.code, 0, result.stderr);
  const job = readJobs(library)[0]!;
  assert.equal(job.source, video);
  assert.equal(frameMapOf(job).length, await countDecodedFrames(video));
  const everything = readdirSync(dir, { recursive: true }).map(String);
  assert.ok(!everything.some((name) => ['PWNED', 'PWNED2'].includes(path.basename(name))), 'a command in the name was run');
  assert.ok(!existsSync(path.join(process.cwd(), 'PWNED')));
});

test('odd frame sizes and frame rates: every frame recorded', async (t) => {
  const { dir, cli, library } = setup(t);
  for (const [size, rate] of [['318x178', '25'], ['642x362', '60000/1001']] as const) {
    const file = path.join(dir, `odd ${size.replace('x', 'by')} ${rate.replace('/', 'over')}.m2ts`);
    await run(binaries.ffmpeg, ['-v', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${rate}:duration=1`, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-f', 'mpegts', '-mpegts_m2ts_mode', '1', file]);
    const result = await cli('process', file);
    assert.equal(result.code, 0, result.stderr);
    const job = readJobs(library).find((candidate) => candidate.source === file)!;
    assert.equal(frameMapOf(job).length, await countDecodedFrames(file), `${size} at ${rate}`);
    assert.equal(`${job.probe!.width}x${job.probe!.height}`, size);
  }
});

test('a corrupt model fails its stage naming the file, keeping the frames; a wrong-shaped one says what does not match; fixed, the job finishes', async (t) => {
  const clip = await makeFacesClip();
  const dir0 = tempDir(t);
  const models = writeModelFolder(dir0, { taggers: [{ id: 'tagger-a', blueSky: 1 }], cascade: true });
  const { cli, library } = setup(t, { models: { dir: models.dir, manifest: models.manifest }, faces: { detector: 'cascade' }, tags: { taggers: ['tagger-a'] } });
  const modelFile = path.join(models.dir, 'tagger-a', 'model.onnx');
  const good = readFileSync(modelFile);
  writeFileSync(modelFile, 'this is not an ONNX model');
  const broken = await cli('process', clip.file);
  assert.equal(broken.code, 1);
  let job = readJobs(library)[0]!;
  assert.deepEqual([job.stage, job.state], ['tags', 'failed']);
  assert.match(job.error!.message, /tagger-a\/model\.onnx: ONNX Runtime cannot load this model .*celforge models fetch/);
  assert.equal(job.extract!.kept, 3, 'the frames are kept');

  writeFileSync(modelFile, good);
  const csv = path.join(models.dir, 'tagger-a', 'selected_tags.csv');
  const labels = readFileSync(csv, 'utf8');
  writeFileSync(csv, labels.split('\n').slice(0, 4).join('\n'));
  assert.equal((await cli('process', clip.file)).code, 1);
  job = readJobs(library)[0]!;
  assert.match(job.error!.message, /tagger tagger-a: the model gives 9 scores but selected_tags\.csv has 3 tags/);

  writeFileSync(csv, labels);
  const fixed = await cli('process', clip.file);
  assert.equal(fixed.code, 0, fixed.stderr + fixed.stdout);
  assert.equal(readJobs(library)[0]!.tags!.framesDone, 3);
});

test('a damaged catalog is named and left as it is, never silently replaced', async (t) => {
  const { dir, cli, library } = setup(t);
  mkdirSync(library);
  const file = path.join(library, 'catalog.sqlite');
  const damage = Buffer.concat([Buffer.from('SQLite format 3\0'), Buffer.alloc(4096, 0x5a)]);
  writeFileSync(file, damage);
  const search = await cli('search', '1girl');
  assert.equal(search.code, 1);
  assert.match(search.stderr, /catalog\.sqlite: the catalog cannot be opened .*left as it is/);
  const start = await cli('process', await makeClip({ width: 320, height: 180, seconds: 1, variant: 8 }));
  assert.equal(start.code, 1);
  assert.ok(readFileSync(file).equals(damage), 'the damaged file is untouched');
  assert.ok(existsSync(dir));
});
