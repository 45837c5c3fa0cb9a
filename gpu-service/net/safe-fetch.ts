// Fetching image URLs on behalf of clients without becoming a proxy into the
// network the service runs in (SSRF).
//
// - http: and https: only.
// - The host name is resolved here (every address dns.lookup gives); if ANY of
//   them is loopback, private, link-local (cloud metadata 169.254.169.254),
//   CGNAT, unique-local, unspecified, multicast, reserved, or an IPv4-mapped /
//   embedded form of those, the URL is refused, unless the host or the address
//   is on the allow list (for on-prem image stores).
// - The connection goes to the address that was checked: http.request gets a
//   `lookup` that returns only that address, while the Host header and TLS SNI
//   / certificate check keep the name, so a second DNS answer (rebinding)
//   cannot move the connection elsewhere.
// - Redirects (at most 3) are followed by the same checks, from scratch.
// - The body is capped (Content-Length is checked first, then the bytes as they
//   arrive), the whole fetch has one timeout, and the bytes must start like an
//   image we decode (sniff.ts) or the fetch is refused.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { sniff } from '../../contracts/image/sniff.js';

import { ERROR_CODES } from '../../contracts/api/errors.js';
import { UrlFetchError, type UrlFetchErrorCode } from '../../contracts/api/url-fetch-error.js';

export { UrlFetchError, type UrlFetchErrorCode };

/** The status of each URL-fetch code (from the shared error table). */
export const URL_FETCH_ERROR_STATUS: Readonly<Record<UrlFetchErrorCode, number>> = Object.freeze({
  url_forbidden: ERROR_CODES.url_forbidden.status,
  url_fetch_failed: ERROR_CODES.url_fetch_failed.status,
  url_timeout: ERROR_CODES.url_timeout.status,
  url_too_large: ERROR_CODES.url_too_large.status,
  url_not_image: ERROR_CODES.url_not_image.status,
  url_scheme: ERROR_CODES.url_scheme.status,
});

export type LookupFn = (hostname: string) => Promise<{ address: string; family: 4 | 6 }[]>;

export interface SafeFetchOptions {
  /** Largest body accepted, in bytes (default 8 MiB). */
  maxBytes?: number;
  /** Budget for the whole fetch, redirects included (default 10 s). */
  timeoutMs?: number;
  /**
   * Exceptions to the address rules, for on-prem stores: host names (exact, or
   * "*.example.internal" for any subdomain) whose addresses are all accepted, and
   * IP addresses or CIDRs ("10.1.0.0/16", "fd00::/8", "127.0.0.1") that are accepted
   * whatever name led to them.
   */
  allow?: readonly string[];
  /** Most redirects followed (default 3). */
  maxRedirects?: number;
  signal?: AbortSignal;
  /** Name resolution (default: dns.lookup with all: true); tests inject one. */
  lookup?: LookupFn;
  /** Extra request headers (User-Agent etc.). */
  headers?: Record<string, string>;
  /** For https: trust these CA certificates (PEM) in addition to nothing else (tests). */
  ca?: string | Buffer | (string | Buffer)[];
}

export interface SafeFetchResult {
  bytes: Uint8Array;
  /** The URL the bytes came from (after redirects). */
  url: string;
  /** The address connected to. */
  address: string;
  format: string;
  contentType: string | undefined;
}

// ---------------------------------------------------------------------------
// Addresses

/** 16 bytes of an IPv6 address (IPv4 as ::ffff:a.b.c.d), or null when `ip` is not an address. */
export function parseIp(ip: string): Uint8Array | null {
  const kind = isIP(ip);
  if (kind === 4) {
    const out = new Uint8Array(16);
    out[10] = 0xff;
    out[11] = 0xff;
    ip.split('.').forEach((p, i) => (out[12 + i] = Number(p)));
    return out;
  }
  if (kind !== 6) return null;
  let s = ip;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    tail = s
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const hs = head ? head.split(':') : [];
  const rs = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? hs : [...hs, ...new Array<string>(8 - hs.length - rs.length).fill('0'), ...rs];
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  if (tail.length === 4) tail.forEach((b, i) => (out[12 + i] = b));
  return out;
}

interface Cidr {
  bytes: Uint8Array;
  /** Prefix length over the 128-bit form. */
  bits: number;
}

/** "a.b.c.d/n", "x::/n" or a bare address. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const addr = slash >= 0 ? text.slice(0, slash) : text;
  const bytes = parseIp(addr.startsWith('[') && addr.endsWith(']') ? addr.slice(1, -1) : addr);
  if (!bytes) return null;
  const v4 = isIP(addr) === 4;
  const max = v4 ? 32 : 128;
  const n = slash >= 0 ? Number(text.slice(slash + 1)) : max;
  if (!Number.isInteger(n) || n < 0 || n > max || (slash >= 0 && !/^\d+$/.test(text.slice(slash + 1)))) return null;
  return { bytes, bits: v4 ? 96 + n : n };
}

function inCidr(ip: Uint8Array, c: Cidr): boolean {
  let bits = c.bits;
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((ip[i] as number) & mask) !== ((c.bytes[i] as number) & mask)) return false;
  }
  return true;
}

const cidrs = (list: [string, string][]): [Cidr, string][] => list.map(([c, why]) => [parseCidr(c)!, why]);

const FORBIDDEN_V4 = cidrs([
  ['0.0.0.0/8', 'unspecified ("this network")'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'carrier-grade NAT'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local (cloud metadata)'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.0.2.0/24', 'documentation'],
  ['192.88.99.0/24', '6to4 relay anycast'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved / broadcast'],
]);

const FORBIDDEN_V6 = cidrs([
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['100::/64', 'discard'],
  ['2001:db8::/32', 'documentation'],
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local'],
  ['ff00::/8', 'multicast'],
]);

const MAPPED_V4 = parseCidr('::ffff:0:0/96')!;
const COMPAT_V4 = parseCidr('::/96')!;
const NAT64 = parseCidr('64:ff9b::/96')!;
const NAT64_LOCAL = parseCidr('64:ff9b:1::/48')!;
const SIX_TO_FOUR = parseCidr('2002::/16')!;
const TEREDO = parseCidr('2001::/32')!;

function v4String(b: ArrayLike<number>): string {
  return Array.from(b).join('.');
}

/** Why `ip` may not be fetched from (a short reason), or null when it is a public unicast address. */
export function forbiddenReason(ip: string): string | null {
  const b = parseIp(ip);
  if (!b) return 'not an IP address';
  const check4 = (v4: Uint8Array): string | null => {
    const mapped = new Uint8Array(16);
    mapped[10] = 0xff;
    mapped[11] = 0xff;
    mapped.set(v4, 12);
    for (const [c, why] of FORBIDDEN_V4) if (inCidr(mapped, c)) return why;
    return null;
  };
  if (inCidr(b, MAPPED_V4)) return check4(b.subarray(12));
  for (const [c, why] of FORBIDDEN_V6) if (inCidr(b, c)) return why;
  // IPv6 forms that carry an IPv4 address the packets may end up at.
  if (inCidr(b, COMPAT_V4) || inCidr(b, NAT64)) {
    const why = check4(b.subarray(12));
    return why ? `${why} (embedded IPv4 ${v4String(b.subarray(12))})` : null;
  }
  if (inCidr(b, NAT64_LOCAL)) return 'local-use NAT64';
  if (inCidr(b, SIX_TO_FOUR)) {
    const why = check4(b.subarray(2, 6));
    return why ? `${why} (6to4 of ${v4String(b.subarray(2, 6))})` : null;
  }
  if (inCidr(b, TEREDO)) {
    const client = b.subarray(12).map((x) => x ^ 0xff);
    const why = check4(client);
    return why ? `${why} (Teredo of ${v4String(client)})` : null;
  }
  return null;
}

interface AllowList {
  hosts: string[];
  suffixes: string[];
  nets: Cidr[];
}

function compileAllow(list: readonly string[] = []): AllowList {
  const out: AllowList = { hosts: [], suffixes: [], nets: [] };
  for (const raw of list) {
    const e = raw.trim().toLowerCase();
    if (!e) continue;
    const net = parseCidr(e);
    if (net) out.nets.push(net);
    else if (e.includes('/')) throw new TypeError(`allow: "${raw}" is not a valid CIDR`);
    else if (e.startsWith('*.')) out.suffixes.push(e.slice(1));
    else out.hosts.push(e);
  }
  return out;
}

function hostAllowed(a: AllowList, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return a.hosts.includes(h) || a.suffixes.some((s) => h.endsWith(s) && h.length > s.length);
}

function addressAllowed(a: AllowList, ip: string): boolean {
  const b = parseIp(ip);
  return b !== null && a.nets.some((n) => inCidr(b, n));
}

const defaultLookup: LookupFn = (hostname) =>
  new Promise((resolve, reject) => {
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses: LookupAddress[]) => {
      if (err) reject(err);
      else resolve(addresses.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 })));
    });
  });

// ---------------------------------------------------------------------------
// Fetching

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Bytes needed before the content is sniffed (then refused early when it is not an image). */
const SNIFF_BYTES = 64;

/** Fetches an image URL safely; the bytes. Throws UrlFetchError (code, status) on any refusal or failure. */
export async function safeFetchImage(url: string, opts: SafeFetchOptions = {}): Promise<Uint8Array> {
  return (await safeFetchImageDetailed(url, opts)).bytes;
}

export async function safeFetchImageDetailed(url: string, opts: SafeFetchOptions = {}): Promise<SafeFetchResult> {
  const maxBytes = opts.maxBytes ?? 8 * 1024 * 1024;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxRedirects = opts.maxRedirects ?? 3;
  const allow = compileAllow(opts.allow);
  const lookup = opts.lookup ?? defaultLookup;

  const ac = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort();
  }, timeoutMs);
  const onAbort = (): void => ac.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const wrap = (err: unknown): Error => {
    if (timedOut) return new UrlFetchError('url_timeout', `fetching ${url} took longer than ${timeoutMs} ms`, { cause: err });
    if (opts.signal?.aborted) {
      const r: unknown = opts.signal.reason;
      return r instanceof Error ? r : Object.assign(new Error('the fetch was aborted'), { name: 'AbortError' });
    }
    if (err instanceof UrlFetchError) return err;
    return new UrlFetchError('url_fetch_failed', `cannot fetch ${url}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  };
  try {
    if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
    let current = parseUrl(url);
    for (let hop = 0; ; hop++) {
      const address = await checkTarget(current, allow, lookup, ac.signal);
      const res = await request(current, address, opts, ac.signal);
      if (REDIRECTS.has(res.statusCode ?? 0) && res.headers.location !== undefined) {
        res.resume();
        res.destroy();
        if (hop >= maxRedirects) throw new UrlFetchError('url_fetch_failed', `more than ${maxRedirects} redirects fetching ${url}`);
        let next: URL;
        try {
          next = new URL(res.headers.location, current);
        } catch {
          throw new UrlFetchError('url_fetch_failed', `bad redirect Location "${res.headers.location}" from ${current.href}`);
        }
        current = parseUrl(next.href);
        continue;
      }
      const status = res.statusCode ?? 0;
      if (status < 200 || status >= 300) {
        res.resume();
        res.destroy();
        throw new UrlFetchError('url_fetch_failed', `${current.href} answered HTTP ${status}`);
      }
      const bytes = await readBody(res, maxBytes, current.href);
      const s = sniff(bytes);
      if (!s.supported) {
        throw new UrlFetchError('url_not_image', `${current.href} is not an image we decode${s.format ? ` (${s.format})` : ''}`);
      }
      const ct = res.headers['content-type'];
      return { bytes, url: current.href, address: address.address, format: s.format, contentType: typeof ct === 'string' ? ct : undefined };
    }
  } catch (err) {
    throw wrap(err);
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

function parseUrl(text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new UrlFetchError('url_scheme', `not an absolute URL: ${text.slice(0, 200)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UrlFetchError('url_scheme', `only http and https URLs are fetched (got ${u.protocol})`);
  if (!u.hostname) throw new UrlFetchError('url_scheme', `the URL has no host: ${text.slice(0, 200)}`);
  return u;
}

async function checkTarget(u: URL, allow: AllowList, lookup: LookupFn, signal: AbortSignal): Promise<{ address: string; family: 4 | 6 }> {
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const literal = isIP(host);
  const byName = !literal && hostAllowed(allow, host);
  let addresses: { address: string; family: 4 | 6 }[];
  if (literal) addresses = [{ address: host, family: literal === 6 ? 6 : 4 }];
  else {
    try {
      addresses = await lookup(host);
    } catch (err) {
      if (signal.aborted) throw err;
      throw new UrlFetchError('url_fetch_failed', `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    if (addresses.length === 0) throw new UrlFetchError('url_fetch_failed', `${host} has no address`);
  }
  if (signal.aborted) throw new Error('aborted');
  if (!byName) {
    for (const a of addresses) {
      const why = forbiddenReason(a.address);
      if (why && !addressAllowed(allow, a.address)) {
        const via = literal ? '' : `${host} resolves to `;
        throw new UrlFetchError('url_forbidden', `refusing to fetch ${u.href}: ${via}${a.address}, a ${why} address`);
      }
    }
  }
  return addresses[0]!;
}

function request(u: URL, target: { address: string; family: 4 | 6 }, opts: SafeFetchOptions, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = u.protocol === 'https:' ? https : http;
    const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    // Pinned: whatever name the socket layer asks about, it gets the checked address.
    const pinned = (_h: string, o: { all?: boolean } | number | undefined, cb: (...args: unknown[]) => void): void => {
      const all = typeof o === 'object' && o?.all;
      if (all) cb(null, [{ address: target.address, family: target.family }]);
      else cb(null, target.address, target.family);
    };
    const req = mod.request(
      {
        protocol: u.protocol,
        host,
        port: u.port || (u.protocol === 'https:' ? 443 : 80),
        path: `${u.pathname}${u.search}`,
        method: 'GET',
        headers: { accept: 'image/*', 'accept-encoding': 'identity', 'user-agent': 'imagereward-serve', ...(opts.headers ?? {}) },
        lookup: pinned as unknown as http.RequestOptions['lookup'],
        autoSelectFamily: false,
        agent: false,
        signal,
        ...(u.protocol === 'https:' ? { servername: isIP(host) ? undefined : host, ...(opts.ca !== undefined ? { ca: opts.ca } : {}) } : {}),
      } as https.RequestOptions,
      (res) => resolve(res),
    );
    req.on('error', reject);
    req.end();
  });
}

function readBody(res: IncomingMessage, maxBytes: number, where: string): Promise<Uint8Array> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    res.destroy();
    return Promise.reject(new UrlFetchError('url_too_large', `${where} is ${declared} bytes (Content-Length), over the limit of ${maxBytes}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let sniffed = false;
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      res.destroy();
      reject(e);
    };
    res.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > maxBytes) return fail(new UrlFetchError('url_too_large', `${where} sent more than ${maxBytes} bytes`));
      chunks.push(chunk);
      if (!sniffed && total >= SNIFF_BYTES) {
        sniffed = true;
        const head = Buffer.concat(chunks);
        const s = sniff(head);
        if (!s.supported) fail(new UrlFetchError('url_not_image', `${where} is not an image we decode${s.format ? ` (${s.format})` : ''}`));
      }
    });
    res.on('end', () => {
      if (settled) return;
      settled = true;
      const out = new Uint8Array(total);
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.length;
      }
      resolve(out);
    });
    res.on('error', (e) => fail(e));
    res.on('close', () => fail(new Error('the connection closed before the body was complete')));
  });
}
