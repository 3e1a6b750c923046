import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig, validateConfig } from '../../src/config/load.ts';
import { parseSize } from '../../src/config/size.ts';
import { CelforgeError } from '../../src/errors.ts';
import { runCli, tempDir, writeConfig } from '../helpers.ts';

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
