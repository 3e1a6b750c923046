/**
 * Crops: the geometry (square close-ups moved inside the frame, upper-body
 * crops cut at its edges, the minimum size, boxes at corners and outside),
 * and the stage in the pipeline on a real clip of grid-36 pictures with the
 * real default face detector: crops are the frame's pixels exactly, the
 * catalog has them with their origin and `crop:<kind>`, search finds them or
 * leaves them out, a stop mid-stage resumes to the same files, and the same
 * bytes are never written twice.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { readCrops, type CropKind } from '../../src/adapters/crops-file.ts';
import { realDiskSpace } from '../../src/adapters/disk.ts';
import { readFaces } from '../../src/adapters/faces-file.ts';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { MediaRepository } from '../../src/adapters/media.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Job } from '../../src/daemon/job.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { cropRect, type CropGeometry } from '../../src/stages/crops/crop-geometry.ts';
import { cropsStage } from '../../src/stages/crops/crops-stage.ts';
import { mulberry32 } from '../fixtures/anime-clip.ts';
import { binaries } from '../fixtures/clips.ts';
import { makeFacesClip } from '../fixtures/faces-clip.ts';
import { hashTree, readJobs, runCli, tempDir, writeConfig } from '../helpers.ts';
import { stageRunner } from '../fixtures/stage-run.ts';

const GEOMETRY: CropGeometry = { faceMargin: 0.5, upperBody: { width: 3, height: 4, above: 0.5 }, minSize: 16 };
const FRAME = { width: 640, height: 360 };
const box = (x: number, y: number, width: number, height: number) => ({ x, y, width, height });

test('a face close-up is a square of the face plus its margin, moved inside the frame at its edges', () => {
  assert.deepEqual(cropRect('face', box(100, 100, 50, 50), FRAME, GEOMETRY), [75, 75, 100, 100]);
  assert.deepEqual(cropRect('face', box(100, 100, 40, 60), FRAME, GEOMETRY), [60, 70, 120, 120], 'the larger side decides');
  assert.deepEqual(cropRect('face', box(0, 0, 40, 40), FRAME, GEOMETRY), [0, 0, 80, 80], 'top-left corner: moved, not cut');
  assert.deepEqual(cropRect('face', box(620, 340, 40, 40), FRAME, GEOMETRY), [560, 280, 80, 80], 'a box past the bottom-right corner');
  assert.deepEqual(cropRect('face', box(-30, 100, 60, 60), FRAME, GEOMETRY), [0, 70, 120, 120], 'a box half outside on the left');
  assert.deepEqual(cropRect('face', box(100, 0, 400, 400), FRAME, GEOMETRY), [120, 0, 360, 360], 'larger than the frame: the frame\'s height, still square');
  assert.deepEqual(cropRect('face', box(100, 100, 50, 50), FRAME, { ...GEOMETRY, faceMargin: 0 }), [100, 100, 50, 50], 'no margin: the box itself');
});

test('an upper-body crop hangs from the face, centred across, and is cut at the frame\'s edges', () => {
  assert.deepEqual(cropRect('upper_body', box(300, 100, 40, 40), FRAME, GEOMETRY), [260, 80, 120, 160]);
  assert.deepEqual(cropRect('upper_body', box(300, 300, 40, 40), FRAME, GEOMETRY), [260, 280, 120, 80], 'cut at the bottom');
  assert.deepEqual(cropRect('upper_body', box(0, 0, 40, 40), FRAME, GEOMETRY), [0, 0, 80, 140], 'cut at the top-left corner (from -20 down to 140)');
  assert.deepEqual(cropRect('upper_body', box(300, 100, 40, 40), FRAME, { ...GEOMETRY, upperBody: { width: 2, height: 3, above: 0 } }), [280, 100, 80, 120]);
});

test('a crop smaller than the minimum is not made, nor one from an empty box or a box outside the frame', () => {
  const min = (minSize: number) => ({ ...GEOMETRY, minSize });
  assert.deepEqual(cropRect('face', box(100, 100, 20, 20), FRAME, min(40)), [90, 90, 40, 40], 'exactly the minimum is kept');
  assert.equal(cropRect('face', box(100, 100, 20, 20), FRAME, min(41)), null, 'never scaled up to reach it');
  assert.equal(cropRect('upper_body', box(300, 300, 40, 40), FRAME, min(100)), null, 'cut by the edge below the minimum');
  for (const outside of [box(700, 10, 20, 20), box(-50, -50, 20, 20), box(10, 360, 20, 20), box(640, 0, 30, 30)]) {
    for (const kind of ['face', 'upper_body'] as const) assert.equal(cropRect(kind, outside, FRAME, GEOMETRY), null, `${kind} of ${JSON.stringify(outside)}`);
  }
  for (const empty of [box(10, 10, 0, 20), box(10, 10, 20, -5), box(Number.NaN, 10, 20, 20), box(10, 10, Number.NaN, 20)]) {
    assert.equal(cropRect('face', empty, FRAME, GEOMETRY), null, JSON.stringify(empty));
  }
});

test('on random boxes, anywhere and of any size, every crop is whole pixels inside the frame and at least the minimum', () => {
  const random = mulberry32(16);
  const geometry = { ...GEOMETRY, minSize: 24 };
  let made = 0;
  for (let i = 0; i < 5000; i += 1) {
    const face = box(random() * 900 - 150, random() * 600 - 150, random() * 500, random() * 500);
    for (const kind of ['face', 'upper_body'] as const) {
      const rect = cropRect(kind, face, FRAME, geometry);
      if (rect === null) continue;
      made += 1;
      const [x, y, width, height] = rect;
      const where = `${kind} of ${JSON.stringify(face)}: ${rect}`;
      assert.ok(rect.every(Number.isInteger), where);
      assert.ok(x >= 0 && y >= 0 && x + width <= FRAME.width && y + height <= FRAME.height, where);
      assert.ok(Math.min(width, height) >= geometry.minSize, where);
      if (kind === 'face') assert.equal(width, height, where);
    }
  }
  assert.ok(made > 2000, `${made} crops made`);
});

const clip = await makeFacesClip();

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const configFile = writeConfig(dir, {
    inbox: './inbox', library: './library', disk: { reserve: 0 },
    faces: { detector: 'faceboxes' }, crops: { minSize: 128 }, inference: { batchSize: 1, workers: 1 },
  });
  return { dir, configFile, library: path.join(dir, 'library'), cli: (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir }) };
}

async function rawPixels(file: string, region?: [number, number, number, number]): Promise<Buffer> {
  const picture = sharp(file).removeAlpha();
  if (region) picture.extract({ left: region[0], top: region[1], width: region[2], height: region[3] });
  return picture.raw().toBuffer();
}

test('process: crops of every face found, the frame\'s pixels exactly, in the catalog with their origin; search finds or leaves them out; a stop mid-stage resumes to the same files', { timeout: 240_000 }, async (t) => {
  const { dir, configFile, library, cli } = setup(t);
  const result = await cli('process', clip.file);
  assert.equal(result.code, 0, result.stderr + result.stdout);
  const job = readJobs(library)[0]!;
  assert.equal(job.state, 'ready-for-review');
  const faces = await readFaces(path.join(job.extract!.dir, 'faces.jsonl'));
  const crops = await readCrops(path.join(job.extract!.dir, 'crops.jsonl'));
  assert.deepEqual(job.crops, { framesDone: 3, crops: crops.length });
  assert.match(result.stdout, new RegExp(`; ${crops.length} crops`));

  // Every face of a frame with faces gives a crop of each kind where it is large enough; the sky gives none.
  const expected = faces.flatMap((record) => record.faces.flatMap((face, faceIndex) => (['face', 'upper_body'] as CropKind[])
    .filter((kind) => cropRect(kind, face, { width: 1280, height: 720 }, { faceMargin: 0.5, upperBody: { width: 3, height: 4, above: 0.5 }, minSize: 128 }))
    .map((kind) => `${record.frame}/${faceIndex}/${kind}`)));
  assert.ok(expected.length >= 8, `${expected.length} crops expected from ${faces.map((record) => record.faces.length)} faces`);
  assert.deepEqual(crops.map((crop) => `${crop.frame}/${crop.faceIndex}/${crop.kind}`), expected);

  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  for (const crop of crops) {
    const frame = faces.find((record) => record.frame === crop.frame)!;
    const face = frame.faces[crop.faceIndex]!;
    assert.deepEqual(crop.box, [face.x, face.y, face.width, face.height]);
    assert.equal(crop.frameSha256, frame.sha256);
    assert.equal(crop.frameFile, frame.file);
    assert.match(crop.file, new RegExp(`crops/${crop.kind}/scene-000${crop.scene}/.+_${String(crop.frame).padStart(6, '0')}_${crop.faceIndex}\\.png$`));
    const file = path.join(library, crop.file);
    const { width, height } = await sharp(file).metadata();
    assert.deepEqual([width, height], [crop.rect[2], crop.rect[3]]);
    if (crop.kind === 'face') assert.equal(width, height, 'a face close-up is square');
    assert.ok((await rawPixels(file)).equals(await rawPixels(path.join(library, frame.file), crop.rect)), `${crop.file} is the frame's pixels in ${crop.rect}`);

    const image = catalog.get(crop.sha256)!;
    assert.deepEqual(image.origin, { hash: frame.sha256, box: crop.box });
    assert.deepEqual([image.path, image.frame, image.scene, image.series, image.episode], [crop.file, crop.frame, crop.scene, job.series, job.episode]);
    assert.equal(image.size, readFileSync(file).length);
    const tags = catalog.tagsOf(crop.sha256);
    for (const tag of [`crop:${crop.kind}`, `series:${job.series}`, `episode:${job.episode}`]) assert.ok(tags.includes(tag), `${crop.file} lacks ${tag}: ${tags}`);
    assert.deepEqual(catalog.tagSources(crop.sha256).filter((row) => row.tag.startsWith('crop:')), [{ tag: `crop:${crop.kind}`, source: 'crops' }]);
  }
  assert.equal(catalog.get(faces[1]!.sha256)!.origin, null, 'a frame has no origin');

  const faceCrops = crops.filter((crop) => crop.kind === 'face').map((crop) => path.join(library, crop.file)).sort();
  const found = await cli('search', 'crop:face');
  assert.deepEqual(found.stdout.trim().split('\n').sort(), faceCrops);
  const frames = await cli('search', '-crop:* series:*');
  assert.deepEqual(frames.stdout.trim().split('\n').sort(), faces.map((record) => path.join(library, record.file)).sort(), 'the frames alone');
  const json = JSON.parse((await cli('search', 'crop:upper_body', '--json', '--limit', '1')).stdout);
  assert.equal(json.origin.hash, crops.find((crop) => crop.kind === 'upper_body')!.frameSha256);

  // Export takes crops like frames, or leaves them out by query; `crop:` is organisation, not caption.
  const exported = async (query: string) => {
    const out = path.join(dir, `export-${query.replace(/\W+/g, '_')}`);
    const run = await cli('export', query, '--out', out);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const files = readdirSync(out, { recursive: true }).map(String);
    for (const caption of files.filter((name) => name.endsWith('.txt'))) assert.doesNotMatch(readFileSync(path.join(out, caption), 'utf8'), /crop/);
    return files.filter((name) => name.endsWith('.png')).map((name) => ({ name: path.basename(name, '.png'), bytes: readFileSync(path.join(out, name)) }));
  };
  const everything = await exported('series:*');
  assert.deepEqual(everything.map((file) => file.name).sort(), [...faces.map((record) => record.sha256), ...crops.map((crop) => crop.sha256)].sort());
  for (const crop of crops) assert.ok(everything.find((file) => file.name === crop.sha256)!.bytes.equals(readFileSync(path.join(library, crop.file))));
  assert.deepEqual((await exported('series:* -crop:*')).map((file) => file.name).sort(), faces.map((record) => record.sha256).sort());
  assert.deepEqual((await exported('crop:face')).map((file) => file.name).sort(), crops.filter((crop) => crop.kind === 'face').map((crop) => crop.sha256).sort());

  // Again from nothing recorded, stopped after the second frame, with the last line cut short: the same files.
  const cropsFile = path.join(job.extract!.dir, 'crops.jsonl');
  const cropsDir = path.join(job.extract!.dir, 'crops');
  const reference = { lines: readFileSync(cropsFile, 'utf8'), files: hashTree(cropsDir) };
  rmSync(cropsFile);
  rmSync(cropsDir, { recursive: true });
  const config = await loadConfig({ configPath: configFile });
  const images = createImageWorkers(1);
  t.after(() => images.close());
  let state: Job = { ...structuredClone(job), stage: 'crops', state: 'running' };
  delete state.crops;
  const run = stageRunner(cropsStage, state, {
    config: () => config, media: new MediaRepository(binaries), disk: realDiskSpace, catalog, images, models: new ModelCache(), log: pino({ level: 'silent' }),
  });
  assert.equal(await run(2), 'interrupted');
  assert.equal((state as Job).crops?.framesDone, 2);
  const partial = readFileSync(cropsFile, 'utf8').split('\n').filter(Boolean);
  assert.ok(partial.length >= 2 && partial.every((line) => JSON.parse(line).frame === 12), 'the second frame\'s crops only');
  writeFileSync(cropsFile, `${partial.slice(0, -1).join('\n')}\n${partial.at(-1)!.slice(0, 40)}`);
  assert.equal(await run(null), 'done');
  assert.equal(readFileSync(cropsFile, 'utf8'), reference.lines, 'crops.jsonl as in the uninterrupted run');
  assert.deepEqual(hashTree(cropsDir), reference.files, 'the same crop files, byte for byte, and nothing else');
  assert.deepEqual(state.crops, job.crops);

  // The same bytes are not written twice: a face found twice, and a crop the catalog holds elsewhere.
  const facesFile = path.join(job.extract!.dir, 'faces.jsonl');
  const withTwin = faces.map((record) => (record.frame === 12 ? { ...record, faces: [...record.faces, record.faces[0]!] } : record));
  writeFileSync(facesFile, withTwin.map((record) => `${JSON.stringify(record)}\n`).join(''));
  const moved = crops.at(-1)!;
  catalog.markKept(moved.sha256, 'elsewhere/crop.png');
  rmSync(cropsFile);
  rmSync(cropsDir, { recursive: true });
  delete state.crops;
  assert.equal(await run(null), 'done');
  const again = await readCrops(cropsFile);
  assert.deepEqual(again.map((crop) => crop.sha256), crops.slice(0, -1).map((crop) => crop.sha256));
  assert.equal(again.filter((crop) => crop.frame === 12 && crop.faceIndex === faces[1]!.faces.length).length, 0, 'the twin face gave nothing');
  assert.equal(readdirSync(cropsDir, { recursive: true }).filter((name) => String(name).endsWith('.png')).length, crops.length - 1);
});
