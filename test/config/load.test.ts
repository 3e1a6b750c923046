import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig, validateConfig } from '../../src/config/load.ts';
import { parseSize } from '../../src/config/size.ts';
import { CelforgeError } from '../../src/errors.ts';
import { runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

test('defaults work with no config file: ./inbox and ./library under the working directory', async (t) => {
  const dir = tempDir(t);
  const config = await loadConfig({ cwd: dir });
  assert.deepEqual(config.inbox, [path.join(dir, 'inbox')]);
  assert.equal(config.library, path.join(dir, 'library'));
  assert.deepEqual(config.watch.extensions, ['.m2ts']);
  assert.equal(config.watch.settleSeconds, 30);
  assert.equal(config.dedup.policy, 'reference');
  assert.equal(config.source, null);
});

test('relative paths resolve against the config file, --library against the working directory', async (t) => {
  const dir = tempDir(t);
  const file = writeConfig(dir, { inbox: ['a', '/abs/b'], disk: { reserve: '2 GiB' } });
  const config = await loadConfig({ configPath: file, cwd: '/' });
  assert.deepEqual(config.inbox, [path.join(dir, 'a'), '/abs/b']);
  assert.equal(config.disk.reserve, 2 * 2 ** 30);
  const overridden = await loadConfig({ configPath: file, library: 'lib', cwd: '/tmp' });
  assert.equal(overridden.library, '/tmp/lib');
});

test('an invalid value names the key, the value and what is allowed', () => {
  const attempt = (raw: unknown) => {
    try {
      validateConfig(raw, 'my.config.ts', '/');
    } catch (error) {
      assert.ok(error instanceof CelforgeError);
      assert.equal(error.code, 'CONFIG_INVALID');
      return error.message;
    }
    assert.fail('expected the config to be refused');
  };
  const reserve = attempt({ disk: { reserve: 'lots' } });
  assert.match(reserve, /my\.config\.ts/);
  assert.match(reserve, /disk\.reserve = "lots"/);
  assert.match(reserve, /expected a size such as "10GiB"/);

  const policy = attempt({ dedup: { policy: 'delete' } });
  assert.match(policy, /dedup\.policy = "delete"/);
  assert.match(policy, /"reference"\|"move"/);

  const settle = attempt({ watch: { settleSeconds: -5 } });
  assert.match(settle, /watch\.settleSeconds = -5/);
  assert.match(settle, />=0/);

  assert.match(attempt({ watch: { extension: ['.mkv'] } }), /watch\.extension: unknown key/);
  assert.match(attempt({ watch: { extensions: ['mkv'] } }), /watch\.extensions\.0 = "mkv".*with its dot/);
  assert.match(attempt({ naming: { patterns: ['(unclosed'] } }), /naming\.patterns\.0 = "\(unclosed".*regular expression/);
});

test('sizes read as people write them', () => {
  assert.equal(parseSize('1024'), 1024);
  assert.equal(parseSize('10GiB'), 10 * 2 ** 30);
  assert.equal(parseSize('1.5 TB'), 1.5e12);
  assert.equal(parseSize('20 gib'), 20 * 2 ** 30);
  assert.equal(parseSize('ten'), undefined);
  assert.equal(parseSize('5 parsecs'), undefined);
});

test('the CLI stops on a bad config with the message and exit code 1, without a stack', async (t) => {
  const dir = tempDir(t);
  const file = writeConfig(dir, { library: path.join(dir, 'lib'), disk: { reserve: -3 } });
  const result = await runCli(['--config', file, 'start']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /disk\.reserve = -3 is not allowed: expected a size/);
  assert.match(result.stderr, new RegExp(file.replaceAll('.', '\\.')));
  assert.doesNotMatch(result.stderr, /\n\s+at /);
});

test('a config file that does not exist is named', async (t) => {
  const dir = tempDir(t);
  const result = await runCli(['--config', path.join(dir, 'missing.ts'), 'status']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /missing\.ts: config file not found/);
});

test('--library moves what defaults to the library (train.dir); an explicit train.dir stays', async (t) => {
  const dir = tempDir(t);
  const train = { sdScripts: './kohya', maxTrainSteps: 10 };
  const file = writeConfig(dir, { library: './library', train });
  const overridden = await loadConfig({ configPath: file, library: 'other', cwd: dir });
  assert.equal(overridden.library, path.join(dir, 'other'));
  assert.equal(overridden.train!.dir, path.join(dir, 'other', 'training'));
  assert.equal((await loadConfig({ configPath: file, cwd: dir })).train!.dir, path.join(dir, 'library', 'training'));
  const explicit = writeConfig(dir, { library: './library', train: { ...train, dir: './runs' } });
  assert.equal((await loadConfig({ configPath: explicit, library: 'other', cwd: dir })).train!.dir, path.join(dir, 'runs'));
});

test('a config file outside the project without `export default` is refused, as inside it', async (t) => {
  // A temporary folder has no package.json: tsx compiles the file to CommonJS there.
  const dir = tempDir(t);
  const bodies = {
    'nothing exported': `const config = { library: './elsewhere' };\n`,
    'named exports only': `export const library = './elsewhere';\n`,
    'module.exports': `module.exports = { library: './elsewhere' };\n`,
  };
  for (const [what, body] of Object.entries(bodies)) {
    const file = path.join(dir, 'daemon.config.ts');
    writeFileSync(file, body);
    const result = await runCli(['--config', file, 'status'], { cwd: dir });
    assert.equal(result.code, 1, `${what}: ${result.stdout}`);
    assert.match(result.stderr, /daemon\.config\.ts: cannot load the configuration: it has no default export; write `export default defineConfig/, what);
  }
  writeFileSync(path.join(dir, 'daemon.config.ts'), `export default { library: './elsewhere' };\n`);
  const fine = await runCli(['status'], { cwd: dir });
  assert.equal(fine.code, 0, fine.stderr);
  assert.match(fine.stdout, /elsewhere/);
});

test('a secret with a bad value never appears in the output or the logs, at start or on a reload', async (t) => {
  const dir = tempDir(t);
  const library = path.join(dir, 'library');
  const secrets = {
    accessKey: 'not-hex-hydrus-key-0c9a1f',
    webhook: 'webhook-secret-7d41b2',
    ntfy: 'ntfy-token-5e2f90',
  };
  const bad = {
    library,
    hydrus: { url: 'http://127.0.0.1:45869', accessKey: secrets.accessKey },
    notify: { desktop: false, ntfy: { topic: 'celforge', token: [secrets.ntfy] }, webhook: { url: 'http://127.0.0.1:9/', secret: { value: secrets.webhook } } },
  };
  const file = writeConfig(dir, bad);
  const seen: string[] = [];
  for (const command of [['start'], ['status'], ['hydrus', 'pull', ''], ['--verbose', 'status']]) {
    const result = await runCli(['--config', file, ...command], { cwd: dir });
    assert.equal(result.code, 1, `${command.join(' ')}: ${result.stdout}`);
    assert.match(result.stderr, /hydrus\.accessKey = \(hidden\) is not allowed: expected the 64-hex-digit access key/);
    assert.match(result.stderr, /notify\.ntfy\.token = \(hidden\)/);
    assert.match(result.stderr, /notify\.webhook\.secret = \(hidden\)/);
    seen.push(result.stdout, result.stderr);
  }

  // A daemon started with good secrets is sent a bad one (SIGHUP): the rejected reload is logged without it.
  const good = { library, notify: { desktop: false, webhook: { url: 'http://127.0.0.1:9/', secret: secrets.webhook } } };
  writeConfig(dir, good);
  const daemon = startDaemon(file);
  t.after(() => stopDaemon(daemon));
  await waitFor('the daemon to watch the inbox', () => daemon.output().includes('watching the inbox'), 60_000);
  writeConfig(dir, { ...good, hydrus: bad.hydrus, notify: { ...good.notify, ntfy: bad.notify.ntfy } });
  daemon.child.kill('SIGHUP');
  await waitFor('the reload to be refused', () => daemon.output().includes('configuration not reloaded'), 60_000);
  await stopDaemon(daemon);
  assert.match(daemon.output(), /hydrus\.accessKey = \(hidden\)/);
  seen.push(daemon.output());
  const logs = path.join(library, 'logs');
  for (const name of readdirSync(logs)) seen.push(readFileSync(path.join(logs, name), 'utf8'));

  for (const text of seen) {
    for (const secret of Object.values(secrets)) assert.ok(!text.includes(secret), `the secret ${secret} was printed:\n${text}`);
  }
});

test('a password written into a URL is hidden wherever the URL is quoted in a refusal', async (t) => {
  const dir = tempDir(t);
  const password = 'p%40ss-in-url-3c9e';
  const file = writeConfig(dir, {
    library: path.join(dir, 'library'),
    review: { port: 0, generator: { kind: 'a1111', url: `ftp://celforge:${password}@127.0.0.1:7860` } },
    hydrus: { url: `http://user:${password}@127.0.0.1:45869/x y`, accessKey: 'a'.repeat(64) },
  });
  const result = await runCli(['--config', file, 'status'], { cwd: dir });
  assert.equal(result.code, 1, result.stdout);
  assert.match(result.stderr, /review\.generator\.url = "ftp:\/\/celforge:\(hidden\)@127\.0\.0\.1:7860" is not allowed: expected an http:\/\/ or https:\/\/ address/);
  assert.ok(!result.stderr.includes(password) && !result.stderr.includes('p@ss-in-url'), result.stderr);
});

test('review files (a ComfyUI workflow, the wild prompts) are resolved against the config file\'s folder', () => {
  const dir = path.join(path.sep, 'configs', 'studio');
  const config = validateConfig({ review: { generator: { kind: 'comfyui', url: 'http://127.0.0.1:8188', workflow: 'flows/review.json' }, wildPrompts: 'wild.txt' } }, 'test config', dir);
  assert.equal(config.review.wildPrompts, path.join(dir, 'wild.txt'));
  assert.equal(config.review.generator?.kind === 'comfyui' && config.review.generator.workflow, path.join(dir, 'flows', 'review.json'));
});

test('review.generator.modelFolder is resolved against the config file\'s folder, for both kinds; an absolute one is kept', () => {
  const dir = path.join(path.sep, 'configs', 'studio');
  const a1111 = validateConfig({ review: { generator: { kind: 'a1111', url: 'http://127.0.0.1:7860', modelFolder: '../webui/models/Lora' } } }, 'test config', dir);
  assert.equal(a1111.review.generator?.modelFolder, path.join(path.sep, 'configs', 'webui', 'models', 'Lora'));
  const comfy = validateConfig({ review: { generator: { kind: 'comfyui', url: 'http://127.0.0.1:8188', workflow: 'flow.json', modelFolder: 'ComfyUI/models/loras' } } }, 'test config', dir);
  assert.equal(comfy.review.generator?.modelFolder, path.join(dir, 'ComfyUI', 'models', 'loras'));
  assert.equal(comfy.review.generator?.kind === 'comfyui' && comfy.review.generator.workflow, path.join(dir, 'flow.json'));
  const absolute = path.join(path.sep, 'opt', 'webui', 'models', 'Stable-diffusion');
  assert.equal(validateConfig({ review: { generator: { kind: 'a1111', url: 'http://127.0.0.1:7860', modelFolder: absolute } } }, 'test config', dir).review.generator?.modelFolder, absolute);
  assert.equal(validateConfig({ review: { generator: { kind: 'a1111', url: 'http://127.0.0.1:7860' } } }, 'test config', dir).review.generator?.modelFolder, undefined, 'not set stays not set');
});
