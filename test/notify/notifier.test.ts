/**
 * Notification channels against real local endpoints: ntfy and a webhook
 * over HTTP, the desktop channel through a stand-in notify-send on PATH
 * (the command node-notifier runs on Linux); grouping; failures that leave
 * the other channels working and never show a secret.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { desktopChannel, desktopSessionAvailable, ntfyChannel, webhookChannel } from '../../src/adapters/notify-channels.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { RecordServer } from '../fixtures/record-server.ts';
import { tempDir } from '../helpers.ts';

function captureLog() {
  const lines: string[] = [];
  return { lines, log: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }) };
}

test('ntfy and webhook get one grouped notification; the webhook body is signed; a failing channel does not stop the others and shows no secret', async (t) => {
  const server = await RecordServer.start();
  t.after(() => server.stop());
  const { lines, log } = captureLog();
  const notifier = new Notifier([
    ntfyChannel({ url: `${server.url}/ntfy`, topic: 'celforge-test', token: 'tk_secret_token' }),
    webhookChannel({ url: `${server.url}/hook`, secret: 'webhook-secret' }),
  ], { groupSeconds: 0.3, log });
  notifier.reviewUrl = 'http://127.0.0.1:8642/';
  notifier.emit({ kind: 'ready-for-review', source: '/inbox/Show/Show 01.m2ts', frames: 34046, kept: 9120, withFaces: 7010, tagged: 9120 });
  notifier.emit({ kind: 'model-missing', source: '/inbox/Show/Show 02.m2ts', models: ['wd-vit-tagger-v3'], command: 'celforge models fetch wd-vit-tagger-v3', reason: 'missing' });
  notifier.emit({ kind: 'waiting-for-disk', source: '/inbox/Show 03.m2ts', neededBytes: 3 * 2 ** 30, freeBytes: 2 ** 30, reserveBytes: 10 * 2 ** 30 });
  await new Promise((resolve) => setTimeout(resolve, 600));
  await notifier.flush();
  assert.equal(server.requests.length, 2, 'three events close together are one notification per channel');
  const ntfy = server.requests.find((request) => request.url === '/ntfy/celforge-test')!;
  assert.equal(ntfy.method, 'POST');
  assert.equal(ntfy.headers.title, 'celforge: 3 events');
  assert.equal(ntfy.headers.tags, 'ready-for-review,model-missing,waiting-for-disk');
  assert.equal(ntfy.headers.click, 'http://127.0.0.1:8642/');
  assert.equal(ntfy.headers.authorization, 'Bearer tk_secret_token');
  assert.match(ntfy.body, /Ready for review: Show 01\.m2ts: 9120 frames kept of 34046; 7010 with faces, 9120 tagged/);
  assert.match(ntfy.body, /Model missing: Show 02\.m2ts: run: celforge models fetch wd-vit-tagger-v3/);
  assert.match(ntfy.body, /Waiting for disk space: Show 03\.m2ts: needs 3\.0 GiB \+ 10\.0 GiB reserve, 1\.0 GiB free/);
  const hook = server.requests.find((request) => request.url === '/hook')!;
  assert.equal(hook.headers['content-type'], 'application/json');
  assert.equal(hook.headers['x-celforge-signature'], `sha256=${createHmac('sha256', 'webhook-secret').update(hook.body).digest('hex')}`);
  const payload = JSON.parse(hook.body);
  assert.deepEqual(payload.events.map((event: { kind: string }) => event.kind), ['ready-for-review', 'model-missing', 'waiting-for-disk']);
  assert.equal(payload.url, 'http://127.0.0.1:8642/');

  server.status = 500;
  notifier.emit({ kind: 'job-failed', source: '/inbox/x.m2ts', reason: 'truncated' });
  await notifier.flush();
  assert.equal(server.requests.length, 4, 'each channel tried once more');
  const warnings = lines.filter((line) => line.includes('notification not sent'));
  assert.equal(warnings.length, 2);
  assert.ok(warnings.some((line) => line.includes('ntfy answered 500')));
  assert.ok(lines.every((line) => !line.includes('tk_secret_token') && !line.includes('webhook-secret')), 'no secret in the log');
});

test('the desktop channel runs notify-send with the title and message; without a desktop session it is skipped with one log line', async (t) => {
  const dir = tempDir(t);
  const record = path.join(dir, 'argv.txt');
  const fake = path.join(dir, 'notify-send');
  writeFileSync(fake, `#!/bin/sh\nfor arg in "$@"; do printf '%s\\n' "$arg" >> "${record}"; done\n`);
  chmodSync(fake, 0o755);
  const saved = { PATH: process.env.PATH, DBUS: process.env.DBUS_SESSION_BUS_ADDRESS, DISPLAY: process.env.DISPLAY, WAYLAND: process.env.WAYLAND_DISPLAY };
  t.after(() => {
    process.env.PATH = saved.PATH;
    for (const [key, value] of [['DBUS_SESSION_BUS_ADDRESS', saved.DBUS], ['DISPLAY', saved.DISPLAY], ['WAYLAND_DISPLAY', saved.WAYLAND]] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });
  delete process.env.DBUS_SESSION_BUS_ADDRESS;
  delete process.env.DISPLAY;
  delete process.env.WAYLAND_DISPLAY;
  const { lines, log } = captureLog();
  assert.equal(desktopSessionAvailable(process.env, 'linux'), false);
  assert.equal(desktopChannel(log), null);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /desktop notifications skipped: no desktop session/);

  process.env.DBUS_SESSION_BUS_ADDRESS = 'unix:path=/run/user/1000/bus';
  process.env.PATH = `${dir}:${saved.PATH}`;
  const channel = desktopChannel(log)!;
  await channel.send({ title: 'Ready for review: Show 01.m2ts', message: '9120 frames kept of 34046', url: 'http://127.0.0.1:8642/', events: [] });
  const argv = readFileSync(record, 'utf8').split('\n');
  assert.ok(argv.includes('Ready for review: Show 01.m2ts'), argv.join(' | '));
  assert.ok(argv.some((arg) => arg.startsWith('9120 frames kept of 34046')), argv.join(' | '));
});

test('an ntfy message over ntfy\'s 4096-byte limit is shortened to stay a message: valid UTF-8, the error line kept', async (t) => {
  const server = await RecordServer.start();
  t.after(() => server.stop());
  const { log } = captureLog();
  const notifier = new Notifier([ntfyChannel({ url: server.url, topic: 'celforge' })], { groupSeconds: 0, log });
  // What the training supervisor sends when Kohya fails: the reason and the log's last 20 lines, here long and multi-byte.
  const logLines = Array.from({ length: 19 }, (_, i) => `steps: ${i * 5}%|████▌     | ${i * 60}/1200 [0${i}:12<10:48, 1.52it/s, avr_loss=0.0${i}] 警告: 学習率スケジューラ ${'—'.repeat(40)}`);
  logLines.push('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB 🙁');
  const message = `training failed: exit code 1. Last lines of /library/training/logs/run-1.log:\n${logLines.join('\n')}`;
  assert.ok(Buffer.byteLength(message) > 4096, `the test message is ${Buffer.byteLength(message)} bytes`);
  notifier.emit({ kind: 'training', outcome: 'failed', message });
  await notifier.flush();
  assert.equal(server.requests.length, 1);
  const { bytes, body } = server.requests[0]!;
  assert.ok(bytes.length < 4096, `ntfy counts a body of 4096 bytes or more as an attachment; sent ${bytes.length}`);
  assert.equal(new TextDecoder('utf-8', { fatal: true }).decode(bytes), body, 'no character split');
  assert.ok(body.startsWith('training failed: exit code 1. Last lines of /library/training/logs/run-1.log:\n'), body.slice(0, 100));
  assert.ok(body.endsWith('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB 🙁'), body.slice(-100));
  assert.match(body, /\n… \d+ bytes cut …\n/);

  notifier.emit({ kind: 'training', outcome: 'failed', message: 'training failed: exit code 1 ✗' });
  await notifier.flush();
  assert.equal(server.requests[1]!.body, 'training failed: exit code 1 ✗', 'a short message is sent as it is');
});

test('a reviewed checkpoint links to its comparison on the review page; other events and groups link to the page', async (t) => {
  const server = await RecordServer.start();
  t.after(() => server.stop());
  const { log } = captureLog();
  const notifier = new Notifier([
    ntfyChannel({ url: server.url, topic: 'celforge' }),
    webhookChannel({ url: `${server.url}/hook` }),
  ], { groupSeconds: 0, log });
  notifier.reviewUrl = 'http://127.0.0.1:8642/';
  notifier.emit({ kind: 'checkpoint-reviewed', version: 'v2', regressions: 2, templates: 3 });
  await notifier.flush();
  const ntfy = server.requests.find((request) => request.url === '/celforge')!;
  assert.equal(ntfy.headers.title, 'Checkpoint v2 reviewed');
  assert.equal(ntfy.body, '2 regressions');
  assert.equal(ntfy.headers.click, 'http://127.0.0.1:8642/#compare/v2');
  assert.equal(JSON.parse(server.requests.find((request) => request.url === '/hook')!.body).url, 'http://127.0.0.1:8642/#compare/v2');

  server.requests.length = 0;
  notifier.emit({ kind: 'training', outcome: 'finished', message: 'run-0002 saved celforge.safetensors' });
  await notifier.flush();
  assert.deepEqual(server.requests.map((request) => request.headers.click ?? JSON.parse(request.body).url), ['http://127.0.0.1:8642/', 'http://127.0.0.1:8642/']);

  server.requests.length = 0;
  notifier.emit({ kind: 'checkpoint-reviewed', version: 'v3', regressions: 0, templates: 3 });
  notifier.emit({ kind: 'job-failed', source: '/inbox/x.m2ts', reason: 'truncated' });
  await notifier.flush();
  assert.equal(server.requests.length, 2, 'one grouped notification per channel');
  assert.deepEqual(server.requests.map((request) => request.headers.click ?? JSON.parse(request.body).url), ['http://127.0.0.1:8642/', 'http://127.0.0.1:8642/']);

  server.requests.length = 0;
  notifier.reviewUrl = null;
  notifier.emit({ kind: 'checkpoint-reviewed', version: 'v3', regressions: 0, templates: 3 });
  await notifier.flush();
  assert.equal(server.requests.find((request) => request.url === '/celforge')!.headers.click, undefined, 'no review page, no link');
});
