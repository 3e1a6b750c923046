/**
 * The Redis address of `queue.redis` and `celforge worker --redis`:
 * redis://[user][:password]@host[:port][/db], or rediss:// for TLS. Its
 * password never leaves this module except into the connection itself:
 * `redactRedisUrl` is what logs and messages show.
 *
 * API: redisUrlProblem(url) -> what is wrong, or null; redisAddress(url) ->
 * host, port, db, user, password and whether to use TLS; redactRedisUrl(url).
 */

export interface RedisAddress {
  host: string;
  port: number;
  db: number;
  /** An ACL user (Redis 6+); absent: the default user. */
  username?: string;
  password?: string;
  tls: boolean;
}

const DEFAULT_PORT = 6379;

/** What is wrong with the address, in words that never quote it; null when it is usable. */
export function redisUrlProblem(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'expected a Redis address such as "redis://:password@192.168.1.10:6379" (rediss:// for TLS)';
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') return 'expected a redis:// or rediss:// (TLS) address';
  if (!parsed.hostname) return 'expected a host, such as redis://:password@nas.local:6379';
  if (parsed.pathname !== '' && parsed.pathname !== '/' && !/^\/\d{1,2}$/.test(parsed.pathname)) return 'expected the database number as the path (redis://host:6379/0), or no path';
  if (parsed.search || parsed.hash) return 'expected no ?query or #fragment: TLS is rediss://, the password goes before the @';
  return null;
}

/** The parts of an address that redisUrlProblem accepted. */
export function redisAddress(url: string): RedisAddress {
  const parsed = new URL(url);
  const address: RedisAddress = {
    // WHATWG URL keeps the brackets of an IPv6 address; a socket wants it bare.
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: parsed.port ? Number(parsed.port) : DEFAULT_PORT,
    db: parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0,
    tls: parsed.protocol === 'rediss:',
  };
  if (parsed.username) address.username = decodeURIComponent(parsed.username);
  if (parsed.password) address.password = decodeURIComponent(parsed.password);
  return address;
}

/** The address as logs and messages show it: the password replaced, the user kept. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return parsed.href;
    parsed.password = 'hidden';
    return parsed.href.replace(':hidden@', ':(hidden)@');
  } catch {
    return '(an unreadable Redis address)';
  }
}
