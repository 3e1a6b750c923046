/** `celforge doctor` on a broken set-up names each problem and what to do; on a sound one it says OK. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { runCli, tempDir, writeConfig } from '../helpers.ts';

test('doctor on a broken set-up names every problem; exit code 1', async (t) => {
  const dir = tempDir(t);
  const models = writeModelFolder(dir, { taggers: [{ id: 'tagger-a', blueSky: 1 }], cascade: false });
  // A checksum the tagger's file does not have.
  const manifest = JSON.parse(readFileSync(models.manifest, 'utf8'));
  manifest.models[0].files[0].sha256 = 'a'.repeat(64);
  manifest.models.push({ ...manifest.models[0], id: 'lbpcascade-animeface', kind: 'face-cascade', files: [{ name: 'lbpcascade_animeface.xml', url: 'http://127.0.0.1:9/x', sha256: null, size: null }] });
  writeFileSync(models.manifest, JSON.stringify(manifest));
  const configFile = writeConfig(dir, {
    ffmpeg: { ffmpegPath: '/nonexistent/ffmpeg' },
    disk: { reserve: '4000 TiB' },
    models: { dir: models.dir, manifest: models.manifest },
    faces: { detector: 'cascade' }, tags: { taggers: ['tagger-a'] },
    inference: { providers: ['cuda', 'cpu'] },
    notify: { desktop: false, webhook: { url: 'http://127.0.0.1:9/hook', secret: 'do-not-print' } },
    train: { sdScripts: '/nonexistent/sd-scripts', launcher: ['no-such-accelerate', 'launch'], maxTrainSteps: 10 },
  });
  const result = await runCli(['--config', configFile, 'doctor'], { cwd: dir });
  assert.equal(result.code, 1, result.stderr);
  const line = (name: string) => result.stdout.split('\n').find((text) => new RegExp(`^\\w+\\s+${name}\\s`).test(text)) ?? `(no ${name} line)`;
  assert.match(line('config'), /^OK/);
  assert.match(line('ffmpeg'), /^FAIL .*\/nonexistent\/ffmpeg.*ffmpeg\.ffmpegPath/);
  assert.match(line('disk'), /^FAIL .*under the reserve of 4000\.0 TiB: free some space or lower disk\.reserve/);
  assert.match(line('model tagger-a'), /^FAIL .*model\.onnx fails its checksum: run "celforge models fetch tagger-a" after removing/);
  assert.match(line('model lbpcascade-animeface'), /^FAIL .*lbpcascade_animeface\.xml missing: run "celforge models fetch lbpcascade-animeface"/);
  assert.match(line('onnx cuda'), /^WARN .*does not load: .*celforge falls back to CPU/);
  assert.match(line('onnx cpu'), /^OK\s+onnx cpu\s+loads/);
  assert.match(line('notify webhook'), /^FAIL .*127\.0\.0\.1:9 cannot be reached/);
  assert.match(line('kohya'), /^FAIL .*\/nonexistent\/sd-scripts does not exist: set train\.sdScripts/);
  assert.match(line('kohya launcher'), /^FAIL .*no-such-accelerate is not found/);
  assert.match(result.stdout, /\d+ problems to fix/);
  assert.ok(!result.stdout.includes('do-not-print'), 'no secret printed');

  writeFileSync(configFile, 'export default { disk: { reserve: "lots" } };\n');
  const bad = await runCli(['--config', configFile, 'doctor'], { cwd: dir });
  assert.match(bad.stdout, /^FAIL\s+config\s+.*invalid configuration\n\s+disk\.reserve = "lots" is not allowed/m, 'a bad config is named, and the other checks still run');
  assert.match(bad.stdout, /^OK\s+ffmpeg/m);
});

test('doctor on a sound set-up: every line OK or a warning, exit code 0', async (t) => {
  const dir = tempDir(t);
  const models = writeModelFolder(dir, { taggers: [{ id: 'tagger-a', blueSky: 1 }], cascade: true });
  const configFile = writeConfig(dir, {
    disk: { reserve: 0 }, models: { dir: models.dir, manifest: models.manifest }, faces: { detector: 'cascade' }, tags: { taggers: ['tagger-a'] },
    notify: { desktop: false },
  });
  const result = await runCli(['--config', configFile, 'doctor'], { cwd: path.dirname(configFile) });
  assert.equal(result.code, 0, result.stdout);
  assert.doesNotMatch(result.stdout, /^FAIL/m);
  assert.match(result.stdout, /^OK\s+model lbpcascade-animeface\s+present/m);
  assert.match(result.stdout, /everything needed is in place/);
  // inference.providers is 'auto' by default: one line on CUDA, one on what auto chose.
  const { cudaStatus } = await import('../../src/adapters/onnx-providers.ts');
  const cuda = await cudaStatus();
  if (cuda.kind === 'loads') {
    assert.match(result.stdout, /^OK\s+onnx cuda\s+loads; models run on the GPU$/m);
    assert.match(result.stdout, /^OK\s+onnx providers\s+auto: cuda, cpu$/m);
  } else {
    assert.match(result.stdout, /^OK\s+onnx providers\s+auto: cpu$/m);
    if (cuda.kind === 'not-installed') {
      assert.match(result.stdout, /^WARN\s+onnx cuda\s+does not load: the CUDA provider is not installed \(.*\); with an NVIDIA GPU, run "npx celforge gpu install"; celforge uses the CPU$/m);
    }
  }
});
