/**
 * The review page's HTTP server (node:http): the page itself, its login
 * (beyond loopback only), and its JSON API under /api/. Loopback only unless
 * configured otherwise; who may talk to it is ReviewAccess's rule (Host,
 * Origin, login). Every request that changes something also needs the page's
 * token (header X-Celforge-Token), so another web page cannot make the
 * browser change the library. Pictures are served by hash, by job and
 * frame number, or by a checkpoint review's version, template folder and
 * seed (each matched to its pattern), never by a path taken from the request.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CelforgeError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { ReviewAccess } from './review-access.ts';
import { ApiError } from './api-request.ts';
import { routeApi, type ReviewContext } from './review-api.ts';

const PAGE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'page');
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/characters.js': { file: 'characters.js', type: 'text/javascript; charset=utf-8' },
  '/compare.js': { file: 'compare.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};
const PAGE_HEADERS = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'X-Frame-Options': 'DENY' };
const MAX_BODY = 1 << 20;
const MAX_LOGIN_BODY = 4096;
const loginForm = z.strictObject({ password: z.string().min(1, 'enter the password') });

export interface ReviewServerOptions {
  host: string;
  port: number;
  token: string;
  log: Logger;
  /** Required when host reaches beyond loopback (see ReviewAccess). */
  allowedHosts?: string[] | undefined;
  /** Required when host reaches beyond loopback; a secret, never logged. */
  password?: string | undefined;
}

export interface ReviewServer {
  url: string;
  close(): Promise<void>;
}

export async function startReviewServer(context: ReviewContext, options: ReviewServerOptions): Promise<ReviewServer> {
  const access = await ReviewAccess.create(options);
  const server: Server = createServer((request, response) => {
    handle(request, response, context, options, access).catch((error: unknown) => {
      options.log.error({ url: request.url }, `review page: ${errorMessage(error)}`);
      if (!response.headersSent) sendJson(response, 500, { error: 'internal error; see the daemon log' });
      else response.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(error.code === 'EADDRINUSE'
        ? new CelforgeError('CONFIG_INVALID', `review page: port ${options.port} on ${options.host} is in use; set review.port or start with --port`)
        : error);
    });
    server.listen(options.port, options.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = options.host === '0.0.0.0' || options.host === '::'
    ? options.allowedHosts?.[0] ?? '127.0.0.1'
    : options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${shownHost.includes(':') && !shownHost.startsWith('[') ? `[${shownHost}]` : shownHost}:${port}/`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

async function handle(request: IncomingMessage, response: ServerResponse, context: ReviewContext, options: ReviewServerOptions, access: ReviewAccess): Promise<void> {
  if (!access.hostAllowed(request.headers.host)) return sendJson(response, 421, { error: 'this server answers to its own address only (review.allowedHosts)' });
  const url = new URL(request.url ?? '/', 'http://review.invalid');
  const method = request.method ?? 'GET';
  const reads = method === 'GET' || method === 'HEAD';
  if (!reads) {
    const origin = access.originAllowed(header(request.headers.origin), request.headers.host);
    if (!origin.ok) return sendJson(response, 403, { error: origin.reason });
  }

  const login = access.login;
  const session = login?.sessionOf(request.headers.cookie) ?? null;
  if (url.pathname === '/login' || url.pathname === '/logout') {
    if (!login) return redirect(response, '/');
    if (url.pathname === '/logout' && method === 'POST') {
      response.setHeader('Set-Cookie', login.logout(session ?? ''));
      return redirect(response, '/login');
    }
    if (url.pathname === '/login' && method === 'POST') return loginAttempt(request, response, access);
    if (url.pathname === '/login' && reads) return sendLoginPage(response, 200, '');
    return sendJson(response, 405, { error: `${method} is not allowed here` });
  }

  const page = STATIC[url.pathname];
  if (login && !session && url.pathname !== '/style.css') {
    if (url.pathname === '/' && reads) return redirect(response, '/login');
    return sendJson(response, 401, { error: 'log in first: open the review page' });
  }
  if (page && reads) {
    let text = await readFile(path.join(PAGE_DIR, page.file), 'utf8');
    if (page.file === 'index.html') text = text.replace('%TOKEN%', options.token).replace('%LOGIN%', login ? 'on' : 'off');
    response.writeHead(200, { 'Content-Type': page.type, ...PAGE_HEADERS });
    response.end(text);
    return;
  }
  if (!url.pathname.startsWith('/api/')) return sendJson(response, 404, { error: 'not found' });
  if (!reads && !tokenMatches(request.headers['x-celforge-token'], options.token)) {
    return sendJson(response, 403, { error: 'missing or wrong X-Celforge-Token: reload the review page' });
  }
  let body: unknown = undefined;
  if (method === 'POST') {
    try {
      body = await readJson(request);
    } catch (error) {
      return sendJson(response, 400, { error: errorMessage(error) });
    }
  }
  try {
    const result = await routeApi(context, method, url, body);
    if (result.kind === 'picture') {
      response.writeHead(200, { 'Content-Type': result.type, 'Cache-Control': 'private, max-age=3600', 'X-Content-Type-Options': 'nosniff' });
      response.end(result.bytes);
      return;
    }
    sendJson(response, 200, result.value);
  } catch (error) {
    if (error instanceof ApiError) return sendJson(response, error.status, { error: error.message });
    if (error instanceof CelforgeError) return sendJson(response, error.code === 'FILE_NOT_FOUND' ? 404 : error.code === 'LIBRARY_LOCKED' ? 409 : 400, { error: error.message });
    throw error;
  }
}

async function loginAttempt(request: IncomingMessage, response: ServerResponse, access: ReviewAccess): Promise<void> {
  let text: string;
  try {
    text = await readBody(request, MAX_LOGIN_BODY);
  } catch (error) {
    return sendLoginPage(response, 400, errorMessage(error));
  }
  const form = loginForm.safeParse(Object.fromEntries(new URLSearchParams(text)));
  if (!form.success) return sendLoginPage(response, 400, 'expected a form with one field, password');
  const outcome = await access.login!.attempt(form.data.password, request.socket.remoteAddress ?? 'unknown');
  if (outcome.kind === 'throttled') {
    response.setHeader('Retry-After', String(outcome.retryAfterSeconds));
    return sendLoginPage(response, 429, `Too many failed logins from this address: try again in ${Math.ceil(outcome.retryAfterSeconds / 60)} minute(s).`);
  }
  if (outcome.kind === 'wrong') return sendLoginPage(response, 401, 'Wrong password.');
  response.setHeader('Set-Cookie', outcome.cookie);
  redirect(response, '/');
}

async function sendLoginPage(response: ServerResponse, status: number, message: string): Promise<void> {
  const text = (await readFile(path.join(PAGE_DIR, 'login.html'), 'utf8')).replace('%MESSAGE%', escapeHtml(message));
  response.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', ...PAGE_HEADERS });
  response.end(text);
}

function redirect(response: ServerResponse, location: string): void {
  response.writeHead(303, { Location: location, 'Cache-Control': 'no-store' });
  response.end();
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function tokenMatches(given: string | string[] | undefined, token: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(request: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error(`request body over ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const text = await readBody(request, MAX_BODY);
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new Error('the request body is not JSON');
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  response.end(JSON.stringify(value));
}
