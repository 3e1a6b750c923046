/**
 * Execution providers: 'auto' (the default) becomes CUDA where it loads and
 * the CPU elsewhere, with one log line; and the CUDA install runs
 * onnxruntime-node's own script, started with an argument array and the
 * variable that makes it download, checked against a stand-in script and
 * against the real one (offline: a proxy that refuses).
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { cudaInstallCommand, cudaStatus, ORT_DIR, resolveProviders, runCudaInstall } from '../../src/adapters/onnx-providers.ts';
import { openOnnxModel } from '../../src/adapters/onnx-session.ts';
import { FileServer } from '../fixtures/file-server.ts';
import { writeTaggerModel } from '../fixtures/onnx-models.ts';
import { projectRoot, tempDir } from '../helpers.ts';

function capturingLogger() {
  const lines: string[] = [];
  const stream = new Writable({ write: (chunk, _encoding, done) => void (lines.push(JSON.parse(String(chunk)).msg), done()) });
  return { lines, log: pino({ level: 'debug' }, stream) };
}

test("providers 'auto' (the default) become the CPU where CUDA does not load, said in one log line with the command that installs it", async (t) => {
  const { loadConfig } = await import('../../src/config/load.ts');
  const dir = tempDir(t);
  const config = await loadConfig({ library: dir, cwd: dir });
  assert.deepEqual(config.inference.providers, ['auto'], "the default is 'auto'");
  const status = await cudaStatus();
  const { lines, log } = capturingLogger();
  const model = path.join(dir, 'tagger.onnx');
  writeTaggerModel(model, { size: 8, tags: [{ blue: 1, green: 0, red: 0, bias: 0 }] });

  const first = await openOnnxModel(model, config.inference.providers, log);
  const second = await openOnnxModel(model, ['auto'], log);
  assert.deepEqual(await resolveProviders(['auto'], log), first.providers);
  if (status.kind === 'loads') {
    assert.deepEqual(first.providers, ['cuda', 'cpu']);
    assert.deepEqual(lines, ['inference.providers auto: CUDA loads; models run on the GPU']);
    return;
  }
  // No GPU machine is lent to these tests: here CUDA is not installed, or does not load.
  assert.deepEqual(first.providers, ['cpu']);
  assert.deepEqual(second.providers, ['cpu']);
  assert.equal(lines.length, 1, `one line, not one per model: ${lines.join(' | ')}`);
  assert.match(lines[0]!, /^inference\.providers auto: the CPU, as /);
  if (status.kind === 'not-installed') assert.match(lines[0]!, /the CUDA provider is not installed \(.*libonnxruntime_providers_cuda\.so.*\); with an NVIDIA GPU, run "npx celforge gpu install"/);
  assert.deepEqual(await resolveProviders(['dml', 'cpu'], log), ['dml', 'cpu'], 'an explicit list is kept');
});

test('the CUDA install starts onnxruntime-node\'s install script with an argument array (no shell) and ONNXRUNTIME_NODE_INSTALL=true', async (t) => {
  // A folder name a shell would run: with an argument array it is only a name.
  const ortDir = path.join(tempDir(t), 'ort $(touch shell-ran) dir');
  mkdirSync(path.join(ortDir, 'script'), { recursive: true });
  const record = path.join(ortDir, 'record.json');
  writeFileSync(path.join(ortDir, 'script', 'install.js'), `require('fs').writeFileSync(${JSON.stringify(record)}, JSON.stringify({
    argv: process.argv.slice(1), cwd: process.cwd(),
    install: process.env.ONNXRUNTIME_NODE_INSTALL, npmConfig: process.env.npm_config_onnxruntime_node_install,
  }));`);
  const install = cudaInstallCommand(ortDir, { ...process.env, npm_config_onnxruntime_node_install: 'skip', ONNXRUNTIME_NODE_INSTALL: 'skip' });
  assert.equal(install.command, process.execPath);
  const { code } = await runCudaInstall(install, 'pipe');
  assert.equal(code, 0);
  const seen = JSON.parse(readFileSync(record, 'utf8'));
  assert.deepEqual(seen.argv, [path.join(ortDir, 'script', 'install.js')]);
  assert.equal(seen.cwd, ortDir);
  assert.equal(seen.install, 'true', "the script's own variable, read before npm_config_onnxruntime_node_install, says to install");
  assert.ok(!existsSync(path.join(process.cwd(), 'shell-ran')) && !existsSync(path.join(ortDir, '..', 'shell-ran')), 'no shell ran the name');
});

test("the real install script, so started, goes for the CUDA download even under npm run (offline here: a refused proxy); ONNXRUNTIME_NODE_INSTALL=cuda12 would end it silently", async (t) => {
  if (`${process.platform}/${process.arch}` !== 'linux/x64') {
    t.skip('onnxruntime-node has a CUDA download only on Linux x64');
    return;
  }
  // A copy of onnxruntime-node's package.json and script/, so that nothing can land in the real bin folder.
  const dir = tempDir(t);
  const ortDir = path.join(dir, 'ort');
  cpSync(path.join(ORT_DIR, 'script'), path.join(ortDir, 'script'), { recursive: true });
  cpSync(path.join(ORT_DIR, 'package.json'), path.join(ortDir, 'package.json'));
  symlinkSync(path.join(projectRoot, 'node_modules'), path.join(dir, 'node_modules'));
  const refused = await FileServer.start({ body: Buffer.alloc(0) });
  await refused.stop();
  // As `npm run` in the project sets them: install.js takes this for "a local install" and exits unless told to install.
  const env = {
    ...process.env, GLOBAL_AGENT_HTTP_PROXY: refused.url, npm_config_local_prefix: projectRoot, npm_package_json: path.join(projectRoot, 'package.json'),
  };
  const forced = await runCudaInstall(cudaInstallCommand(ortDir, env), 'pipe');
  assert.notEqual(forced.code, 0, forced.output);
  assert.match(forced.output, /ECONNREFUSED/, 'it tried to reach the NuGet feed');
  assert.ok(!existsSync(path.join(ortDir, 'bin')));

  const cuda12 = await runCudaInstall({ ...cudaInstallCommand(ortDir, env), env: { ...env, ONNXRUNTIME_NODE_INSTALL: 'cuda12' } }, 'pipe');
  assert.equal(cuda12.code, 0);
  assert.doesNotMatch(cuda12.output, /ECONNREFUSED|Downloading/, 'parseInstallFlag returns nothing for "cuda12": the local-install exit');
});
