import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import {
  countCompleteFrames, frameFileName, frameOutputPattern, removePartialFrames, type FrameSet,
} from '../../src/adapters/frame-store.ts';
import { tempDir } from '../helpers.ts';

const PNG_END = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);
const completePng = Buffer.concat([Buffer.from('\x89PNG fake body'), PNG_END]);

function writeFrames(set: FrameSet, frames: number[], body = completePng) {
  for (const frame of frames) writeFileSync(path.join(set.dir, frameFileName(set, frame)), body);
}

test('frame names carry series, episode and a six-digit frame number; % is escaped for ffmpeg', (t) => {
  const set = { dir: tempDir(t), prefix: '100%-Show_03_', ext: 'png' };
  assert.equal(frameFileName(set, 42), '100%-Show_03_000042.png');
  assert.equal(path.basename(frameOutputPattern(set)), '100%%-Show_03_%06d.png');
});

test('complete frames are counted from 0 up to the first gap', async (t) => {
  const set = { dir: tempDir(t), prefix: 's_01_', ext: 'png' };
  writeFrames(set, [0, 1, 2, 3, 5, 6]);
  assert.equal(await countCompleteFrames(set), 4);
});

test('a frame cut short (power cut) is removed with every frame after it', async (t) => {
  const set = { dir: tempDir(t), prefix: 's_01_', ext: 'png' };
  writeFrames(set, [0, 1, 2, 3, 4]);
  writeFrames(set, [2], completePng.subarray(0, 10));
  assert.equal(await countCompleteFrames(set), 2);
  assert.deepEqual(readdirSync(set.dir).sort(), ['s_01_000000.png', 's_01_000001.png']);
});

test('temporary files of an interrupted write are removed; other files are left alone', async (t) => {
  const set = { dir: tempDir(t), prefix: 's_01_', ext: 'png' };
  writeFrames(set, [0]);
  writeFileSync(path.join(set.dir, 's_01_000001.png.tmp'), 'half');
  writeFileSync(path.join(set.dir, 'notes.tmp'), 'mine');
  assert.equal(await removePartialFrames(set), 1);
  assert.ok(!existsSync(path.join(set.dir, 's_01_000001.png.tmp')));
  assert.ok(existsSync(path.join(set.dir, 'notes.tmp')));
});
