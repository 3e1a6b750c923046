/**
 * The review page bound beyond loopback (0.0.0.0), over real HTTP: it will
 * not start without an allow-list of host names and a password; once
 * started, another Host is refused (DNS rebinding), nothing but the login
 * form answers without a session, a wrong password is refused and limited,
 * the right one opens a session cookie, and a POST from another origin is
 * refused even with the page's token and a session.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

const PASSWORD = 'correct horse battery staple';
const NAME = 'celforge.test';

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A raw request to 127.0.0.1 with the Host header we choose (fetch refuses to set Host). */
function raw(port: number, options: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ hostname: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path, headers: options.headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body, headers: response.headers }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

test('bound beyond loopback without review.allowedHosts and review.password, the daemon refuses to start and names both', async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'inbox'));
  const configFile = writeConfig(dir, { inbox: './inbox', library: './library', review: { port: 0, host: '0.0.0.0' } });
  const started = await runCli(['--config', configFile, 'start'], { cwd: dir, timeoutMs: 60_000 });
  assert.equal(started.code, 1, started.stdout + started.stderr);
  assert.match(started.stderr, /review\.allowedHosts.*required when review\.host is "0\.0\.0\.0"/);
  assert.match(started.stderr, /review\.password.*required when review\.host is "0\.0\.0\.0"/);

  const short = 'tiny-secret';
  writeConfig(dir, { inbox: './inbox', library: './library', review: { port: 0, host: '0.0.0.0', allowedHosts: [NAME], password: short } });
  const weak = await runCli(['--config', configFile, 'start'], { cwd: dir, timeoutMs: 60_000 });
  assert.equal(weak.code, 1);
  assert.match(weak.stderr, /review\.password.*at least 12 characters/);
  assert.ok(!weak.stderr.includes(short) && !weak.stdout.includes(short), 'the password is never printed');
});

test('bound to 0.0.0.0: Host allow-list, login with a session cookie, Origin on every POST, failed logins limited', async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'inbox'));
  const configFile = writeConfig(dir, {
    inbox: './inbox', library: './library', notify: { desktop: false },
    review: { port: 0, host: '0.0.0.0', allowedHosts: [NAME, '192.0.2.7'], password: PASSWORD },
  });
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  const url = await waitFor('the review page', () => /review page: (http:\/\/\S+\/)/.exec(daemon.output())?.[1], 60_000);
  const port = Number(new URL(url).port);
  assert.equal(new URL(url).hostname, NAME, 'the address shown is one the page answers to');
  const host = `${NAME}:${port}`;
  const origin = `http://${host}`;
  const get = (pathname: string, headers: Record<string, string> = {}) => raw(port, { path: pathname, headers: { Host: host, ...headers } });
  const post = (pathname: string, body: string, headers: Record<string, string>) =>
    raw(port, { method: 'POST', path: pathname, body, headers: { Host: host, 'Content-Type': 'application/x-www-form-urlencoded', ...headers } });
  const login = (password: string, headers: Record<string, string> = { Origin: origin }) =>
    post('/login', new URLSearchParams({ password }).toString(), headers);

  // Another name: a DNS-rebinding page reaches this address under its own name.
  assert.equal((await get('/', { Host: `evil.example:${port}` })).status, 421);
  assert.equal((await get('/api/status', { Host: `evil.example:${port}` })).status, 421);
  assert.equal((await get('/', { Host: `192.0.2.7:${port}` })).status, 303, 'an allowed address is answered (with the login)');

  // No session: only the login form.
  const front = await get('/');
  assert.equal(front.status, 303);
  assert.equal(front.headers.location, '/login');
  assert.ok(!front.body.includes('celforge-token'), 'no token without a login');
  assert.equal((await get('/api/status')).status, 401);
  assert.equal((await get('/app.js')).status, 401);
  const form = await get('/login');
  assert.equal(form.status, 200);
  assert.match(form.body, /<input name="password" type="password"/);

  // Wrong password; right password from another origin or with none.
  const wrong = await login('not the password at all');
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers['set-cookie'], undefined);
  assert.match(wrong.body, /Wrong password/);
  assert.equal((await login(PASSWORD, { Origin: `http://evil.example:${port}` })).status, 403, 'login from another page');
  assert.equal((await login(PASSWORD, {})).status, 403, 'a POST without Origin');
  assert.equal((await post('/login', '', { Origin: origin })).status, 400, 'an empty form');

  // Right password.
  const ok = await login(PASSWORD);
  assert.equal(ok.status, 303, ok.body);
  assert.equal(ok.headers.location, '/');
  const setCookie = String(ok.headers['set-cookie']);
  assert.match(setCookie, /^celforge_session=[0-9a-f]{64};/);
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  const cookie = setCookie.split(';')[0]!;
  const page = await get('/', { Cookie: cookie });
  assert.equal(page.status, 200);
  const token = /name="celforge-token" content="([0-9a-f]+)"/.exec(page.body)![1]!;
  assert.match(page.body, /name="celforge-login" content="on"/);
  const status = await get('/api/status', { Cookie: cookie });
  assert.equal(status.status, 200);
  assert.deepEqual(JSON.parse(status.body).jobs, []);

  // A POST with session and token: refused from another origin (DNS rebinding), without Origin, or without a session.
  const train = (headers: Record<string, string>) => raw(port, { method: 'POST', path: '/api/train', body: '{"now":true}', headers: { Host: host, 'Content-Type': 'application/json', 'X-Celforge-Token': token, ...headers } });
  assert.equal((await train({ Cookie: cookie, Origin: `http://evil.example:${port}` })).status, 403);
  assert.equal((await train({ Cookie: cookie, Origin: `http://${NAME}:1` })).status, 403, 'another port is another origin');
  assert.equal((await train({ Cookie: cookie })).status, 403);
  assert.equal((await train({ Origin: origin })).status, 401);
  assert.equal((await train({ Cookie: cookie, Origin: origin, 'X-Celforge-Token': 'f'.repeat(48) })).status, 403, 'wrong token');
  const allowed = await train({ Cookie: cookie, Origin: origin });
  assert.equal(allowed.status, 409, allowed.body);
  assert.match(allowed.body, /training is not configured/, 'through every check, to the route itself');

  // Logging out ends the session.
  const out = await post('/logout', '', { Cookie: cookie, Origin: origin });
  assert.equal(out.status, 303);
  assert.equal((await get('/api/status', { Cookie: cookie })).status, 401);

  // Failed logins are limited per address: after five, even the right password waits.
  for (let attempt = 0; attempt < 5; attempt += 1) assert.equal((await login(`wrong ${attempt}`)).status, 401);
  const throttled = await login(PASSWORD);
  assert.equal(throttled.status, 429);
  assert.ok(Number(throttled.headers['retry-after']) > 0);
  assert.equal(throttled.headers['set-cookie'], undefined);

  assert.ok(!daemon.output().includes(PASSWORD), 'the password is never logged');
});
