// fetchImage (edge/images/fetch-image.ts) inside workerd, against the loopback
// image server of the global setup (support/image-server.ts). The server is
// on 127.0.0.1, which the policy refuses, so every test that reaches it names
// it on the allow list — which is itself the allow-list test.
import { describe, expect, inject, it } from 'vitest';
import { ERROR_CODES } from '../../contracts/api/errors.js';
import type { Env } from '../../edge/env.js';
import { ImageFetchError, MAX_REDIRECTS, fetchImage, forbiddenHostReason, urlFetchAllowList, type ImageFetchErrorCode } from '../../edge/images/fetch-image.js';

const base = inject('imageServer');
const host = new URL(base).host; // 127.0.0.1:<port>
const port = new URL(base).port;
const opts = { maxBytes: 1 << 20, timeoutMs: 5_000, allowHosts: [host] };

async function failure(p: Promise<unknown>): Promise<ImageFetchError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImageFetchError);
  return err as ImageFetchError;
}

async function expectCode(p: Promise<unknown>, code: ImageFetchErrorCode): Promise<ImageFetchError> {
  const err = await failure(p);
  expect({ code: err.code, message: err.message }).toMatchObject({ code });
  expect(err.status).toBe(ERROR_CODES[code].status);
  return err;
}

const direct = async (path: string): Promise<Uint8Array> => new Uint8Array(await (await fetch(base + path)).arrayBuffer());

describe('fetchImage: what it fetches', () => {
  it.each(['/png', '/jpeg'])('fetches %s from an allowed host, byte for byte', async (path) => {
    const bytes = await fetchImage(base + path, opts);
    expect(bytes.length).toBeGreaterThan(8);
    expect(bytes).toEqual(await direct(path));
  });

  it('accepts a body exactly at the cap and refuses one byte less', async () => {
    const png = await direct('/png');
    expect((await fetchImage(`${base}/png`, { ...opts, maxBytes: png.length })).length).toBe(png.length);
    await expectCode(fetchImage(`${base}/png`, { ...opts, maxBytes: png.length - 1 }), 'url_too_large');
    expect((await fetchImage(`${base}/big?bytes=1000`, { ...opts, maxBytes: 1000 })).length).toBe(1000);
  });
});

describe('fetchImage: URL policy', () => {
  it.each([
    'ftp://example.com/cat.png',
    'file:///etc/passwd',
    'data:image/png;base64,iVBORw0KGgo=',
    'javascript:alert(1)',
    'ws://example.com/cat.png',
    'not a url',
    '/relative/cat.png',
    '',
  ])('refuses %j as url_scheme', async (url) => {
    await expectCode(fetchImage(url, opts), 'url_scheme');
  });

  it.each(['http://user:secret@example.com/cat.png', 'https://user@example.com/cat.png', 'http://:pw@example.com/'])(
    'refuses credentials in %s',
    async (url) => {
      const err = await expectCode(fetchImage(url, opts), 'url_forbidden');
      expect(err.message).not.toContain('secret');
    },
  );

  it('refuses credentials even for an allowed host', async () => {
    await expectCode(fetchImage(`http://u:p@${host}/png`, opts), 'url_forbidden');
  });

  it('sees shorthand IPv4 forms already normalized by the URL parser', () => {
    for (const u of ['http://2130706433/', 'http://0x7f.1/', 'http://0177.0.0.1/', 'http://127.1/', 'http://017700000001/']) {
      expect(new URL(u).hostname).toBe('127.0.0.1');
    }
    expect(new URL('http://[::ffff:127.0.0.1]/').hostname).toBe('[::ffff:7f00:1]');
  });

  it.each([
    // names
    'http://localhost/',
    'http://LOCALHOST./',
    'http://app.localhost:8080/cat.png',
    'http://printer.local/',
    'http://metadata.google.internal/computeMetadata/v1/',
    'http://metadata/computeMetadata/v1/',
    'http://nas.home.arpa/',
    // IPv4, canonical and shorthand
    'http://127.0.0.1/',
    'http://127.255.255.254:8080/',
    'http://2130706433/',
    'http://0x7f.1/',
    'http://0177.0.0.1/',
    'http://127.0.0.1./',
    'http://127%2e0%2e0%2e1/',
    'http://１２７。０。０。１/',
    'http://loc%61lhost/',
    'http://0.0.0.0/',
    'http://10.1.2.3/',
    'http://172.16.0.1/',
    'http://172.31.255.255/',
    'http://192.168.1.1/',
    'http://169.254.169.254/latest/meta-data/',
    'http://100.64.0.1/',
    'http://192.0.0.8/',
    'http://198.18.0.1/',
    'http://224.0.0.1/',
    'http://255.255.255.255/',
    // IPv6, plain and with embedded IPv4
    'http://[::1]/',
    'http://[::]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:a9fe:a9fe]/',
    'http://[::ffff:10.0.0.1]:8080/',
    'http://[::127.0.0.1]/',
    'http://[64:ff9b::a9fe:a9fe]/',
    'http://[64:ff9b:1::1]/',
    'http://[2002:7f00:1::]/',
    'http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/',
    'http://[fe80::1]/',
    'http://[fd00::1]/',
    'http://[fc00::1]/',
    'http://[fec0::1]/',
    'http://[ff02::1]/',
    'http://[2001:db8::1]/',
    'http://[100::1]/',
  ])('refuses %s as url_forbidden', async (url) => {
    await expectCode(fetchImage(url, { maxBytes: 1000, timeoutMs: 2000 }), 'url_forbidden');
  });

  it.each([
    ['8.8.8.8', null],
    ['172.32.0.1', null],
    ['100.128.0.1', null],
    ['169.255.0.1', null],
    ['[2606:4700:4700::1111]', null],
    ['[::ffff:808:808]', null],
    ['[64:ff9b::808:808]', null],
    ['[2002:808:808::]', null],
    ['example.com', null],
    ['images.example.co.uk', null],
    ['127.0.0.1', 'loopback'],
    ['[::ffff:7f00:1]', 'loopback'],
    ['[::ffff:a9fe:a9fe]', 'link-local'],
    ['[2002:a00:1::]', 'private (6to4)'],
    ['mylocal', 'single-label'],
    // Dotted IPv4 tails (the URL parser writes hex groups, but the function is exported).
    ['[::ffff:127.0.0.1]', 'loopback'],
    ['[::ffff:8.8.8.8]', null],
    ['[::ffff:300.0.0.1]', 'not a valid IPv6'],
    ['[1:2:3:4:5:6:7:8:9]', 'not a valid IPv6'],
    ['[1::2::3]', 'not a valid IPv6'],
  ])('forbiddenHostReason(%s) says %s', (h, why) => {
    const reason = forbiddenHostReason(h);
    if (why === null) expect(reason).toBeNull();
    else expect(reason).toContain(why);
  });

  it('lets a public name through the policy (the fetch itself then fails: .invalid never resolves)', async () => {
    const err = await failure(fetchImage('http://images.example.invalid/cat.png', { maxBytes: 1000, timeoutMs: 3000 }));
    expect(['url_fetch_failed', 'url_timeout']).toContain(err.code);
  });

  it('refuses the image server itself without an allow list', async () => {
    await expectCode(fetchImage(`${base}/png`, { maxBytes: 1 << 20, timeoutMs: 2000 }), 'url_forbidden');
    await expectCode(fetchImage(`${base}/png`, { ...opts, allowHosts: ['example.com', `127.0.0.1:${Number(port) + 1}`] }), 'url_forbidden');
  });

  it.each<[string, string[]]>([
    ['host:port', [host]],
    ['host (any port)', ['127.0.0.1']],
    ['a shorthand spelling of the host', [`127.1:${port}`, `0x7f.1:${port}`]],
    ['surrounding spaces', [` 127.0.0.1:${port} `]],
    ['a trailing dot', [`127.0.0.1.:${port}`]],
  ])('lets an allow-list entry through: %s', async (_name, allowHosts) => {
    expect((await fetchImage(`${base}/png`, { ...opts, allowHosts })).length).toBeGreaterThan(0);
  });

  it('reads URL_FETCH_ALLOW as a comma-separated host list', () => {
    const env = (vars: Record<string, string>): Env => vars as unknown as Env;
    expect(urlFetchAllowList(env({}))).toEqual([]);
    expect(urlFetchAllowList(env({ URL_FETCH_ALLOW: '' }))).toEqual([]);
    expect(urlFetchAllowList(env({ URL_FETCH_ALLOW: ' 127.0.0.1:8080 , Images.Internal ,, [::1]:9000' }))).toEqual(['127.0.0.1:8080', 'images.internal', '[::1]:9000']);
  });
});

describe('fetchImage: redirects', () => {
  it.each([1, 2, MAX_REDIRECTS])('follows %i redirect(s)', async (n) => {
    expect(await fetchImage(`${base}/redirect?n=${n}`, opts)).toEqual(await direct('/png'));
  });

  it.each([301, 303, 307, 308])('follows a %i', async (status) => {
    expect(await fetchImage(`${base}/redirect?n=1&status=${status}&to=/jpeg`, opts)).toEqual(await direct('/jpeg'));
  });

  it(`refuses more than ${MAX_REDIRECTS} redirects`, async () => {
    const err = await expectCode(fetchImage(`${base}/redirect?n=${MAX_REDIRECTS + 1}`, opts), 'url_fetch_failed');
    expect(err.message).toContain('redirects');
  });

  it('refuses a redirect without Location, or to a Location that is not a URL', async () => {
    await expectCode(fetchImage(`${base}/no-location`, opts), 'url_fetch_failed');
    const err = await expectCode(fetchImage(`${base}/redirect?n=1&to=${encodeURIComponent('http://[bad')}`, opts), 'url_fetch_failed');
    expect(err.message).toContain('invalid URL');
  });

  it.each<[string, string, ImageFetchErrorCode]>([
    ['another port of the allowed host', `http://127.0.0.1:${Number(port) + 1}/png`, 'url_forbidden'],
    ['localhost on the same port', `http://localhost:${port}/png`, 'url_forbidden'],
    ['cloud metadata', 'http://169.254.169.254/latest/meta-data/', 'url_forbidden'],
    ['IPv4-mapped loopback', `http://[::ffff:127.0.0.1]:${port}/png`, 'url_forbidden'],
    ['a file: URL', 'file:///etc/passwd', 'url_scheme'],
  ])('checks every redirect target: %s', async (_name, to, code) => {
    await expectCode(fetchImage(`${base}/redirect?n=2&to=${encodeURIComponent(to)}`, opts), code);
  });
});

describe('fetchImage: bodies, statuses and time', () => {
  it('refuses a Content-Length over the cap before reading', async () => {
    const err = await expectCode(fetchImage(`${base}/big?bytes=2000`, { ...opts, maxBytes: 1000 }), 'url_too_large');
    expect(err.message).toContain('Content-Length');
  });

  it('stops reading a chunked body at the cap and lets the connection go', async () => {
    const id = crypto.randomUUID();
    const err = await expectCode(fetchImage(`${base}/big-chunked?id=${id}`, { ...opts, maxBytes: 100_000 }), 'url_too_large');
    expect(err.message).toContain('more than 100000 bytes');
    // The server notices the cancel long before its 64 MiB are sent.
    interface Probe {
      sent: number;
      finished: boolean;
      closedEarly: boolean;
    }
    const readProbe = async (): Promise<Probe | null> => (await (await fetch(`${base}/probe?id=${id}`)).json()) as Probe | null;
    let probe = await readProbe();
    for (let i = 0; i < 50 && probe?.closedEarly !== true; i++) {
      await new Promise((r) => setTimeout(r, 50));
      probe = await readProbe();
    }
    expect(probe).toMatchObject({ finished: false, closedEarly: true });
    expect(probe?.sent ?? Infinity).toBeLessThan(64 * 1024 * 1024);
  });

  it.each([
    ['an HTML page', '/text'],
    ['an HTML page longer than the sniff window', '/text?bytes=5000'],
    ['an empty body', '/empty'],
    ['a 204 (no body)', '/status/204'],
    ['padding after a truncated signature', '/big?bytes=4'],
  ])('refuses %s as url_not_image', async (_name, path) => {
    await expectCode(fetchImage(base + path, opts), 'url_not_image');
  });

  it.each([404, 403, 500, 503, 304])('refuses HTTP %i as url_fetch_failed, naming the status', async (status) => {
    const err = await expectCode(fetchImage(`${base}/status/${status}`, opts), 'url_fetch_failed');
    expect(err.message).toContain(String(status));
  });

  it('never puts the query string in its messages', async () => {
    const err = await expectCode(fetchImage(`${base}/status/403?X-Amz-Signature=SECRET-TOKEN&sig=abc`, opts), 'url_fetch_failed');
    expect(err.message).toContain('/status/403');
    expect(err.message).not.toContain('SECRET');
    const redirected = await expectCode(fetchImage(`${base}/redirect?n=1&to=${encodeURIComponent('/status/404?token=SECRET-TOKEN')}`, opts), 'url_fetch_failed');
    expect(redirected.message).not.toContain('SECRET');
  });

  // workerd logs its own "Network connection lost" for this refused connection, caught or not.
  it('fails a connection that cannot be made as url_fetch_failed', async () => {
    await expectCode(fetchImage('http://127.0.0.1:1/png', { ...opts, allowHosts: ['127.0.0.1'] }), 'url_fetch_failed');
  });

  it.each(['/slow', '/stall'])('times out on %s', async (path) => {
    const started = Date.now();
    const err = await expectCode(fetchImage(base + path, { ...opts, timeoutMs: 300 }), 'url_timeout');
    expect(err.message).toContain('300 ms');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('counts redirects and body against one timeout', async () => {
    await expectCode(fetchImage(`${base}/redirect?n=3&to=/slow`, { ...opts, timeoutMs: 300 }), 'url_timeout');
  });

  it('rethrows the client abort, before and during the fetch', async () => {
    const gone = new Error('client went away');
    const before = new AbortController();
    before.abort(gone);
    await expect(fetchImage(`${base}/png`, { ...opts, signal: before.signal })).rejects.toBe(gone);

    for (const path of ['/stall', '/slow']) {
      const during = new AbortController();
      setTimeout(() => during.abort(gone), 100);
      await expect(fetchImage(base + path, { ...opts, signal: during.signal })).rejects.toBe(gone);
    }
  });

  it('maps every code to the shared error table', () => {
    const codes: ImageFetchErrorCode[] = ['url_scheme', 'url_forbidden', 'url_fetch_failed', 'url_timeout', 'url_too_large', 'url_not_image'];
    for (const code of codes) {
      const err = new ImageFetchError(code, 'x');
      expect(err.status).toBe(ERROR_CODES[code].status);
      expect(err.name).toBe('ImageFetchError');
    }
  });
});
