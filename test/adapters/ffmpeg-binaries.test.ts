import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { resolveFfmpegBinaries } from '../../src/adapters/ffmpeg-binaries.ts';
import { CelforgeError } from '../../src/errors.ts';
import { binaries } from '../fixtures/clips.ts';
import { tempDir } from '../helpers.ts';

test('configured binaries win over the system and the npm packages', () => {
  const resolved = resolveFfmpegBinaries({ ffmpegPath: binaries.ffmpeg, ffprobePath: binaries.ffprobe });
  assert.deepEqual(resolved.source, { ffmpeg: 'config', ffprobe: 'config' });
  assert.equal(resolved.ffmpeg, binaries.ffmpeg);
});

test('a configured path that is not an executable is refused by name', (t) => {
  const file = path.join(tempDir(t), 'ffmpeg');
  writeFileSync(file, 'not a program', { mode: 0o644 });
  assert.throws(() => resolveFfmpegBinaries({ ffmpegPath: file }), (error: unknown) => {
    assert.ok(error instanceof CelforgeError);
    assert.equal(error.code, 'FFMPEG_NOT_FOUND');
    assert.match(error.message, new RegExp(`^${file}: the configured ffmpeg is not an executable file`));
    return true;
  });
});

test('without configuration, ffmpeg on PATH is used before the npm package', (t) => {
  const dir = tempDir(t);
  const fake = path.join(dir, 'ffmpeg');
  writeFileSync(fake, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  const saved = process.env.PATH;
  process.env.PATH = `${dir}${path.delimiter}${saved}`;
  t.after(() => (process.env.PATH = saved));
  const resolved = resolveFfmpegBinaries();
  assert.equal(resolved.ffmpeg, fake);
  assert.equal(resolved.source.ffmpeg, 'system');
});
