/** `celforge process`, the one-off run, where it must end rather than wait. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { makeClip } from '../fixtures/clips.ts';
import { readJobs, runCli, tempDir, writeConfig } from '../helpers.ts';

test('process ends with exit code 4 when the disk gate holds a video, naming what it needs and what is free', { timeout: 240_000 }, async (t) => {
  const clip = await makeClip({ width: 320, height: 180, seconds: 1 });
  const dir = tempDir(t);
  const library = path.join(dir, 'library');
  // No disk holds 4000 TiB, so the gate says no at once, on any machine.
  const config = writeConfig(dir, { library, disk: { reserve: '4000 TiB', recheckSeconds: 1 } });
  const result = await runCli(['--config', config, 'process', clip], { cwd: dir });
  assert.equal(result.code, 4, result.stderr + result.stdout);
  assert.match(result.stderr, new RegExp(`${path.basename(clip).replaceAll('.', '\\.')}: not started: needs [\\d.]+ \\w+ plus the 4000(?:\\.0)? TiB reserve \\(disk\\.reserve\\) on ${library.replaceAll('.', '\\.')}, and [\\d.]+ \\w+ is free\\. Free some space or lower disk\\.reserve`));
  const [job] = readJobs(library);
  assert.equal(job!.state, 'waiting-for-disk');
  assert.equal(job!.disk!.reserveBytes, 4000 * 2 ** 40);
  assert.ok(!existsSync(path.join(library, '.celforge', 'daemon.lock')), 'the library is released');

  // Room again (the reserve lowered): the same command goes on with the video.
  writeConfig(dir, { library, disk: { reserve: 0 } });
  const again = await runCli(['--config', config, 'process', clip], { cwd: dir });
  assert.equal(again.code, 0, again.stderr + again.stdout);
  assert.equal(readJobs(library)[0]!.state, 'ready-for-review');
});
