/**
 * Features computed in worker threads equal the inline ones, frames come out
 * in order with their bytes unchanged, the read-ahead is bounded, and a worker
 * that dies fails the pipeline naming the frame.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { CelforgeError } from '../../src/errors.ts';
import { FeatureWorkers, framesWithFeatures, pooled } from '../../src/stages/extract/feature-pipeline.ts';
import { computeFeatures } from '../../src/stages/extract/features.ts';
import { mulberry32 } from '../fixtures/anime-clip.ts';

function randomFrames(count: number, width: number, height: number, seed: number): Buffer[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, () => {
    // allocUnsafe: a small frame lands in Node's shared pool, as frames of a tiny video would.
    const frame = Buffer.allocUnsafe(width * height * 3);
    for (let i = 0; i < frame.length; i += 1) frame[i] = Math.floor(random() * 256);
    return frame;
  });
}

async function* source(frames: Buffer[], events?: { requested: number }): AsyncGenerator<Buffer> {
  for (const frame of frames) {
    if (events) events.requested += 1;
    yield frame;
  }
}

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

for (const [width, height] of [[64, 36], [16, 8]] as const) {
  test(`${width}x${height}: frames from 3 worker threads carry the inline features and their own unchanged bytes, in order`, async () => {
    const frames = randomFrames(40, width, height, width);
    const hashes = frames.map(sha);
    const expected = frames.map((frame) => computeFeatures(frame, width, height));
    let index = 0;
    for await (const { rgb, features } of framesWithFeatures(source(frames), width, height, 3)) {
      assert.equal(sha(rgb), hashes[index], `frame ${index}'s bytes`);
      assert.deepEqual(features, expected[index], `frame ${index}'s features`);
      index += 1;
    }
    assert.equal(index, frames.length);
  });
}

test('0 threads computes inline, with the same result', async () => {
  const frames = randomFrames(5, 32, 18, 3);
  const out = [];
  for await (const item of framesWithFeatures(source(frames), 32, 18, 0)) out.push(item);
  assert.deepEqual(out.map((item) => item.features), frames.map((frame) => computeFeatures(frame, 32, 18)));
  assert.ok(out.every((item, i) => item.rgb === frames[i]), 'inline hands the decoded buffers through');
});

test('frames are read ahead of a slow consumer, never more than the bound', async () => {
  const frames = randomFrames(30, 64, 36, 9);
  const events = { requested: 0 };
  const limit = 4;
  let consumed = 0;
  let mostAhead = 0;
  for await (const item of pooled(source(frames, events), () => new FeatureWorkers(2, 64, 36), limit)) {
    mostAhead = Math.max(mostAhead, events.requested - consumed);
    for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
    assert.ok(item.features.luma.length > 0);
    consumed += 1;
  }
  assert.equal(consumed, frames.length);
  // The frame being handed out, `limit` measured or queued, and one read that may be pending.
  assert.ok(mostAhead <= limit + 2, `read ${mostAhead} frames ahead of the consumer`);
  assert.ok(mostAhead >= 2, 'the pipeline reads ahead while the consumer works');
});

test('a consumer that stops early ends the input and the workers', async () => {
  let returned = false;
  const frames = randomFrames(20, 64, 36, 4);
  async function* watched() {
    try {
      yield* source(frames);
    } finally {
      returned = true;
    }
  }
  let taken = 0;
  for await (const _ of framesWithFeatures(watched(), 64, 36, 2)) {
    taken += 1;
    if (taken === 3) break;
  }
  await new Promise<void>((resolve) => {
    const check = () => (returned ? resolve() : setImmediate(check));
    check();
  });
  assert.ok(returned, 'the decoded frames were closed');
});

test('a worker that dies fails the pipeline with the frame it had and the exit code', async () => {
  const frames = randomFrames(10, 64, 36, 5);
  const dying = new URL('../fixtures/dying-feature-worker.ts', import.meta.url);
  const seen: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const { features } of pooled(source(frames), () => new FeatureWorkers(1, 64, 36, { module: dying }), 2)) seen.push(features.mean);
    })(),
    (error: unknown) => {
      assert.ok(error instanceof CelforgeError);
      assert.equal(error.code, 'INTERNAL');
      assert.match(error.message, /^frame 2: the feature worker stopped \(exit code 7\)/);
      return true;
    },
  );
  assert.equal(seen.length, 2, 'the frames measured before the worker died came out');
});
