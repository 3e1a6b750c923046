/**
 * SIGKILL at random points of every stage, then a restart: the job
 * completes and everything (frames, captions, faces, every tag with its
 * source) matches an uninterrupted run, each exactly once. The same for an
 * export and a person's bulk tag edit killed midway. `npm test` kills once
 * per stage; `npm run test:faults` (CELFORGE_FAULT_ROUNDS) many times more.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { makeFacesClip } from '../fixtures/faces-clip.ts';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { hashTree, projectRoot, readJobs, runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';
import { snapshotLibrary, type LibrarySnapshot } from './library-snapshot.ts';

const ROUNDS = Number(process.env.CELFORGE_FAULT_ROUNDS ?? 1);
const STAGES = ['extract', 'catalog', 'faces', 'crops', 'tags'] as const;
const clip = await makeFacesClip();

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const models = writeModelFolder(dir, { taggers: [{ id: 'tagger-a', blueSky: 1 }, { id: 'tagger-b', blueSky: 0.5 }], cascade: true });
  mkdirSync(path.join(dir, 'inbox', 'Stills'), { recursive: true });
  const configFile = writeConfig(dir, {
    inbox: './inbox', library: './library', disk: { reserve: 0 }, watch: { settleSeconds: 0.1 },
    models: { dir: models.dir, manifest: models.manifest }, faces: { detector: 'cascade' }, tags: { taggers: ['tagger-a', 'tagger-b'] },
    // One picture at a time: the faces and tags stages last long enough to be hit.
    inference: { batchSize: 1, workers: 1 }, notify: { desktop: false },
  });
  return { dir, configFile, library: path.join(dir, 'library'), cli: (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir }) };
}

let reference: LibrarySnapshot | undefined;
let referenceExport: ReturnType<typeof exportTree> | undefined;

/**
 * A dataset folder by file hash; dataset_config.toml names the folder, so its text is compared with the folder taken out,
 * and the export record holds the images' modification times (each library's own), so the files it records are compared.
 */
function exportTree(out: string) {
  const files = hashTree(out);
  files.delete('dataset_config.toml');
  files.delete('.celforge-export.json');
  const recorded = Object.keys(JSON.parse(readFileSync(path.join(out, '.celforge-export.json'), 'utf8')).files).sort();
  return { files, recorded, config: readFileSync(path.join(out, 'dataset_config.toml'), 'utf8').replaceAll(out, '<out>') };
}

test('reference: an uninterrupted run and export', async (t) => {
  const { dir, library, cli } = setup(t);
  copyFileSync(clip.file, path.join(dir, 'inbox', 'Stills', 'Stills 01.m2ts'));
  assert.equal((await cli('process', path.join(dir, 'inbox', 'Stills', 'Stills 01.m2ts'))).code, 0);
  reference = snapshotLibrary(library);
  const crops = Object.values(reference.catalog).filter((image) => image.tags.some((tag) => tag.startsWith('crop:'))).length;
  assert.equal(Object.keys(reference.catalog).length - crops, 3, 'three frames');
  assert.ok(crops > 0, 'and crops of their faces');
  assert.equal((await cli('export', 'series:*', '--out', path.join(dir, 'export'))).code, 0);
  referenceExport = exportTree(path.join(dir, 'export'));
});

for (const stage of STAGES) {
  for (let round = 1; round <= ROUNDS; round += 1) {
    test(`SIGKILL during ${stage} (round ${round}), restart: the same frames, faces, captions and tags as without it`, async (t) => {
      assert.ok(reference, 'the reference run must pass first');
      const { dir, configFile, library } = setup(t);
      copyFileSync(clip.file, path.join(dir, 'inbox', 'Stills', 'Stills 01.m2ts'));
      const first = startDaemon(configFile);
      t.after(() => stopDaemon(first));
      const hit = await waitFor(`the job to reach ${stage}`, () => {
        const job = readJobs(library)[0];
        if (!job) return false;
        if (job.state === 'ready-for-review') return 'after the end';
        return job.stage === stage && job.state === 'running' ? stage : false;
      }, 60_000, 5);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 150));
      first.child.kill('SIGKILL');
      await first.exited;
      const killedAt = readJobs(library)[0]!;
      t.diagnostic(`killed in ${killedAt.stage}/${killedAt.state} (seen: ${hit})`);

      const second = startDaemon(configFile);
      t.after(() => stopDaemon(second));
      await waitFor('the job to finish after the restart', () => readJobs(library)[0]?.state === 'ready-for-review', 120_000);
      await stopDaemon(second);
      assert.deepEqual(snapshotLibrary(library), reference);
    });
  }
}

test('an export killed midway and run again gives the same dataset; a killed bulk edit applies entirely or not at all', async (t) => {
  assert.ok(referenceExport, 'the reference run must pass first');
  const { dir, cli, configFile, library } = setup(t);
  copyFileSync(clip.file, path.join(dir, 'inbox', 'Stills', 'Stills 01.m2ts'));
  const processed = await cli('process', path.join(dir, 'inbox', 'Stills', 'Stills 01.m2ts'));
  assert.equal(processed.code, 0, processed.stderr);
  const out = path.join(dir, 'export');
  for (let round = 0; round < ROUNDS; round += 1) {
    const child = spawn(process.execPath, [path.join(projectRoot, 'bin', 'celforge.js'), '--config', configFile, 'export', 'series:*', '--out', out], { cwd: dir, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await new Promise((resolve) => setTimeout(resolve, 300 + Math.random() * 700));
    child.kill('SIGKILL');
    await exited;
  }
  assert.equal((await cli('export', 'series:*', '--out', out)).code, 0);
  assert.deepEqual(exportTree(out), referenceExport);

  const edit = spawn(process.execPath, [path.join(projectRoot, 'bin', 'celforge.js'), '--config', configFile, 'tag', 'series:*', '--add', 'checked', '--remove', 'long_hair'], { cwd: dir, stdio: 'ignore' });
  const edited = new Promise((resolve) => edit.on('exit', resolve));
  await new Promise((resolve) => setTimeout(resolve, 200 + Math.random() * 600));
  edit.kill('SIGKILL');
  await edited;
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  const [all, checked, longHair] = [catalog.count('series:*'), catalog.count('checked'), catalog.count('long_hair')];
  assert.ok(all > 3, 'frames and crops');
  assert.ok((checked === 0 && longHair === all) || (checked === all && longHair === 0), `a half-applied edit: ${checked} checked, ${longHair} long_hair of ${all}`);
});

test("a person's edit made while the daemon works survives a SIGKILL during tagging and the re-tagging after the restart", async (t) => {
  assert.ok(reference, 'the reference run must pass first');
  const { dir, configFile, library, cli } = setup(t);
  copyFileSync(clip.file, path.join(dir, 'inbox', 'Stills', 'Stills 01.m2ts'));
  const first = startDaemon(configFile);
  t.after(() => stopDaemon(first));
  await waitFor('the faces stage', () => readJobs(library)[0]?.stage === 'faces', 60_000, 5);
  // The frames: crops are being made about now, so whether the edit would reach them is chance.
  const edit = await cli('tag', 'series:* -crop:*', '--remove', 'long_hair', '--add', 'person_checked');
  assert.equal(edit.code, 0, edit.stderr);
  await waitFor('the tags stage', () => readJobs(library)[0]?.stage === 'tags' || readJobs(library)[0]?.state === 'ready-for-review', 60_000, 5);
  first.child.kill('SIGKILL');
  await first.exited;
  const second = startDaemon(configFile);
  t.after(() => stopDaemon(second));
  await waitFor('the job to finish after the restart', () => readJobs(library)[0]?.state === 'ready-for-review', 120_000);
  await stopDaemon(second);

  const result = snapshotLibrary(library);
  for (const [hash, expected] of Object.entries(reference.catalog)) {
    if (expected.tags.some((tag) => tag.startsWith('crop:'))) {
      assert.deepEqual(result.catalog[hash], expected, `crop ${hash}: as without the edit`);
      continue;
    }
    const wanted = [...expected.tags.filter((tag) => tag !== 'long_hair'), 'person_checked'].sort();
    assert.deepEqual([...result.catalog[hash]!.tags].sort(), wanted, `${hash}: the person's edit, once, and nothing else changed`);
    assert.equal(result.catalog[hash]!.sources.filter((source) => source === 'person:person_checked').length, 1);
  }
  for (const [name, hash] of Object.entries(reference.files)) {
    if (name.endsWith('.txt') && !name.startsWith('crops')) {
      const caption = readFileSync(path.join(readJobs(library)[0]!.extract!.dir, name), 'utf8');
      assert.ok(!caption.includes('long hair') && caption.includes('person checked'), `${name}: ${caption}`);
    } else {
      assert.equal(result.files[name], hash, name);
    }
  }
});
