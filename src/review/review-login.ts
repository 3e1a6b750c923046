/**
 * The review page's login, for a page listening beyond loopback: a password
 * checked against its scrypt hash (the password itself is not kept), sessions
 * held in memory (a restart logs everyone out), and failed logins limited
 * per client address.
 */
import { randomBytes, scrypt, timingSafeEqual, type BinaryLike } from 'node:crypto';

export const SESSION_COOKIE = 'celforge_session';
const SESSION_HOURS = 12;
/** Failed logins a client address may make within FAILURE_WINDOW_MS before it must wait. */
const MAX_FAILURES = 5;
const FAILURE_WINDOW_MS = 15 * 60_000;
const KEY_LENGTH = 32;

function scryptAsync(password: BinaryLike, salt: BinaryLike): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, KEY_LENGTH, (error, key) => (error ? reject(error) : resolve(key))));
}

export type LoginOutcome =
  | { kind: 'ok'; session: string; cookie: string }
  | { kind: 'wrong' }
  | { kind: 'throttled'; retryAfterSeconds: number };

export class LoginGate {
  private readonly salt: Buffer;
  private readonly hash: Buffer;
  private readonly sessions = new Map<string, number>();
  private readonly failures = new Map<string, number[]>();

  private constructor(salt: Buffer, hash: Buffer) {
    this.salt = salt;
    this.hash = hash;
  }

  static async create(password: string): Promise<LoginGate> {
    const salt = randomBytes(16);
    return new LoginGate(salt, await scryptAsync(password, salt));
  }

  async attempt(password: string, client: string, now = Date.now()): Promise<LoginOutcome> {
    this.forgetOldFailures(now);
    const recent = (this.failures.get(client) ?? []).filter((at) => now - at < FAILURE_WINDOW_MS);
    if (recent.length >= MAX_FAILURES) {
      this.failures.set(client, recent);
      return { kind: 'throttled', retryAfterSeconds: Math.ceil((recent[0]! + FAILURE_WINDOW_MS - now) / 1000) };
    }
    const given = await scryptAsync(password, this.salt);
    if (!timingSafeEqual(given, this.hash)) {
      this.failures.set(client, [...recent, now]);
      return { kind: 'wrong' };
    }
    this.failures.delete(client);
    const session = randomBytes(32).toString('hex');
    this.sessions.set(session, now + SESSION_HOURS * 3_600_000);
    return { kind: 'ok', session, cookie: `${SESSION_COOKIE}=${session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_HOURS * 3600}` };
  }

  /** The session named by the request's cookie header, if it is live. */
  sessionOf(cookieHeader: string | undefined, now = Date.now()): string | null {
    const session = readCookie(cookieHeader, SESSION_COOKIE);
    if (!session) return null;
    const expires = this.sessions.get(session);
    if (expires === undefined) return null;
    if (expires <= now) {
      this.sessions.delete(session);
      return null;
    }
    return session;
  }

  private forgetOldFailures(now: number): void {
    for (const [client, times] of this.failures) if (now - times.at(-1)! >= FAILURE_WINDOW_MS) this.failures.delete(client);
  }

  logout(session: string): string {
    this.sessions.delete(session);
    return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
  }
}

function readCookie(header: string | undefined, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=') || null;
  }
  return null;
}
