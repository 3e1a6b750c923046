/**
 * The review page's HTTP server (node:http): the page itself, and its JSON
 * API under /api/. Loopback only unless configured otherwise. Every request
 * that changes something needs the page's token (header X-Celforge-Token),
 * whatever address it comes from, so another web page cannot make the
 * browser change the library; requests naming another host are refused
 * (DNS rebinding). Pictures are served by hash or by job and frame number,
 * never by a path taken from the request.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CelforgeError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { ApiError, routeApi, type ReviewContext } from './review-api.ts';

const PAGE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'page');
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};
const MAX_BODY = 1 << 20;

export interface ReviewServer {
  url: string;
  close(): Promise<void>;
}

export async function startReviewServer(context: ReviewContext, options: { host: string; port: number; token: string; log: Logger }): Promise<ReviewServer> {
  const server: Server = createServer((request, response) => {
    handle(request, response, context, options).catch((error: unknown) => {
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
  const shownHost = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${shownHost}:${port}/`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

async function handle(request: IncomingMessage, response: ServerResponse, context: ReviewContext, options: { host: string; token: string }): Promise<void> {
  if (!hostAllowed(request.headers.host, options.host)) return sendJson(response, 421, { error: 'this server answers to its own address only' });
  const url = new URL(request.url ?? '/', 'http://review.invalid');
  const method = request.method ?? 'GET';
  const page = STATIC[url.pathname];
  if (page && method === 'GET') {
    let text = await readFile(path.join(PAGE_DIR, page.file), 'utf8');
    if (page.file === 'index.html') text = text.replace('%TOKEN%', options.token);
    response.writeHead(200, { 'Content-Type': page.type, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer' });
    response.end(text);
    return;
  }
  if (!url.pathname.startsWith('/api/')) return sendJson(response, 404, { error: 'not found' });
  if (method !== 'GET' && method !== 'HEAD' && !tokenMatches(request.headers['x-celforge-token'], options.token)) {
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
    if (result.kind === 'file') {
      response.writeHead(200, { 'Content-Type': result.type, 'Cache-Control': 'private, max-age=3600', 'X-Content-Type-Options': 'nosniff' });
      response.end(await readFile(result.file));
      return;
    }
    sendJson(response, 200, result.value);
  } catch (error) {
    if (error instanceof ApiError) return sendJson(response, error.status, { error: error.message });
    if (error instanceof CelforgeError) return sendJson(response, error.code === 'FILE_NOT_FOUND' ? 404 : error.code === 'LIBRARY_LOCKED' ? 409 : 400, { error: error.message });
    throw error;
  }
}

function hostAllowed(header: string | undefined, configured: string): boolean {
  if (configured === '0.0.0.0' || configured === '::') return true;
  if (!header) return false;
  const name = header.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return ['localhost', '127.0.0.1', '::1', configured.toLowerCase()].includes(name);
}

function tokenMatches(given: string | string[] | undefined, token: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error('request body over 1 MiB');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new Error('the request body is not JSON');
  }
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  response.end(JSON.stringify(value));
}
