// safeFetchImage against a real HTTP server on loopback, reachable only through
// the allow list; every refusal is checked to happen before any connection.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UrlFetchError, forbiddenReason, parseIp, safeFetchImage, safeFetchImageDetailed, type LookupFn } from '../../gpu-service/net/safe-fetch.js';

const ROOT = join(import.meta.dirname, '..', '..');
const PNG = new Uint8Array(readFileSync(join(ROOT, 'test/fixtures/preprocess/images/p_300x250.png')));

let server: Server;
let port: number;
let hits: { url: string; host: string | undefined }[] = [];
const stalled: ServerResponse[] = [];

function handler(req: IncomingMessage, res: ServerResponse): void {
  hits.push({ url: req.url ?? '', host: req.headers.host });
  const url = req.url ?? '';
  if (url === '/img.png') {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': PNG.length });
    res.end(PNG);
  } else if (url === '/text') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html><body>' + 'not an image '.repeat(50) + '</body></html>');
  } else if (url === '/tiny-text') {
    res.writeHead(200, { 'content-type': 'image/png' });
    res.end('hello');
  } else if (url === '/big-declared') {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': 10_000_000 });
    res.write(PNG.subarray(0, 100));
    // never finishes: the client must give up on the header alone
  } else if (url === '/big-chunked') {
    res.writeHead(200, { 'content-type': 'image/png' });
    res.write(PNG);
    const more = (): void => {
      if (res.destroyed) return;
      if (res.write(new Uint8Array(64 * 1024))) setImmediate(more);
      else res.once('drain', more);
    };
    more();
  } else if (url === '/stall') {
    res.writeHead(200, { 'content-type': 'image/png' });
    res.write(PNG.subarray(0, 10));
    stalled.push(res);
  } else if (url === '/redirect-loopback') {
    res.writeHead(302, { location: `http://127.0.0.1:${port}/img.png` });
    res.end();
  } else if (url === '/redirect-metadata') {
    res.writeHead(301, { location: 'http://169.254.169.254/latest/meta-data/' });
    res.end();
  } else if (url === '/redirect-relative') {
    res.writeHead(307, { location: '/img.png' });
    res.end();
  } else if (url.startsWith('/loop')) {
    const n = Number(url.slice(5) || '0');
    res.writeHead(302, { location: `/loop${n + 1}` });
    res.end();
  } else {
    res.writeHead(404);
    res.end('no');
  }
}

/** Names only this test knows; the system resolver has none of them, so a connection that used it would fail. */
function fakeDns(table: Record<string, string[]>, calls?: string[]): LookupFn {
  return async (host) => {
    calls?.push(host);
    const a = table[host];
    if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

async function failure(p: Promise<unknown>): Promise<UrlFetchError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(UrlFetchError);
    return err as UrlFetchError;
  }
  throw new Error('expected the fetch to fail');
}

beforeAll(async () => {
  server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  for (const r of stalled) r.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  hits = [];
});

describe('safeFetchImage: allowed fetches', () => {
  it('fetches an image from an allow-listed loopback address (IP or CIDR)', async () => {
    const a = await safeFetchImage(`http://127.0.0.1:${port}/img.png`, { allow: ['127.0.0.1'] });
    expect(Buffer.from(a).equals(Buffer.from(PNG))).toBe(true);
    const b = await safeFetchImageDetailed(`http://127.0.0.1:${port}/img.png`, { allow: ['127.0.0.0/8'] });
    expect(b).toMatchObject({ format: 'PNG', address: '127.0.0.1', contentType: 'image/png' });
  });

  it('connects to the address it checked (pinned) and keeps the Host header; DNS is asked once per hop', async () => {
    const calls: string[] = [];
    // The second answer would be a rebinding to a forbidden address: it must never be asked for.
    let n = 0;
    const rebinding: LookupFn = async (host) => {
      calls.push(host);
      return [{ address: n++ === 0 ? '127.0.0.1' : '10.0.0.1', family: 4 }];
    };
    const out = await safeFetchImage(`http://images.internal.test:${port}/img.png`, { allow: ['images.internal.test'], lookup: rebinding });
    expect(out.length).toBe(PNG.length);
    expect(calls).toEqual(['images.internal.test']);
    expect(hits).toEqual([{ url: '/img.png', host: `images.internal.test:${port}` }]);
  });

  it('follows a relative redirect on an allowed host, checking it again', async () => {
    const calls: string[] = [];
    const out = await safeFetchImage(`http://store.test:${port}/redirect-relative`, { allow: ['*.test'], lookup: fakeDns({ 'store.test': ['127.0.0.1'] }, calls) });
    expect(out.length).toBe(PNG.length);
    expect(calls).toEqual(['store.test', 'store.test']);
    expect(hits.map((h) => h.url)).toEqual(['/redirect-relative', '/img.png']);
  });
});

describe('safeFetchImage: refusals (no connection is made)', () => {
  const forbidden = [
    'http://127.0.0.1:PORT/img.png',
    'http://127.1.2.3:PORT/img.png',
    'http://localhost:PORT/img.png',
    'http://[::1]:PORT/img.png',
    'http://[::ffff:127.0.0.1]:PORT/img.png',
    'http://[::ffff:a9fe:a9fe]/latest/meta-data/',
    'http://169.254.169.254/latest/meta-data/',
    'http://10.1.2.3/x.png',
    'http://172.16.5.4/x.png',
    'http://172.31.255.255/x.png',
    'http://192.168.0.1/x.png',
    'http://100.64.0.1/x.png',
    'http://0.0.0.0:PORT/img.png',
    'http://[::]:PORT/img.png',
    'http://224.0.0.1/x.png',
    'http://[fe80::1]/x.png',
    'http://[fd12:3456::1]/x.png',
    'http://[ff02::1]/x.png',
    'http://2130706433:PORT/img.png', // 127.0.0.1 as one decimal number
    'http://0x7f.1:PORT/img.png',
    'https://127.0.0.1:PORT/img.png',
  ];
  it.each(forbidden)('%s → url_forbidden (422)', async (u) => {
    const e = await failure(safeFetchImage(u.replace('PORT', String(port)), { timeoutMs: 2000 }));
    expect(e.code).toBe('url_forbidden');
    expect(e.status).toBe(422);
    expect(hits).toEqual([]);
  });

  it('a host name that resolves to loopback (or to any private address among public ones) is refused', async () => {
    const dns = fakeDns({ 'evil.example': ['127.0.0.1'], 'mixed.example': ['93.184.216.34', '10.0.0.7'], 'v6.example': ['::1'] });
    for (const host of ['evil.example', 'mixed.example', 'v6.example']) {
      const e = await failure(safeFetchImage(`http://${host}:${port}/img.png`, { lookup: dns }));
      expect(e.code, host).toBe('url_forbidden');
      expect(e.message).toContain(host);
    }
    expect(hits).toEqual([]);
  });

  it('a redirect from an allowed host to loopback or the metadata address is refused', async () => {
    const opts = { allow: ['cdn.test'], lookup: fakeDns({ 'cdn.test': ['127.0.0.1'] }) };
    let e = await failure(safeFetchImage(`http://cdn.test:${port}/redirect-loopback`, opts));
    expect(e.code).toBe('url_forbidden');
    expect(hits.map((h) => h.url)).toEqual(['/redirect-loopback']); // /img.png was never requested
    e = await failure(safeFetchImage(`http://cdn.test:${port}/redirect-metadata`, opts));
    expect(e.code).toBe('url_forbidden');
    expect(e.message).toContain('169.254.169.254');
  });

  it('without the allow list, the loopback test server is refused; an allow entry for another host does not help', async () => {
    expect((await failure(safeFetchImage(`http://127.0.0.1:${port}/img.png`))).code).toBe('url_forbidden');
    expect((await failure(safeFetchImage(`http://127.0.0.1:${port}/img.png`, { allow: ['10.0.0.0/8', 'other.test'] }))).code).toBe('url_forbidden');
    expect(hits).toEqual([]);
  });

  it('only http and https', async () => {
    for (const u of ['ftp://example.com/a.png', 'file:///etc/passwd', 'data:image/png;base64,iVBORw0KGgo=', 'gopher://x/', 'not a url', '/relative.png']) {
      const e = await failure(safeFetchImage(u));
      expect(e.code, u).toBe('url_scheme');
      expect(e.status).toBe(422);
    }
  });
});

describe('safeFetchImage: caps and content', () => {
  const allow = ['127.0.0.1'];
  const base = (): string => `http://127.0.0.1:${port}`;

  it('refuses a body over maxBytes from Content-Length, and a stream that runs over', async () => {
    const t0 = Date.now();
    let e = await failure(safeFetchImage(`${base()}/big-declared`, { allow, maxBytes: 1_000_000, timeoutMs: 5000 }));
    expect(e.code).toBe('url_too_large');
    expect(e.status).toBe(413);
    expect(Date.now() - t0).toBeLessThan(4000);
    e = await failure(safeFetchImage(`${base()}/big-chunked`, { allow, maxBytes: 300_000, timeoutMs: 5000 }));
    expect(e.code).toBe('url_too_large');
    // The image itself is within a cap that fits it.
    expect((await safeFetchImage(`${base()}/img.png`, { allow, maxBytes: PNG.length })).length).toBe(PNG.length);
    expect((await failure(safeFetchImage(`${base()}/img.png`, { allow, maxBytes: PNG.length - 1 }))).code).toBe('url_too_large');
  });

  it('gives up on a server that stalls, with url_timeout (504)', async () => {
    const t0 = Date.now();
    const e = await failure(safeFetchImage(`${base()}/stall`, { allow, timeoutMs: 300 }));
    expect(e.code).toBe('url_timeout');
    expect(e.status).toBe(504);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('refuses content that is not an image we decode, whatever its Content-Type says', async () => {
    for (const path of ['/text', '/tiny-text']) {
      const e = await failure(safeFetchImage(`${base()}${path}`, { allow }));
      expect(e.code, path).toBe('url_not_image');
      expect(e.status).toBe(415);
    }
  });

  it('non-2xx answers and redirect loops fail with url_fetch_failed (502)', async () => {
    let e = await failure(safeFetchImage(`${base()}/missing`, { allow }));
    expect(e.code).toBe('url_fetch_failed');
    expect(e.status).toBe(502);
    expect(e.message).toContain('404');
    e = await failure(safeFetchImage(`${base()}/loop0`, { allow }));
    expect(e.code).toBe('url_fetch_failed');
    expect(e.message).toMatch(/redirects/);
    expect(hits.filter((h) => h.url.startsWith('/loop'))).toHaveLength(4); // the first + 3 redirects followed
    e = await failure(safeFetchImage(`http://unresolvable.test:${port}/img.png`, { lookup: fakeDns({}) }));
    expect(e.code).toBe('url_fetch_failed');
  });

  it('an abort signal stops the fetch', async () => {
    const ac = new AbortController();
    const p = safeFetchImage(`${base()}/stall`, { allow, timeoutMs: 10_000, signal: ac.signal });
    setTimeout(() => ac.abort(new Error('client gone')), 50);
    await expect(p).rejects.toThrow('client gone');
  });
});

describe('address classification', () => {
  it('knows the forbidden ranges and their embedded IPv4 forms', () => {
    const bad = ['127.0.0.1', '10.255.0.1', '172.20.0.1', '192.168.99.1', '169.254.169.254', '100.127.255.254', '0.1.2.3', '255.255.255.255', '239.1.1.1',
      '::1', '::', 'fe80::abcd', 'febf::1', 'fc00::1', 'fdff::1', 'ff05::2', '::ffff:10.0.0.1', '::ffff:169.254.169.254', '::127.0.0.1',
      '64:ff9b::7f00:1', '2002:a9fe:a9fe::1', '2002:c0a8:0101::', '2001:db8::1'];
    for (const ip of bad) expect(forbiddenReason(ip), ip).not.toBeNull();
    const good = ['8.8.8.8', '1.1.1.1', '93.184.216.34', '172.15.255.255', '172.32.0.1', '100.63.255.255', '100.128.0.1', '169.253.255.255',
      '2606:4700:4700::1111', '2a00:1450:4001:82b::200e', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:0808:0808::1'];
    for (const ip of good) expect(forbiddenReason(ip), ip).toBeNull();
    expect(forbiddenReason('169.254.169.254')).toMatch(/metadata/);
  });

  it('parses IPv6 text forms to the same 16 bytes', () => {
    const a = parseIp('::ffff:127.0.0.1')!;
    expect(Buffer.from(a).equals(Buffer.from(parseIp('0:0:0:0:0:ffff:7f00:1')!))).toBe(true);
    expect(Buffer.from(parseIp('127.0.0.1')!).equals(Buffer.from(a))).toBe(true);
    expect(parseIp('fe80::1%eth0')).not.toBeNull();
    expect(parseIp('not-an-ip')).toBeNull();
  });
});
