/**
 * Who may talk to the review page. On loopback (the default) the rules are
 * the page's own address in the Host header and, on a POST, an Origin (when
 * the client sends one) of that same address. Beyond loopback:
 * - the Host header must name one of review.allowedHosts (or a loopback
 *   name), so that a DNS-rebinding page cannot reach it under its own name;
 * - every POST must carry an Origin equal to the address the browser used
 *   (scheme aside); a POST without Origin is refused, since browsers send
 *   Origin on every request whose method is neither GET nor HEAD (Fetch
 *   standard, "append a request `Origin` header", whatwg/fetch#431; Firefox
 *   since 70 per MDN's browser-compat-data http/headers/Origin.json) and a
 *   script can send it too;
 * - every request but the login form needs a session from a login with
 *   review.password (cookie: HttpOnly, SameSite=Strict).
 */
import { isLoopbackHost } from '../config/loopback-host.ts';
import { CelforgeError } from '../errors.ts';
import { LoginGate } from './review-login.ts';

export interface AccessOptions {
  host: string;
  allowedHosts?: string[] | undefined;
  password?: string | undefined;
}

export type OriginVerdict = { ok: true } | { ok: false; reason: string };

export class ReviewAccess {
  readonly loginRequired: boolean;
  readonly login: LoginGate | null;
  private readonly hostNames: Set<string>;

  private constructor(loginRequired: boolean, hostNames: Set<string>, login: LoginGate | null) {
    this.loginRequired = loginRequired;
    this.hostNames = hostNames;
    this.login = login;
  }

  static async create(options: AccessOptions): Promise<ReviewAccess> {
    const loopbackNames = ['localhost', '127.0.0.1', '::1'];
    if (isLoopbackHost(options.host)) {
      return new ReviewAccess(false, new Set([...loopbackNames, hostName(options.host)]), null);
    }
    if (!options.allowedHosts?.length || !options.password) {
      throw new CelforgeError('CONFIG_INVALID', `review.host is "${options.host}", which reaches beyond this machine: set review.allowedHosts (the names the page is opened by) and review.password, or set review.host to "127.0.0.1"`);
    }
    const names = new Set([...loopbackNames, ...options.allowedHosts.map(hostName)]);
    return new ReviewAccess(true, names, await LoginGate.create(options.password));
  }

  /** The Host header names this server (the port is not checked: a rebinding page cannot choose the name). */
  hostAllowed(header: string | undefined): boolean {
    return header !== undefined && this.hostNames.has(hostName(header));
  }

  /** A POST's Origin against the Host it was sent to (already checked by hostAllowed). */
  originAllowed(origin: string | undefined, host: string | undefined): OriginVerdict {
    if (origin === undefined) {
      return this.loginRequired ? { ok: false, reason: 'a POST without an Origin header is refused when the page listens beyond loopback; send Origin: http://<host>:<port>' } : { ok: true };
    }
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return { ok: false, reason: 'the Origin header is not an address' };
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.host.toLowerCase() !== (host ?? '').toLowerCase()) {
      return { ok: false, reason: 'a request from another web page is refused' };
    }
    return { ok: true };
  }
}

/** "Nas.Local:8642" -> "nas.local", "[::1]:8642" -> "::1". */
function hostName(header: string): string {
  const name = header.trim().toLowerCase();
  const bracketed = /^\[([^\]]*)\](:\d+)?$/.exec(name);
  if (bracketed) return bracketed[1]!;
  // A bare IPv6 address has several colons and no port.
  return (name.match(/:/g) ?? []).length > 1 ? name : name.replace(/:\d*$/, '');
}
