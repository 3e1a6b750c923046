import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { realDiskSpace } from '../../src/adapters/disk.ts';
import { createImageWorkers } from '../../src/adapters/image-workers.ts';
import { MediaRepository } from '../../src/adapters/media.ts';
import { ModelCache } from '../../src/models/model-cache.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { Job } from '../../src/daemon/job.ts';
import { CelforgeError } from '../../src/errors.ts';
import { probeStage } from '../../src/stages/probe.ts';
import type { StagePorts } from '../../src/stages/stage.ts';
import { binaries, countDecodedFrames, makeClip } from '../fixtures/clips.ts';
import { tempDir } from '../helpers.ts';

const media = new MediaRepository(binaries);

function ports(library: string): StagePorts {
  const config = validateConfig({ library }, 'test', library);
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  return {
    config: () => config, media, disk: realDiskSpace, catalog, images: createImageWorkers(0), models: new ModelCache(),
    log: pino({ level: 'silent' }), signal: new AbortController().signal, save: async () => {},
  };
}

function jobFor(file: string): Job {
  const now = new Date().toISOString();
  return {
    id: 'x', source: file, seenAs: [file], sizeBytes: statSync(file).size, series: 's', episode: '01',
    stage: 'probe', state: 'running', progress: null, timings: {}, createdAt: now, updatedAt: now,
  };
}

async function probeFails(t: Parameters<typeof tempDir>[0], file: string): Promise<CelforgeError> {
  const before = readFileSync(file);
  try {
    await probeStage(jobFor(file), ports(tempDir(t)));
  } catch (error) {
    assert.ok(error instanceof CelforgeError, String(error));
    assert.ok(error.message.startsWith(`${file}: `), `the message does not start with the file: ${error.message}`);
    assert.ok(readFileSync(file).equals(before), 'the file was changed');
    return error;
  }
  assert.fail(`probing ${file} should have failed`);
}

test('probe reads frame count, fps, duration and resolution of a real clip', async (t) => {
  const clip = await makeClip({ width: 320, height: 180, seconds: 2 });
  const job = jobFor(clip);
  const result = await probeStage(job, ports(tempDir(t)));
  assert.equal(result.kind, 'done');
  if (result.kind === 'done') result.change!(job);
  assert.equal(job.probe!.frameCount, await countDecodedFrames(clip));
  assert.equal(job.probe!.frameRate, '24000/1001');
  assert.equal(job.probe!.width, 320);
  assert.equal(job.probe!.height, 180);
  assert.ok(Math.abs(job.probe!.durationSeconds - 2) < 0.1);
});

test('a truncated rip fails with a message naming the file, and is left untouched', async (t) => {
  const clip = await makeClip({ width: 320, height: 180, seconds: 3 });
  const dir = tempDir(t);
  const bytes = readFileSync(clip);
  // Cut mid-packet, as an interrupted copy does.
  const midPacket = path.join(dir, 'cut mid packet.m2ts');
  writeFileSync(midPacket, bytes.subarray(0, Math.floor((bytes.length * 0.6) / 192) * 192 + 100));
  assert.match((await probeFails(t, midPacket)).message, /truncated: \d+ bytes is not a whole number of 192-byte BDAV packets/);
  // Cut on a packet boundary but in the middle of a frame: only decoding the end shows it.
  const onBoundary = path.join(dir, 'cut on boundary.m2ts');
  writeFileSync(onBoundary, bytes.subarray(0, Math.floor((bytes.length * 0.6) / 192) * 192));
  const error = await probeFails(t, onBoundary);
  assert.equal(error.code, 'VIDEO_TRUNCATED');
  assert.match(error.message, /do not decode, so it is truncated or damaged \(ffmpeg: .+\)/);
});

test('a zero-byte file fails with what ffprobe said', async (t) => {
  const file = path.join(tempDir(t), 'empty.m2ts');
  writeFileSync(file, '');
  const error = await probeFails(t, file);
  assert.equal(error.code, 'PROBE_FAILED');
  assert.match(error.message, /ffprobe cannot read it \(.*Invalid data found when processing input\)/);
});

test('a video with no video stream fails and lists its streams', async (t) => {
  const audio = await makeClip({ width: 0, height: 0, seconds: 1, audioOnly: true });
  const file = path.join(tempDir(t), 'audio only.m2ts');
  copyFileSync(audio, file);
  const error = await probeFails(t, file);
  assert.equal(error.code, 'NO_VIDEO_STREAM');
  assert.match(error.message, /no video stream \(streams: audio\/ac3\)/);
});

test('ffprobe from the npm package reads MPEG-TS (its static glibc must not load the system gconv)', async () => {
  const clip = await makeClip({ width: 320, height: 180, seconds: 2 });
  const info = await media.probe(clip);
  assert.ok(info.frameCount > 0);
});
