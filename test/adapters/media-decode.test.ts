/**
 * A decode ends when ffmpeg exits, not when its output closes. On a busy
 * machine ffmpeg's exit can reach node well after the last frame did; a
 * decode that read every frame must not fail for that, and an exit code
 * that says ffmpeg failed must still be heard. The stand-in ffmpeg is a
 * shell script because the order of those two events cannot be forced on
 * the real one.
 */
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { resolveFfmpegBinaries } from '../../src/adapters/ffmpeg-binaries.ts';
import { ExtractionStopped, FfmpegFailure, MediaRepository } from '../../src/adapters/media.ts';
import { tempDir } from '../helpers.ts';

const binaries = resolveFfmpegBinaries();
const WIDTH = 2;
const HEIGHT = 2;
const FRAME = (fill: string) => fill.repeat(WIDTH * HEIGHT * 3);

/** An ffmpeg that writes `body` to stdout, closes it, waits `exitAfter` seconds, then exits with `code`. */
function slowExitingFfmpeg(dir: string, body: string, code: number, exitAfter = 0.4): MediaRepository {
  const file = path.join(dir, `ffmpeg-${code}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    file,
    [
      '#!/bin/sh',
      // fluent-ffmpeg asks ffmpeg which formats and encoders it has before a run: the real one answers.
      `case "$*" in -formats*|-encoders*|-codecs*|-filters*) exec '${binaries.ffmpeg}' "$@";; esac`,
      body,
      'exec 1>&-',
      `sleep ${exitAfter}`,
      'echo "Error while decoding stream #0:0" >&2',
      `exit ${code}`,
    ].join('\n'),
  );
  chmodSync(file, 0o755);
  return new MediaRepository({ ...binaries, ffmpeg: file });
}

async function readAll(media: MediaRepository): Promise<{ frames: string[]; done: Promise<void> }> {
  const decoded = media.decodeFrames({ input: 'clip.m2ts', width: WIDTH, height: HEIGHT, hwaccel: 'none' });
  const frames: string[] = [];
  for await (const frame of decoded.frames) frames.push(frame.toString('latin1'));
  return { frames, done: decoded.done };
}

test('a decode whose output closed well before ffmpeg exited gives every frame and ends without an error', async (t) => {
  const dir = tempDir(t);
  const media = slowExitingFfmpeg(dir, `printf '${FRAME('a')}${FRAME('b')}${FRAME('c')}'`, 0);
  const { frames, done } = await readAll(media);
  assert.deepEqual(frames, [FRAME('a'), FRAME('b'), FRAME('c')]);
  await done;
});

test('an ffmpeg that exits with an error after its output closed fails the decode with its own words', async (t) => {
  const dir = tempDir(t);
  const media = slowExitingFfmpeg(dir, `printf '${FRAME('a')}${FRAME('b')}'`, 1);
  const { frames, done } = await readAll(media);
  assert.equal(frames.length, 2);
  await assert.rejects(done, (error: unknown) => error instanceof FfmpegFailure && /Error while decoding/.test(error.message));
});

test('a reader that leaves before the end stops ffmpeg instead of leaving it blocked on a full pipe', async (t) => {
  const dir = tempDir(t);
  const media = slowExitingFfmpeg(dir, `while :; do printf '${FRAME('x')}'; done`, 0);
  const decoded = media.decodeFrames({ input: 'clip.m2ts', width: WIDTH, height: HEIGHT, hwaccel: 'none' });
  for await (const frame of decoded.frames) {
    assert.equal(frame.toString('latin1'), FRAME('x'));
    break;
  }
  await assert.rejects(decoded.done, ExtractionStopped);
});

test('a seek for one frame whose output closed well before ffmpeg exited gives the frame', async (t) => {
  const dir = tempDir(t);
  const media = slowExitingFfmpeg(dir, `printf '${FRAME('f')}'`, 0);
  const found = await media.decodeFrameAt({ input: 'clip.m2ts', width: WIDTH, height: HEIGHT, seekSeconds: 0, ptsSeconds: 0, fps: 24 });
  assert.equal(found.rgb?.toString('latin1'), FRAME('f'));
});
