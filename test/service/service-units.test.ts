/**
 * The service units with real paths filled in: the systemd units checked by
 * `systemd-analyze verify`, the launchd plist and the Task Scheduler XML
 * parsed and checked for the program and its arguments; install and
 * uninstall through a stand-in systemctl (no user session manager here).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { XMLParser } from 'fast-xml-parser';
import { NODE_HEAP_FLAG } from '../../src/cli/node-heap-flag.ts';
import { PROJECT, servicePlan, serviceValues } from '../../src/service/service-units.ts';
import { onPath, requireProgram } from '../fixtures/required-program.ts';
import { runCli, tempDir, writeConfig } from '../helpers.ts';

function configIn(t: Parameters<typeof tempDir>[0]) {
  // A folder with a space and a quote: the paths must survive each format's quoting.
  const dir = path.join(tempDir(t), "my 'dataset'");
  mkdirSync(dir);
  return { dir, configFile: writeConfig(dir, { library: './library' }) };
}

test('systemd user and system units pass systemd-analyze verify and start celforge with the config', async (t) => {
  const { dir, configFile } = configIn(t);
  // Without systemd the units are still checked below; only the verification is skipped.
  const systemdAnalyze = onPath('systemd-analyze');
  const canVerify = requireProgram(t, systemdAnalyze, 'install Debian\'s systemd package, as .ci/run does; the units are not verified');
  for (const system of [false, true]) {
    const printed = await runCli(['--config', configFile, 'service', 'install', '--print', ...(system ? ['--system'] : [])], { cwd: dir });
    assert.equal(printed.code, 0, printed.stderr);
    const [header, ...rest] = printed.stdout.split('\n');
    assert.equal(header, system ? '# /etc/systemd/system/celforge.service' : `# ${path.join(process.env.HOME!, '.config/systemd/user/celforge.service')}`);
    const text = rest.join('\n').split('\n# then:\n')[0]!;
    const unit = path.join(tempDir(t), 'celforge.service');
    writeFileSync(unit, text);
    if (canVerify) {
      const verify = spawnSync(systemdAnalyze, ['verify', unit], { encoding: 'utf8' });
      assert.equal(verify.status, 0, verify.stderr);
      assert.equal(verify.stderr.trim(), '', verify.stderr);
    }
    const execStart = text.split('\n').find((line) => line.startsWith('ExecStart='))!;
    assert.equal(execStart, `ExecStart=${process.execPath} ${NODE_HEAP_FLAG} ${path.join(PROJECT, 'bin', 'celforge.js')} --config "${configFile}" start`);
    assert.match(text, /^Restart=on-failure$/m);
    assert.doesNotMatch(text, /^MemoryDenyWriteExecute/m, 'V8 needs to write and execute memory');
    if (system) assert.match(text, new RegExp(`^User=${process.env.USER ?? 'root'}$`, 'm'));
    else assert.match(printed.stdout, /systemctl --user enable --now celforge\.service/);
  }
});

test('the launchd plist and the Windows task run node with celforge, the config and start', async (t) => {
  const { configFile } = configIn(t);
  const values = serviceValues(configFile, '/lib & more');
  const parser = new XMLParser({ ignoreAttributes: false, parseTagValue: false });

  const plist = parser.parse((await servicePlan('launchd', values, '/Users/me')).text).plist.dict;
  const entries = Object.fromEntries((plist.key as string[]).map((key, index) => [key, index]));
  assert.deepEqual(plist.array.string, [process.execPath, NODE_HEAP_FLAG, values.cli, '--config', configFile, 'start']);
  assert.equal(plist.string[0], 'com.celforge.daemon', 'the first string is the Label');
  assert.ok('RunAtLoad' in entries && 'KeepAlive' in entries);
  assert.ok((plist.string as string[]).includes('/lib & more/logs/celforge.err.log'), 'XML escaping round-trips');

  const plan = await servicePlan('windows-task', values, 'C:\\Users\\me');
  const task = parser.parse(plan.text).Task;
  assert.equal(task.Actions.Exec.Command, process.execPath);
  assert.equal(task.Actions.Exec.Arguments, `${NODE_HEAP_FLAG} "${values.cli}" --config "${configFile}" start`);
  assert.ok(task.Triggers.LogonTrigger, 'starts at logon');
  assert.equal(task.Settings.RestartOnFailure.Interval, 'PT1M');
  assert.deepEqual(plan.install[0], ['schtasks', '/Create', '/TN', 'celforge', '/XML', plan.target, '/F']);
});

test('install writes the user unit and enables it; uninstall disables and removes it', async (t) => {
  const { dir, configFile } = configIn(t);
  const home = tempDir(t);
  const bin = tempDir(t);
  const calls = path.join(bin, 'calls.txt');
  writeFileSync(path.join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >> "${calls}"\n`);
  chmodSync(path.join(bin, 'systemctl'), 0o755);
  const env = { ...process.env, HOME: home, PATH: `${bin}:${process.env.PATH}` };
  const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(PROJECT, 'bin', 'celforge.js'), '--config', configFile, 'service', ...args], { cwd: dir, env, encoding: 'utf8' });

  const installed = cli('install');
  assert.equal(installed.status, 0, installed.stderr);
  const unit = path.join(home, '.config', 'systemd', 'user', 'celforge.service');
  assert.match(readFileSync(unit, 'utf8'), /ExecStart=.*celforge\.js --config .* start/);
  assert.match(installed.stdout, /loginctl enable-linger/);
  assert.deepEqual(readFileSync(calls, 'utf8').trim().split('\n'), ['--user daemon-reload', '--user enable --now celforge.service']);
  assert.match(cli('status').stdout, /installed: .*celforge\.service/);

  const removed = cli('uninstall');
  assert.equal(removed.status, 0, removed.stderr);
  assert.equal(existsSync(unit), false);
  assert.equal(readFileSync(calls, 'utf8').trim().split('\n').at(-1), '--user disable --now celforge.service');
});
