/**
 * Frames decoded into a fixed set of reused buffers (FrameBuffers): a slot is
 * handed to one frame at a time, released slots come back, an exhausted set
 * hands out fresh buffers instead of waiting, and feature workers read slots
 * in place. End to end, no frame is overwritten while it is still being
 * written: every kept PNG and every preview of `celforge process` holds the
 * pixels of its own frame, decoded independently (with feature workers,
 * which read the frames in their shared slots).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { FrameBuffers } from '../../src/adapters/frame-buffers.ts';
import { writePreview } from '../../src/adapters/image-writer.ts';
import { MediaRepository } from '../../src/adapters/media.ts';
import { framesWithFeatures } from '../../src/stages/extract/feature-pipeline.ts';
import { computeFeatures } from '../../src/stages/extract/features.ts';
import { makeAnimeClip, mulberry32, type AnimeClip } from '../fixtures/anime-clip.ts';
import { binaries } from '../fixtures/clips.ts';
import { frameMapOf, readJobs, runCli, tempDir, writeConfig } from '../helpers.ts';

test('a slot goes to one frame at a time; released slots come back; an exhausted set hands out fresh buffers', () => {
  const buffers = new FrameBuffers(12, 3);
  const taken = [buffers.take(), buffers.take(), buffers.take()];
  assert.deepEqual(taken.map((buffer) => buffers.slotOf(buffer)), [0, 1, 2]);
  assert.equal(new Set(taken.map((buffer) => buffer.buffer)).size, 3, 'three different memories');
  assert.ok(taken.every((buffer) => buffer.buffer instanceof SharedArrayBuffer));
  const fresh = buffers.take();
  assert.equal(buffers.slotOf(fresh), undefined, 'all slots in use: a buffer of its own');
  assert.equal(fresh.length, 12);
  assert.equal(buffers.taken, 3);
  buffers.release(fresh); // not one of the set: nothing to give back
  buffers.release(taken[1]!);
  assert.equal(buffers.taken, 2);
  assert.equal(buffers.take(), taken[1], 'the released slot is the next one handed out');
  assert.throws(() => {
    buffers.release(taken[0]!);
    buffers.release(taken[0]!);
  }, /released twice/);
  assert.equal(buffers.slotOf(Buffer.from(taken[2]!.buffer, 0, 6)), undefined, 'a view of part of a slot is not the slot');
});

test('feature workers read frames in their shared slots in place, and frames of their own as before, in order', async () => {
  const width = 48;
  const height = 27;
  const random = mulberry32(5);
  const frames = Array.from({ length: 30 }, () => Buffer.from(Array.from({ length: width * height * 3 }, () => Math.floor(random() * 256))));
  const expected = frames.map((frame) => computeFeatures(frame, width, height));
  const buffers = new FrameBuffers(width * height * 3, 8);
  async function* decoded(): AsyncGenerator<Buffer> {
    for (const frame of frames) {
      const target = buffers.take(); // after 8 unreleased frames, fresh buffers: both kinds go through the workers
      frame.copy(target);
      yield target;
    }
  }
  let index = 0;
  let inSlots = 0;
  for await (const { rgb, features } of framesWithFeatures(decoded(), width, height, 2, buffers)) {
    if (buffers.slotOf(rgb) !== undefined) inSlots += 1;
    assert.ok(rgb.equals(frames[index]!), `frame ${index}'s bytes`);
    assert.deepEqual(features, expected[index], `frame ${index}'s features`);
    if (index % 2 === 0) buffers.release(rgb);
    index += 1;
  }
  assert.equal(index, frames.length);
  assert.ok(inSlots >= 8 && inSlots < frames.length, `both slots and buffers of their own were measured (${inSlots} in slots)`);
});

const SIZE = { width: 640, height: 360 };
let clip: AnimeClip;
let decodedFrames: Buffer[];
before(async () => {
  clip = await makeAnimeClip({ ...SIZE, scenario: 'full' });
  decodedFrames = [];
  const decoded = new MediaRepository(binaries).decodeFrames({ input: clip.file, ...SIZE, hwaccel: 'none' });
  for await (const frame of decoded.frames) decodedFrames.push(frame);
  await decoded.done;
});

/** dedup.previewWidth's default. */
const PREVIEW_WIDTH = 320;
const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

test('celforge process with feature workers: every kept PNG and preview holds the pixels of its own frame, none overwritten by a later frame', { timeout: 300_000 }, async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'Film'), { recursive: true });
  const video = path.join(dir, 'Film', 'Film 01.m2ts');
  copyFileSync(clip.file, video);
  const configFile = writeConfig(dir, { library: './library', extract: { threads: 2 } });
  const result = await runCli(['--config', configFile, 'process', video], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  const job = readJobs(path.join(dir, 'library'))[0]!;
  const records = frameMapOf(job);
  assert.equal(records.length, decodedFrames.length, 'every frame recorded');
  const kept = records.filter((record) => record.status === 'kept');
  assert.ok(kept.length >= 40 && records.length - kept.length >= 40, `kept ${kept.length}, duplicates ${records.length - kept.length}: both kinds are written`);
  const image = (frame: number) => ({ rgb: decodedFrames[frame]!, ...SIZE });
  const expectedPreview = path.join(dir, 'expected-preview.jpg');
  for (const record of records) {
    if (record.file) {
      const { data } = await sharp(path.join(dir, 'library', record.file)).raw().toBuffer({ resolveWithObject: true });
      assert.equal(sha(data), sha(decodedFrames[record.frame]!), `frame ${record.frame} (${record.status}): ${record.file} holds other pixels`);
    } else {
      // A JPEG preview is not lossless, but sharp encodes the same pixels to the same bytes.
      await writePreview(image(record.frame), expectedPreview, PREVIEW_WIDTH);
      assert.ok(readFileSync(path.join(dir, 'library', record.preview!)).equals(readFileSync(expectedPreview)), `frame ${record.frame}'s preview ${record.preview} is not its frame's`);
    }
  }
});
