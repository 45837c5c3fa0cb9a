// Fetching a client's `{url}` image at the edge, so the GPU service only ever
// receives bytes. The worker must not become a proxy into networks it can
// reach: deployed Workers cannot reach private addresses at all, but
// `wrangler dev` runs on a developer's machine and can, so the policy of the
// GPU service's fetcher (gpu-service/net/safe-fetch.ts) is applied here too,
// as far as a worker can apply it:
//
// - http: and https: only, no user:password@ in the URL;
// - no local host names (localhost, *.localhost, *.local, *.internal,
//   *.home.arpa, single-label names such as "metadata") and no IP literal in a
//   loopback, private, link-local (cloud metadata), CGNAT, unique-local,
//   unspecified, multicast or reserved range, IPv4-mapped and other embedded
//   IPv4 forms included — unless the host (or host:port) is on the allow list.
//   The URL parser has already turned shorthand IPv4 (2130706433, 0x7f.1,
//   0177.0.0.1) into dotted quads, so only canonical forms are checked. A
//   worker cannot resolve names itself, so a public name pointing at a
//   private address is stopped by the platform, not here;
// - redirects are followed by hand (at most 3), each target checked afresh;
// - one timeout for the whole fetch, redirects and body included; a client
//   abort (opts.signal) is rethrown as is, never turned into an image error;
// - the body is capped (Content-Length first, then the bytes as they stream)
//   and must sniff as an image format we decode (contracts/image/sniff.ts).
//
// Error messages name the URL as origin + path only: query strings often
// carry signed tokens, and messages end up in responses and logs.
import { UrlFetchError, type UrlFetchErrorCode } from '../../contracts/api/url-fetch-error.js';
import { sniff } from '../../contracts/image/sniff.js';
import type { Env } from '../env.js';

export type ImageFetchErrorCode = UrlFetchErrorCode;

/** The edge's URL-fetch failure: the shared UrlFetchError (codes and statuses from the one table). */
export class ImageFetchError extends UrlFetchError {
  override name = 'ImageFetchError';
}

export interface FetchImageOptions {
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /** Budget of the whole fetch (redirects and body included), in ms. */
  timeoutMs: number;
  /** The client's abort: rethrown as is when it fires. */
  signal?: AbortSignal;
  /** Hosts exempt from the address rules: "host" (any port) or "host:port". */
  allowHosts?: readonly string[];
}

export const MAX_REDIRECTS = 3;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Bytes after which a body that does not sniff as an image is refused early (≥ the 272 bytes sniff reads of an ftyp box). */
const SNIFF_BYTES = 512;

/** The hosts of URL_FETCH_ALLOW (comma-separated), lowercase, empty entries dropped. */
export function urlFetchAllowList(env: Env): string[] {
  return (env.URL_FETCH_ALLOW ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '');
}

/** Fetches an image URL under the policy above; its bytes. Throws ImageFetchError, or the client's abort reason. */
export async function fetchImage(url: string, opts: FetchImageOptions): Promise<Uint8Array> {
  opts.signal?.throwIfAborted();
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const allow = compileAllowList(opts.allowHosts ?? []);
  let where = '(the URL)';
  try {
    let current = checkedUrl(url, allow);
    where = redacted(current);
    for (let hop = 0; ; hop++) {
      const res = await fetch(current.href, {
        method: 'GET',
        redirect: 'manual',
        signal,
        headers: { accept: 'image/*', 'user-agent': 'imagereward-edge' },
      });
      if (REDIRECT_STATUSES.has(res.status)) {
        discard(res);
        const location = res.headers.get('location');
        if (location === null) throw new ImageFetchError('url_fetch_failed', `${where} answered HTTP ${res.status} without a Location`);
        if (hop >= MAX_REDIRECTS) throw new ImageFetchError('url_fetch_failed', `more than ${MAX_REDIRECTS} redirects fetching ${redacted(parse(url))}`);
        let next: string;
        try {
          next = new URL(location, current).href;
        } catch {
          throw new ImageFetchError('url_fetch_failed', `${where} redirected to an invalid URL`);
        }
        current = checkedUrl(next, allow);
        where = redacted(current);
        continue;
      }
      if (res.status < 200 || res.status > 299) {
        discard(res);
        throw new ImageFetchError('url_fetch_failed', `${where} answered HTTP ${res.status}`);
      }
      const bytes = await readCapped(res, opts.maxBytes, signal, where);
      if (bytes.length === 0) throw new ImageFetchError('url_not_image', `${where} answered an empty body`);
      const s = sniff(bytes);
      if (!s.supported) throw notImage(where, s.format);
      return bytes;
    }
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    if (err instanceof ImageFetchError) throw err;
    if (timeout.aborted) throw new ImageFetchError('url_timeout', `fetching ${where} took longer than ${opts.timeoutMs} ms`, { cause: err });
    const why = err instanceof Error ? err.message : String(err);
    throw new ImageFetchError('url_fetch_failed', `cannot fetch ${where}: ${why}`, { cause: err });
  }
}

function notImage(where: string, format: string | null): ImageFetchError {
  return new ImageFetchError('url_not_image', `${where} is not an image we decode${format ? ` (${format})` : ''}`);
}

/** origin + path, at most 200 characters: what messages may say about a URL. */
function redacted(u: URL): string {
  const s = u.origin + u.pathname;
  return s.length > 200 ? `${s.slice(0, 199)}…` : s;
}

function parse(text: string): URL {
  try {
    return new URL(text);
  } catch {
    throw new ImageFetchError('url_scheme', 'the image URL is not an absolute URL');
  }
}

/** `text` parsed and checked against the policy (scheme, userinfo, host). */
function checkedUrl(text: string, allow: readonly AllowEntry[]): URL {
  const u = parse(text);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ImageFetchError('url_scheme', `only http and https image URLs are fetched (got ${u.protocol})`);
  if (u.username !== '' || u.password !== '') throw new ImageFetchError('url_forbidden', `refusing to fetch ${redacted(u)}: the URL carries credentials`);
  const host = u.hostname.replace(/\.+$/, '');
  if (host === '') throw new ImageFetchError('url_scheme', 'the image URL has no host');
  if (isAllowed(allow, host, u.port || (u.protocol === 'https:' ? '443' : '80'))) return u;
  const why = forbiddenHostReason(host);
  if (why !== null) throw new ImageFetchError('url_forbidden', `refusing to fetch ${redacted(u)}: ${why}`);
  return u;
}

// ---------------------------------------------------------------------------
// Allow list

interface AllowEntry {
  hostname: string;
  /** null: any port. */
  port: string | null;
}

function compileAllowList(list: readonly string[]): AllowEntry[] {
  const out: AllowEntry[] = [];
  for (const raw of list) {
    const e = raw.trim().toLowerCase();
    if (e === '') continue;
    let host = e;
    let port: string | null = null;
    const m = /^(.*):(\d{1,5})$/.exec(e);
    // "host:port" or "[v6]:port"; a bare "::1" has colons but no port.
    if (m && m[1] !== undefined && m[2] !== undefined && (!m[1].includes(':') || /^\[.*\]$/.test(m[1]))) {
      host = m[1];
      port = String(Number(m[2]));
    }
    if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
    // Canonical as the URL parser writes hosts (IPv4 shorthand, IPv6 compression, IDNA).
    try {
      out.push({ hostname: new URL(`http://${host}/`).hostname.replace(/\.+$/, ''), port });
    } catch {
      // Not a host: it can never match, so it is simply ignored.
    }
  }
  return out;
}

function isAllowed(allow: readonly AllowEntry[], hostname: string, port: string): boolean {
  return allow.some((a) => a.hostname === hostname && (a.port === null || a.port === port));
}

// ---------------------------------------------------------------------------
// Host names and addresses

/** Why `host` (a URL hostname: lowercase, IPv6 in brackets, IPv4 canonical) may not be fetched, or null. */
export function forbiddenHostReason(host: string): string | null {
  if (host.startsWith('[')) {
    const v6 = parseIpv6(host.slice(1, -1));
    if (v6 === null) return 'not a valid IPv6 address';
    const why = forbiddenV6(v6);
    return why === null ? null : `${host} is a ${why} address`;
  }
  const v4 = parseIpv4(host);
  if (v4 !== null) {
    const why = forbiddenV4(v4);
    return why === null ? null : `${host} is a ${why} address`;
  }
  if (host === 'localhost' || host.endsWith('.localhost')) return `${host} is a loopback name`;
  for (const suffix of ['.local', '.internal', '.home.arpa']) {
    if (host.endsWith(suffix) || host === suffix.slice(1)) return `${host} is a local network name`;
  }
  // A name without a dot is resolved through the local search domains
  // (e.g. "metadata" on cloud VMs), never on the public internet.
  if (!host.includes('.')) return `${host} is a single-label (local) name`;
  return null;
}

/** A dotted-quad IPv4 address as a 32-bit number, or null. */
function parseIpv4(s: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = Number(m[i]);
    if (part > 255) return null;
    n = n * 256 + part;
  }
  return n;
}

/** 16 bytes of an IPv6 address (hex groups, one "::", optional dotted IPv4 tail), or null. */
function parseIpv6(s: string): Uint8Array | null {
  let text = s;
  // A dotted IPv4 tail ("::ffff:1.2.3.4") becomes its two hex groups.
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const tail = parseIpv4(text.slice(lastColon + 1));
    if (tail === null) return null;
    text = `${text.slice(0, lastColon + 1)}${(tail >>> 16).toString(16)}:${(tail & 0xffff).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groupsOf = (part: string | undefined): number[] | null => {
    if (part === undefined || part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-f]{1,4}$/i.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groupsOf(halves[0]);
  const rest = halves.length === 2 ? groupsOf(halves[1]) : [];
  if (head === null || rest === null) return null;
  const known = head.length + rest.length;
  let groups: number[];
  if (halves.length === 2) {
    if (known > 7) return null;
    groups = [...head, ...new Array<number>(8 - known).fill(0), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return null;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

const v4 = (a: number, b: number, c: number, d: number): number => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

const FORBIDDEN_V4: readonly [number, number, string][] = [
  [v4(0, 0, 0, 0), 8, 'unspecified ("this network")'],
  [v4(10, 0, 0, 0), 8, 'private'],
  [v4(100, 64, 0, 0), 10, 'carrier-grade NAT'],
  [v4(127, 0, 0, 0), 8, 'loopback'],
  [v4(169, 254, 0, 0), 16, 'link-local (cloud metadata)'],
  [v4(172, 16, 0, 0), 12, 'private'],
  [v4(192, 0, 0, 0), 24, 'IETF protocol assignment'],
  [v4(192, 0, 2, 0), 24, 'documentation'],
  [v4(192, 88, 99, 0), 24, '6to4 relay anycast'],
  [v4(192, 168, 0, 0), 16, 'private'],
  [v4(198, 18, 0, 0), 15, 'benchmarking'],
  [v4(198, 51, 100, 0), 24, 'documentation'],
  [v4(203, 0, 113, 0), 24, 'documentation'],
  [v4(224, 0, 0, 0), 4, 'multicast'],
  [v4(240, 0, 0, 0), 4, 'reserved / broadcast'],
];

function forbiddenV4(addr: number): string | null {
  for (const [net, bits, why] of FORBIDDEN_V4) {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    if (((addr & mask) >>> 0) === net) return why;
  }
  return null;
}

/** Whether the first `bits` bits of `b` equal those of `prefix` (given as 16-bit groups). */
function hasPrefix(b: Uint8Array, prefix: readonly number[], bits: number): boolean {
  for (let i = 0; i < bits; i++) {
    const byte = b[i >> 3] ?? 0;
    const group = prefix[i >> 4] ?? 0;
    const bit = (byte >> (7 - (i & 7))) & 1;
    const want = (group >> (15 - (i & 15))) & 1;
    if (bit !== want) return false;
  }
  return true;
}

const FORBIDDEN_V6: readonly [readonly number[], number, string][] = [
  [[0, 0, 0, 0, 0, 0, 0, 0], 128, 'unspecified'],
  [[0, 0, 0, 0, 0, 0, 0, 1], 128, 'loopback'],
  [[0x64, 0xff9b, 1], 48, 'local-use NAT64'],
  [[0x100, 0, 0, 0], 64, 'discard-only'],
  [[0x2001, 0xdb8], 32, 'documentation'],
  [[0xfc00], 7, 'unique-local'],
  [[0xfe80], 10, 'link-local'],
  [[0xfec0], 10, 'site-local'],
  [[0xff00], 8, 'multicast'],
];

function embeddedV4(b: Uint8Array, at: number, xor = 0): number {
  return (((((b[at] ?? 0) ^ xor) << 24) | (((b[at + 1] ?? 0) ^ xor) << 16) | (((b[at + 2] ?? 0) ^ xor) << 8) | ((b[at + 3] ?? 0) ^ xor)) >>> 0);
}

function forbiddenV6(b: Uint8Array): string | null {
  // IPv4-mapped (::ffff:a.b.c.d): the packets go to that IPv4 address.
  if (hasPrefix(b, [0, 0, 0, 0, 0, 0xffff], 96)) return forbiddenV4(embeddedV4(b, 12));
  for (const [prefix, bits, why] of FORBIDDEN_V6) if (hasPrefix(b, prefix, bits)) return why;
  // Other forms that carry an IPv4 address the packets may end up at.
  const via = (what: string, addr: number): string | null => {
    const why = forbiddenV4(addr);
    return why === null ? null : `${why} (${what})`;
  };
  if (hasPrefix(b, [0, 0, 0, 0, 0, 0], 96)) return via('IPv4-compatible', embeddedV4(b, 12));
  if (hasPrefix(b, [0x64, 0xff9b, 0, 0, 0, 0], 96)) return via('NAT64', embeddedV4(b, 12));
  if (hasPrefix(b, [0x2002], 16)) return via('6to4', embeddedV4(b, 2));
  if (hasPrefix(b, [0x2001, 0], 32)) return via('Teredo', embeddedV4(b, 12, 0xff));
  return null;
}

// ---------------------------------------------------------------------------
// Bodies

/** Cancels a body we will not read, so the connection is released. */
function discard(res: Response): void {
  res.body?.cancel().catch(() => undefined);
}

async function readCapped(res: Response, maxBytes: number, signal: AbortSignal, where: string): Promise<Uint8Array> {
  const declared = res.headers.get('content-length');
  if (declared !== null && /^\d+$/.test(declared.trim()) && Number(declared) > maxBytes) {
    discard(res);
    throw new ImageFetchError('url_too_large', `${where} is ${declared} bytes (Content-Length), over the limit of ${maxBytes}`);
  }
  if (res.body === null) return new Uint8Array(0);
  const reader = res.body.getReader();
  // Reads race the abort: a stalled body must not outlive the timeout.
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  const chunks: Uint8Array[] = [];
  let total = 0;
  let sniffed = false;
  let done = false;
  try {
    for (;;) {
      const read = reader.read();
      read.catch(() => undefined); // when the abort wins the race, this read still fails later
      const r = await Promise.race([read, aborted]);
      if (r.done) break;
      const chunk = r.value;
      total += chunk.byteLength;
      if (total > maxBytes) throw new ImageFetchError('url_too_large', `${where} sent more than ${maxBytes} bytes`);
      chunks.push(chunk);
      if (!sniffed && total >= SNIFF_BYTES) {
        sniffed = true;
        const s = sniff(concat(chunks, total));
        if (!s.supported) throw notImage(where, s.format);
      }
    }
    done = true;
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
    if (!done) reader.cancel().catch(() => undefined);
  }
  return concat(chunks, total);
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1 && chunks[0] !== undefined) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
