/**
 * HTTP for the image generator adapters (and their GeneratorUnavailable): the base URL without credentials,
 * the Authorization header (HTTP Basic from user/password or from the URL's
 * own user:password@, or a Bearer API key), a time limit per request, and
 * failures sorted into GeneratorUnavailable (no answer, 5xx) or a
 * CelforgeError (what the server will refuse every time).
 *
 * API: `new GeneratorHttp(label, settings)`; `call(method, endpoint, options)`
 * -> { status, body } or throws GeneratorUnavailable; `json(...)` adds the
 * status checks and JSON parsing; `refused(message)` builds the CelforgeError.
 * Every text that leaves this module (server answers included) has the
 * secrets taken out.
 */
import { CelforgeError } from '../errors.ts';
import { fetchFailureReason } from './fetch-failure.ts';

export interface HttpSettings {
  url: string;
  user?: string | undefined;
  password?: string | undefined;
  apiKey?: string | undefined;
  timeoutSeconds: number;
}

export interface CallOptions {
  json?: unknown;
  query?: Record<string, string>;
  /** What the request is about, for messages ("checkpoint x.safetensors"). */
  about?: string;
  /** Overrides the configured limit (a poll that must not outlive the render's deadline). */
  timeoutMs?: number;
}

export interface Answer {
  status: number;
  body: Buffer;
  /** "POST http://host:port/endpoint (about)" for messages. */
  where: string;
}

/** The server cannot be used now (down, busy, too slow, failing); the same request may work later. Exported by image-generator.ts. */
export class GeneratorUnavailable extends Error {
  readonly url: string;
  readonly retryable = true;

  constructor(url: string, message: string) {
    super(message);
    this.name = 'GeneratorUnavailable';
    this.url = url;
  }
}

/** Busy (503), a gateway that cannot reach it (502, 504) or a failure inside it (500, such as CUDA out of memory): later may work. */
const UNAVAILABLE_STATUSES = new Set([500, 502, 503, 504]);

export class GeneratorHttp {
  /** The server's URL as shown in messages: no user, no password. */
  readonly url: string;
  readonly #label: string;
  readonly #authorization: string | undefined;
  readonly #secrets: string[];
  readonly #timeoutMs: number;

  constructor(label: string, settings: HttpSettings) {
    this.#label = label;
    let parsed: URL;
    try {
      parsed = new URL(settings.url);
    } catch (error) {
      throw new CelforgeError('CONFIG_INVALID', `review.generator.url: the ${label} address is not a URL`, { cause: error });
    }
    const user = settings.user ?? (parsed.username ? decodeURIComponent(parsed.username) : undefined);
    const password = settings.password ?? (parsed.password ? decodeURIComponent(parsed.password) : undefined);
    parsed.username = '';
    parsed.password = '';
    this.url = parsed.href.replace(/\/+$/, '');
    if (settings.apiKey !== undefined) this.#authorization = `Bearer ${settings.apiKey}`;
    else if (user !== undefined) this.#authorization = `Basic ${Buffer.from(`${user}:${password ?? ''}`).toString('base64')}`;
    // The password as given and as written in a URL, the key, and the header that carries them.
    this.#secrets = [password, password && encodeURIComponent(password), settings.apiKey, this.#authorization].filter((value): value is string => Boolean(value));
    this.#timeoutMs = settings.timeoutSeconds * 1000;
  }

  async call(method: 'GET' | 'POST', endpoint: string, options: CallOptions = {}): Promise<Answer> {
    const query = options.query ? `?${new URLSearchParams(options.query).toString()}` : '';
    const where = `${method} ${this.url}${endpoint}${options.about ? ` (${options.about})` : ''}`;
    const headers: Record<string, string> = {};
    if (this.#authorization) headers.Authorization = this.#authorization;
    if (options.json !== undefined) headers['Content-Type'] = 'application/json';
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    try {
      const response = await fetch(this.url + endpoint + query, {
        method,
        headers,
        body: options.json === undefined ? undefined : JSON.stringify(options.json),
        signal: AbortSignal.timeout(timeoutMs),
      });
      return { status: response.status, body: Buffer.from(await response.arrayBuffer()), where };
    } catch (error) {
      throw new GeneratorUnavailable(this.url, `The ${this.#label} server at ${this.url} is unavailable: ${where}: ${this.redact(fetchFailureReason(error, `${timeoutMs / 1000} s`))}. Is it running? The review waits and tries again.`);
    }
  }

  /** A 2xx answer's JSON. 5xx: GeneratorUnavailable; 401/403 and other 4xx: a CelforgeError with what the server said. */
  async json(method: 'GET' | 'POST', endpoint: string, options: CallOptions = {}): Promise<unknown> {
    const answer = await this.call(method, endpoint, options);
    this.check(answer);
    return this.parse(answer);
  }

  parse(answer: Answer): unknown {
    const text = answer.body.toString('utf8');
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw this.refused(`${answer.where} answered with something that is not JSON: ${this.excerpt(text)}. Is ${this.url} the ${this.#label} API?`);
    }
  }

  /** Throws for any status but 2xx. */
  check(answer: Answer): void {
    const { status, where } = answer;
    if (status >= 200 && status < 300) return;
    const said = this.excerpt(answer.body.toString('utf8'));
    if (UNAVAILABLE_STATUSES.has(status)) {
      throw new GeneratorUnavailable(this.url, `The ${this.#label} server at ${this.url} is unavailable: ${where} answered ${status}${said ? ` ${said}` : ''}. The review waits and tries again.`);
    }
    if (status === 401 || status === 403) {
      const hint = this.#authorization
        ? 'it refused the configured credentials; check review.generator.user and password (or apiKey)'
        : 'it wants credentials; set review.generator.user and password (A1111: those of --api-auth) or apiKey';
      throw new CelforgeError('CONFIG_INVALID', `The ${this.#label} server at ${this.url} answered ${where} with ${status}: ${hint}.`);
    }
    throw this.refused(`${where} answered ${status}${said ? ` ${said}` : ''}`);
  }

  refused(message: string): CelforgeError {
    return new CelforgeError('GENERATOR_REFUSED', `${this.#label} at ${this.url}: ${this.redact(message)}`);
  }

  redact(text: string): string {
    return this.#secrets.reduce((result, secret) => result.split(secret).join('[hidden]'), text);
  }

  excerpt(text: string): string {
    const line = this.redact(text).replace(/\s+/g, ' ').trim();
    return line.length > 400 ? `${line.slice(0, 400)}…` : line;
  }
}
