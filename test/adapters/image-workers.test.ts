/** The image worker pool gives what the same work gives inline, names a picture it cannot read, and keeps going. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { CelforgeError } from '../../src/errors.ts';
import { GRID_FILE as GRID } from '../fixtures/grid-36.ts';
import { CASCADE_FILE } from '../fixtures/model-folder.ts';
import { tempDir } from '../helpers.ts';

test('worker threads give the same tensors and faces as inline work', async (t) => {
  const dir = tempDir(t);
  const picture = path.join(dir, 'crop.png');
  await sharp(GRID).extract({ left: 0, top: 0, width: 1024, height: 576 }).png().toFile(picture);
  const pool = createImageWorkers(2);
  const inline = createImageWorkers(0);
  t.after(() => pool.close());
  const tasks = [
    { kind: 'wd14', image: picture, size: 64 },
    { kind: 'yolo', image: picture, width: 128, height: 96, resize: 'letterbox' },
    { kind: 'yolo', image: picture, width: 96, height: 96, resize: 'stretch' },
    { kind: 'cascade', image: GRID, cascade: CASCADE_FILE, maxSide: 1536 },
  ] as const;
  const [threaded, direct] = await Promise.all([Promise.all(tasks.map((task) => pool.run(task))), Promise.all(tasks.map((task) => inline.run(task)))]);
  assert.ok(threaded[0] instanceof Float32Array && threaded[0].length === 64 * 64 * 3);
  assert.deepEqual(threaded, direct);
  assert.ok((threaded[3] as unknown[]).length >= 30, 'the cascade finds the grid\'s faces in a worker');
});

test('a picture that cannot be read is named; the pool goes on', async (t) => {
  const dir = tempDir(t);
  const broken = path.join(dir, 'broken.png');
  writeFileSync(broken, 'not a png');
  const pool = createImageWorkers(1);
  t.after(() => pool.close());
  await assert.rejects(pool.run({ kind: 'wd14', image: broken, size: 32 }), (error: unknown) => {
    assert.ok(error instanceof CelforgeError);
    assert.equal(error.code, 'IMAGE_UNREADABLE');
    assert.match(error.message, /broken\.png: cannot read this picture/);
    return true;
  });
  const good = path.join(dir, 'good.png');
  await sharp({ create: { width: 8, height: 8, channels: 3, background: '#ffffff' } }).png().toFile(good);
  const tensor = await pool.run({ kind: 'wd14', image: good, size: 8 });
  assert.ok(tensor.every((value) => value === 255));
  await pool.close();
  await assert.rejects(pool.run({ kind: 'wd14', image: good, size: 8 }), /closed/);
});
