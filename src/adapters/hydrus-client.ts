/**
 * The Hydrus Network Client API: imports images into a user's Hydrus client
 * and reads and writes their tags on one local tag service, named in the
 * config ("my tags").
 *
 * Written against the Client API documentation,
 * https://hydrusnetwork.github.io/hydrus/developer_api.html
 * (docs/developer_api.md in hydrusnetwork/hydrus); each request names its
 * section there. The access key travels only in the
 * Hydrus-Client-API-Access-Key header: no error, message or property this
 * module makes contains it, even where Hydrus echoes it back.
 *
 * Failures come in two kinds so that the daemon can tell them apart:
 * - HydrusUnreachable: no answer (connection refused or reset, no answer in
 *   time). The Hydrus client is probably closed; try again later.
 * - HydrusRefused: Hydrus answered with an error status. Only 503 (busy or
 *   shutting down) and 509 (out of bandwidth) are `retryable`; a missing,
 *   unknown or under-privileged key (401/403) or a bad request (400) fails the
 *   same way every time.
 *
 * Hydrus cleans every tag it is given (lower case, runs of spaces collapsed,
 * leading hyphens dropped), so tags read back may differ from those sent.
 * One of its rules would turn a catalog tag into another: a tag that starts
 * with a single colon and holds no other (the emoticons `:d`, `:o`, `:3`) is
 * stored as `::d`, so that its colon is not read as an empty namespace. This
 * adapter sends `::d` for `:d` and reads `::d` back as `:d`, as Hydrus's own
 * sidecar exporter does, so that the catalog never sees the doubled form.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CelforgeError } from '../errors.ts';
import { fetchFailureReason } from './fetch-failure.ts';

export interface HydrusConfig {
  url: string;
  accessKey: string;
  /** A local tag service's name as Hydrus shows it ("my tags"), or its service key. */
  tagService: string;
  timeoutMs?: number;
}

/** `hash` is null only when Hydrus failed before hashing a file it read from a path. */
export type AddFileResult =
  | { hash: string; status: 'imported' | 'already' | 'deleted' | 'vetoed'; note?: string }
  | { hash: string | null; status: 'failed'; note?: string };

export interface FileTags {
  current: string[];
  deleted: string[];
}

/** Hydrus answered nothing: it is closed, or hung. Worth trying again later. */
export class HydrusUnreachable extends Error {
  readonly url: string;
  readonly retryable = true;

  /** `request` names what was asked ("GET http://…/get_services (tags …)"); it defaults to the URL. */
  constructor(url: string, detail: string, cause: unknown, request = url) {
    super(`Hydrus is not reachable, at ${request}: ${detail}. Is the Hydrus client running, with its Client API service on?`, { cause });
    this.name = 'HydrusUnreachable';
    this.url = url;
  }
}

/** Hydrus answered with an error status, or with something this adapter cannot read. */
export class HydrusRefused extends Error {
  readonly url: string;
  readonly status: number;
  /** What Hydrus sent back, with the access key blanked out. */
  readonly body: string;
  readonly retryable: boolean;

  constructor(url: string, status: number, body: string, message: string) {
    super(message);
    this.name = 'HydrusRefused';
    this.url = url;
    this.status = status;
    this.body = body;
    this.retryable = RETRYABLE_STATUSES.has(status);
  }
}

/** POST /add_files/add_file: "status". */
const ADD_FILE_STATUSES: Record<number, AddFileResult['status']> = { 1: 'imported', 2: 'already', 3: 'deleted', 4: 'failed', 7: 'vetoed' };
/** The Services Object: "5 - a local tag domain like 'my tags'". */
const LOCAL_TAG_SERVICE = 5;
/** POST /add_tags/add_tags: actions on a local tag service; JSON keys, so strings. */
const ACTION_ADD = '0';
const ACTION_DELETE = '1';
/** GET /get_files/file_metadata, "tags": storage_tags statuses. */
const STATUS_CURRENT = '0';
const STATUS_DELETED = '2';
/** GET /get_files/file_metadata: "the client usually fetches file metadata in batches of 256". */
export const METADATA_BATCH = 256;
/** POST /add_files/add_file: "file imports for large files may take several seconds, and longer if the client is busy". */
const DEFAULT_TIMEOUT_MS = 60_000;
const ACCESS_KEY_HEADER = 'Hydrus-Client-API-Access-Key';
/**
 * HydrusTags.CleanTag (hydrus/core/HydrusTags.py lines 100-104 at
 * hydrusnetwork/hydrus 62a6fa0c) prefixes a colon where
 * HydrusText.re_leading_single_colon_and_no_more_colons, `^:(?=[^:]+$)`,
 * matches: ":D -> ::D".
 */
const HYDRUS_DOUBLES_COLON = /^:(?=[^:]+$)/;
/**
 * The way back: HydrusText.re_leading_double_colon, `^::(?!:)`, which
 * ClientMetadataMigrationImporters.py line 247 uses when it writes tags out
 * ("turning ::) into :)").
 */
const HYDRUS_DOUBLED_COLON = /^::(?!:)/;
/** Busy or shutting down (503), out of bandwidth (509): the same request can succeed later. */
const RETRYABLE_STATUSES = new Set([503, 509]);
const STATUS_HINTS: Record<number, string> = {
  400: 'Hydrus did not accept the request',
  401: 'no access key reached Hydrus',
  403: 'the access key is unknown to Hydrus or lacks a permission; check it under services > review services > client api',
  404: 'Hydrus has no such thing, or is too old for this request',
  419: 'the session key has expired',
  500: 'Hydrus hit an internal error',
  503: 'Hydrus is busy or shutting down; try again later',
  509: 'the Client API service is out of bandwidth; try again later',
};

type Query = Record<string, string>;

interface Call {
  query?: Query;
  json?: unknown;
  bytes?: Uint8Array<ArrayBuffer>;
  /** What the request is about, for errors: a file, a number of files. */
  about?: string;
}

export class HydrusClient {
  readonly #base: string;
  readonly #accessKey: string;
  readonly #tagService: string;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  #tagServiceKey: string | undefined;

  constructor(config: HydrusConfig, fetchImpl: typeof fetch = fetch) {
    this.#base = baseUrl(config.url);
    // Checked here because a header holding a newline or a typo would otherwise reach an error message.
    if (!/^[0-9a-f]{64}$/i.test(config.accessKey)) {
      throw new CelforgeError(
        'CONFIG_INVALID',
        'The Hydrus access key must be 64 hexadecimal characters, as Hydrus shows it under services > review services > client api.',
      );
    }
    if (!config.tagService.trim()) {
      throw new CelforgeError('CONFIG_INVALID', 'Name the Hydrus tag service to write tags to, such as "my tags".');
    }
    this.#accessKey = config.accessKey;
    this.#tagService = config.tagService;
    this.#timeoutMs = config.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#fetch = fetchImpl;
  }

  /** GET /api_version: answers without checking the key. */
  async apiVersion(): Promise<{ version: number; hydrusVersion?: number }> {
    const reply = (await this.#call('GET', '/api_version')) as { version?: unknown; hydrus_version?: unknown };
    if (typeof reply?.version !== 'number') throw this.#unreadable('GET', '/api_version', reply, 'no "version"');
    return typeof reply.hydrus_version === 'number' ? { version: reply.version, hydrusVersion: reply.hydrus_version } : { version: reply.version };
  }

  /** GET /verify_access_key: what the key may do (permission numbers as in /request_new_permissions). */
  async verifyAccessKey(): Promise<{ name: string; permitsEverything: boolean; basicPermissions: number[] }> {
    const reply = (await this.#call('GET', '/verify_access_key')) as { name?: unknown; permits_everything?: unknown; basic_permissions?: unknown };
    if (!Array.isArray(reply?.basic_permissions)) throw this.#unreadable('GET', '/verify_access_key', reply, 'no "basic_permissions"');
    return {
      name: String(reply.name ?? ''),
      permitsEverything: reply.permits_everything === true,
      basicPermissions: reply.basic_permissions as number[],
    };
  }

  /**
   * GET /get_services: the key of the configured local tag service. Hydrus
   * advises against storing names (they can change), so a service key is
   * accepted too.
   */
  async tagServiceKey(): Promise<string> {
    if (this.#tagServiceKey) return this.#tagServiceKey;
    const reply = await this.#call('GET', '/get_services');
    const services = servicesOf(reply);
    if (!services) throw this.#unreadable('GET', '/get_services', reply, 'neither a "services_v2" list nor a "services" object (Hydrus may be too old)');
    const wanted = this.#tagService;
    const matches = services.filter(([key, service]) => service.name === wanted || key === wanted.toLowerCase());
    const local = matches.find(([, service]) => service.type === LOCAL_TAG_SERVICE);
    if (local) {
      this.#tagServiceKey = local[0];
      return local[0];
    }
    const available = services.filter(([, service]) => service.type === LOCAL_TAG_SERVICE).map(([, service]) => `"${service.name}"`);
    const problem = matches.length
      ? `"${wanted}" is a ${matches[0][1].type_pretty ?? `type ${matches[0][1].type}`}, not a local tag service`
      : `Hydrus at ${this.#base} has no service named "${wanted}"`;
    throw new CelforgeError(
      'CONFIG_INVALID',
      `${problem}. Its local tag services: ${available.length ? available.join(', ') : 'none'}. Set the Hydrus tag service to one of them.`,
    );
  }

  /**
   * POST /add_files/add_file. By default sends the file's bytes, since Hydrus
   * may run on another machine; `send: 'path'` asks Hydrus to read the path
   * itself, which must then be valid on Hydrus's machine.
   */
  async addFile(file: string, options: { send?: 'bytes' | 'path' } = {}): Promise<AddFileResult> {
    let reply: unknown;
    let ownHash: string | null = null;
    if (options.send === 'path') {
      reply = await this.#call('POST', '/add_files/add_file', { json: { path: file }, about: file });
    } else {
      const bytes = await readFile(file).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') throw new CelforgeError('FILE_NOT_FOUND', `Cannot send ${file} to Hydrus: it does not exist.`, { file, cause: error });
        throw error;
      });
      ownHash = createHash('sha256').update(bytes).digest('hex');
      reply = await this.#call('POST', '/add_files/add_file', { bytes, about: file });
    }
    const { status, hash, note } = (reply ?? {}) as { status?: unknown; hash?: unknown; note?: unknown };
    const outcome = typeof status === 'number' ? ADD_FILE_STATUSES[status] : undefined;
    if (!outcome) throw this.#unreadable('POST', '/add_files/add_file', reply, `a status celforge does not know (the documented ones are 1, 2, 3, 4 and 7), for ${file}`);
    const known = typeof hash === 'string' && hash ? hash : ownHash;
    const extra = typeof note === 'string' && note ? { note } : {};
    if (outcome === 'failed') return { hash: known, status: outcome, ...extra };
    if (!known) throw this.#unreadable('POST', '/add_files/add_file', reply, `no hash for ${file}`);
    return { hash: known, status: outcome, ...extra };
  }

  /** POST /add_tags/add_tags on the configured service. Idempotent in Hydrus, so a repeat is harmless. */
  async addTags(hashes: string[], add: string[], remove: string[]): Promise<void> {
    if (hashes.length === 0 || (add.length === 0 && remove.length === 0)) return;
    const serviceKey = await this.tagServiceKey();
    const actions: Record<string, string[]> = {};
    if (add.length) actions[ACTION_ADD] = add.map(toHydrusTag);
    if (remove.length) actions[ACTION_DELETE] = remove.map(toHydrusTag);
    await this.#call('POST', '/add_tags/add_tags', {
      json: { hashes, service_keys_to_actions_to_tags: { [serviceKey]: actions } },
      about: `${hashes.length} file(s)`,
    });
  }

  /**
   * GET /get_files/search_files over the configured service, in "all my
   * files". Tags must all match; "-tag" excludes. Hydrus searches display tags
   * (siblings and parents applied), and an empty list matches nothing.
   */
  async searchFiles(tags: string[]): Promise<string[]> {
    const serviceKey = await this.tagServiceKey();
    const reply = (await this.#call('GET', '/get_files/search_files', {
      query: { tags: JSON.stringify(tags), tag_service_key: serviceKey, return_hashes: 'true', return_file_ids: 'false' },
      about: `tags ${JSON.stringify(tags)}`,
    })) as { hashes?: unknown };
    if (!Array.isArray(reply?.hashes)) throw this.#unreadable('GET', '/get_files/search_files', reply, 'no "hashes"');
    return reply.hashes as string[];
  }

  /**
   * GET /get_files/file_metadata, METADATA_BATCH files per request: each
   * file's storage tags on the configured service. A hash Hydrus has never
   * seen is left out of the map.
   */
  async tagsOf(hashes: string[]): Promise<Map<string, FileTags>> {
    const serviceKey = await this.tagServiceKey();
    const unique = [...new Set(hashes.map((hash) => hash.toLowerCase()))];
    const result = new Map<string, FileTags>();
    for (let start = 0; start < unique.length; start += METADATA_BATCH) {
      const batch = unique.slice(start, start + METADATA_BATCH);
      const reply = (await this.#call('GET', '/get_files/file_metadata', {
        query: { hashes: JSON.stringify(batch), include_services_object: 'false' },
        about: `${batch.length} file(s) from ${batch[0]}`,
      })) as { metadata?: unknown };
      if (!Array.isArray(reply?.metadata)) throw this.#unreadable('GET', '/get_files/file_metadata', reply, 'no "metadata"');
      for (const row of reply.metadata as MetadataRow[]) {
        if (row.file_id === null || row.file_id === undefined) continue;
        if (!row.tags) throw this.#unreadable('GET', '/get_files/file_metadata', row, `no "tags" for ${row.hash} (Hydrus may be too old)`);
        const storage = row.tags[serviceKey]?.storage_tags ?? {};
        result.set(row.hash, { current: (storage[STATUS_CURRENT] ?? []).map(fromHydrusTag), deleted: (storage[STATUS_DELETED] ?? []).map(fromHydrusTag) });
      }
    }
    return result;
  }

  async #call(method: 'GET' | 'POST', endpoint: string, call: Call = {}): Promise<unknown> {
    const url = this.#base + endpoint;
    const where = `${method} ${url}${call.about ? ` (${call.about})` : ''}`;
    const headers: Record<string, string> = { [ACCESS_KEY_HEADER]: this.#accessKey };
    let body: string | Uint8Array<ArrayBuffer> | undefined;
    if (call.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(call.json);
    } else if (call.bytes) {
      headers['Content-Type'] = 'application/octet-stream';
      body = call.bytes;
    }
    let status: number;
    let text: string;
    try {
      const response = await this.#fetch(url + queryString(call.query), { method, headers, body, signal: AbortSignal.timeout(this.#timeoutMs) });
      status = response.status;
      text = await response.text();
    } catch (error) {
      throw new HydrusUnreachable(url, this.#redact(fetchFailureReason(error, `${this.#timeoutMs} ms`)), error, where);
    }
    text = this.#redact(text);
    if (status >= 200 && status < 300) {
      if (!text) return undefined;
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new HydrusRefused(url, status, text, `Hydrus answered ${where} with something that is not JSON: ${excerpt(text)}`);
      }
    }
    throw refusal(url, where, status, text);
  }

  #redact(text: string): string {
    return text.replace(new RegExp(this.#accessKey, 'gi'), '[access key]');
  }

  #unreadable(method: string, endpoint: string, reply: unknown, what: string): HydrusRefused {
    const url = this.#base + endpoint;
    const text = this.#redact(JSON.stringify(reply) ?? String(reply));
    return new HydrusRefused(url, 200, text, `Hydrus answered ${method} ${url} with ${what}: ${excerpt(text)}`);
  }
}

interface MetadataRow {
  file_id?: number | null;
  hash: string;
  tags?: Record<string, { storage_tags?: Record<string, string[]> }>;
}

interface ServiceEntry {
  name: string;
  type: number;
  type_pretty?: string;
}

/**
 * The Services Object as [key, service] pairs, from either generation of
 * /get_services: the list `services_v2` (each with its `service_key`), which
 * Hydrus sends since v668 and the Client API docs steer to, or the older
 * dict `services` keyed by service key, which is all that Hydrus before v668
 * sends (docs/developer_api.md "The Services Object"; docs/old_changelog.html,
 * version 668). Null when the reply holds neither.
 */
function servicesOf(reply: unknown): Array<[string, ServiceEntry]> | null {
  const { services_v2: list, services: dict } = (reply ?? {}) as { services_v2?: unknown; services?: unknown };
  const valid = (service: unknown): service is ServiceEntry =>
    Boolean(service) && typeof (service as ServiceEntry).name === 'string' && typeof (service as ServiceEntry).type === 'number';
  if (Array.isArray(list)) {
    return list
      .filter((service): service is ServiceEntry & { service_key: string } => valid(service) && typeof (service as { service_key?: unknown }).service_key === 'string')
      .map((service) => [service.service_key.toLowerCase(), service]);
  }
  if (dict && typeof dict === 'object' && !Array.isArray(dict)) {
    return Object.entries(dict as Record<string, unknown>).filter((entry): entry is [string, ServiceEntry] => valid(entry[1]));
  }
  return null;
}

function toHydrusTag(tag: string): string {
  return HYDRUS_DOUBLES_COLON.test(tag) ? `:${tag}` : tag;
}

function fromHydrusTag(tag: string): string {
  return tag.replace(HYDRUS_DOUBLED_COLON, ':');
}

function baseUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new CelforgeError('CONFIG_INVALID', `The Hydrus URL "${url}" is not a URL; Hydrus's Client API listens on http://127.0.0.1:45869 by default.`, { cause: error });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new CelforgeError('CONFIG_INVALID', `The Hydrus URL "${url}" must start with http:// or https://.`);
  }
  return parsed.href.replace(/\/+$/, '');
}

/** Developer API intro: complex GET parameters are JSON, then percent-encoded like `quote(json.dumps(x), safe='')`. */
function queryString(query: Query | undefined): string {
  if (!query) return '';
  return `?${Object.entries(query)
    .map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`)
    .join('&')}`;
}

/** Current Hydrus answers errors as JSON {error, exception_type, status_code}; older ones as plain text. */
function refusal(url: string, where: string, status: number, text: string): HydrusRefused {
  let said = text.trim();
  let kind = '';
  try {
    const parsed = JSON.parse(text) as { error?: unknown; exception_type?: unknown };
    if (typeof parsed.error === 'string') said = parsed.error;
    if (typeof parsed.exception_type === 'string') kind = ` ${parsed.exception_type}`;
  } catch {
    // not JSON: an older Hydrus, or something else listening on that port
  }
  const hint = STATUS_HINTS[status] ?? 'Hydrus refused the request';
  return new HydrusRefused(url, status, text, `Hydrus refused ${where}: ${status}${kind}${said ? ` "${excerpt(said)}"` : ''}; ${hint}.`);
}

function excerpt(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}
