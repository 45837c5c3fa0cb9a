// Abuse (issue 8): a table of bad inputs sent to the whole loopback stack
// (wrangler dev in front of two GPU services), each with the status and
// problem `code` it must get — malformed JSON and multipart, wrong types,
// oversized and zero-byte images, decompression bombs (headers declaring huge
// dimensions, and real ones made with sharp), bad base64, SSRF URLs, missing /
// wrong / revoked / malformed API keys, a rate-limit burst, unknown routes and
// methods, unsupported content types, batch and job limits — plus rows that
// are hostile but VALID (unicode and control-character prompts: 200, no
// crash). After every row a real score request (a never-seen image, so the GPU
// tier works too) must still answer 200; a job accepted before the first row
// must complete with every item at the end (nothing accepted is lost).
//
// Webhook forgeries (forged or replayed signatures, tampered bodies, wrong
// secrets) are checked against `verifyWebhook` on a real delivery the
// receiver got from the stack.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '../../contracts/api/index.js';
import { verifyWebhook, WebhookVerificationError } from '../../contracts/webhooks.js';
import { bombs, type Bombs } from './support/bombs.js';
import { b64, finished, startStack, uniqueJpegs, until, WEBHOOK_SECRET, type Delivery, type Stack } from './support/stack.js';

let s: Stack;
let unique: (n: number) => Buffer;
let fx: Bombs;
let probeN = 0;
let canary: { id: string; items: number } | undefined;
/** A standard key of another tenant (jobs are per tenant). */
let otherKey: string;

beforeAll(async () => {
  s = await startStack({ origins: 2 });
  unique = await uniqueJpegs();
  fx = await bombs();
  otherKey = (await s.createKey('standard', 'abuse-other-tenant')).key;
}, 240_000);

afterAll(async () => {
  await s?.stop();
});

// ---------------------------------------------------------------------------
// How rows send

type Headers = Record<string, string>;
const auth = (key = s.key): Headers => ({ authorization: `Bearer ${key}` });
const send = (path: string, init: { method?: string; headers?: Headers; body?: RequestInit['body'] } = {}): Promise<Response> =>
  fetch(`${s.edgeUrl}${path}`, { method: init.method ?? 'POST', headers: init.headers ?? auth(), ...(init.body !== undefined ? { body: init.body } : {}), signal: AbortSignal.timeout(60_000) });
const json = (body: unknown, path = '/v1/score', headers: Headers = auth()): Promise<Response> =>
  send(path, { headers: { ...headers, 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
const score1 = (prompt: unknown, img: Buffer | { url: string } | { data: string }): Promise<Response> =>
  json({ prompt, images: [Buffer.isBuffer(img) ? b64(img) : img] });
const png = () => s.images[0]!;
const img = (data: string) => ({ data });
const url = (u: string) => ({ url: u });
const job = (body: unknown, headers: Headers = auth()) => json(body, '/v1/jobs', headers);
const jobItem = (prompt = 'a job item', images: unknown[] = [b64(s.images[1]!)]) => ({ prompt, images });

/** A multipart body written by hand, so it can be broken on purpose. */
function multipart(parts: { name: string; filename?: string; type?: string; data: Buffer | string }[], opts: { boundary?: string; truncate?: boolean } = {}): { body: Buffer; type: string } {
  const boundary = opts.boundary ?? 'e2eBoundary7MA4YWxkTrZu0gW';
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disp = `form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}`;
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disp}\r\n${p.type !== undefined ? `Content-Type: ${p.type}\r\n` : ''}\r\n`));
    chunks.push(Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data));
    chunks.push(Buffer.from('\r\n'));
  }
  if (!opts.truncate) chunks.push(Buffer.from(`--${boundary}--\r\n`));
  else chunks.push(Buffer.from(`--${boundary.slice(0, 5)}`)); // cut inside the closing delimiter
  return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
}
const form = (m: { body: Buffer; type: string }, type = m.type) => send('/v1/score', { headers: { ...auth(), 'content-type': type }, body: m.body });
const pngPart = (name = 'a') => ({ name, filename: `${name}.png`, type: 'image/png', data: png() });

/** Sends `n` requests with a fresh trial key (10 per 10 s): the first 10 must pass; returns the first 429 (or the last answer). */
async function burst(n: number): Promise<Response> {
  const { key } = await s.createKey('trial', 'abuse-trial');
  let last: Response | undefined;
  for (let i = 0; i < n; i++) {
    const r = await send('/v1/models', { method: 'GET', headers: auth(key) });
    if (i < 10) expect(r.status, `request ${i + 1} of the burst`).toBe(200);
    if (r.status === 429) return r;
    await r.arrayBuffer();
    last = r;
  }
  return last!;
}

// ---------------------------------------------------------------------------
// The table

interface Row {
  name: string;
  send: () => Promise<Response>;
  status: number;
  /** Problem code; undefined for a 200 row (a valid but hostile input). */
  code?: string;
}

const rows: Row[] = [
  // Malformed JSON
  { name: 'JSON truncated mid-array', send: () => json('{"prompt": "x", "images": ['), status: 400, code: 'invalid_json' },
  { name: 'JSON empty body', send: () => json(''), status: 400, code: 'invalid_json' },
  { name: 'JSON with trailing garbage', send: () => json('{"prompt":"x","images":[{"data":"iVBORw0KGgo="}]} tail'), status: 400, code: 'invalid_json' },
  { name: 'JSON single-quoted', send: () => json("{'prompt': 'x'}"), status: 400, code: 'invalid_json' },
  { name: 'JSON invalid UTF-8 bytes', send: () => send('/v1/score', { headers: { ...auth(), 'content-type': 'application/json' }, body: Buffer.from([0x7b, 0xff, 0xfe, 0x22, 0x7d]) }), status: 400, code: 'invalid_json' },
  { name: 'JSON nested 100,000 deep', send: () => json('['.repeat(100_000) + ']'.repeat(100_000)), status: 400, code: 'invalid_request' },
  { name: 'JSON array body', send: () => json([1, 2]), status: 400, code: 'invalid_request' },
  { name: 'JSON null body', send: () => json('null'), status: 400, code: 'invalid_request' },
  { name: 'JSON string body', send: () => json('"prompt"'), status: 400, code: 'invalid_request' },
  // Wrong types and shapes
  { name: 'prompt is a number', send: () => json({ prompt: 42, images: [b64(png())] }), status: 400, code: 'invalid_request' },
  { name: 'prompt is null', send: () => json({ prompt: null, images: [b64(png())] }), status: 400, code: 'invalid_request' },
  { name: 'prompt is an array', send: () => json({ prompt: ['a', 'b'], images: [b64(png())] }), status: 400, code: 'invalid_request' },
  { name: 'prompt missing', send: () => json({ images: [b64(png())] }), status: 400, code: 'invalid_request' },
  { name: 'images missing', send: () => json({ prompt: 'x' }), status: 400, code: 'invalid_request' },
  { name: 'images is an object', send: () => json({ prompt: 'x', images: { data: png().toString('base64') } }), status: 400, code: 'invalid_request' },
  { name: 'images empty', send: () => json({ prompt: 'x', images: [] }), status: 400, code: 'invalid_request' },
  { name: 'image is a bare string', send: () => json({ prompt: 'x', images: [png().toString('base64')] }), status: 400, code: 'invalid_request' },
  { name: 'image data is a number', send: () => json({ prompt: 'x', images: [{ data: 12345 }] }), status: 400, code: 'invalid_request' },
  { name: 'image has both data and url', send: () => json({ prompt: 'x', images: [{ data: png().toString('base64'), url: 'https://example.com/a.png' }] }), status: 400, code: 'invalid_request' },
  { name: 'unknown top-level field', send: () => json({ prompt: 'x', images: [b64(png())], model: 'other' }), status: 400, code: 'invalid_request' },
  { name: '17 images', send: () => json({ prompt: 'x', images: Array.from({ length: 17 }, () => b64(png())) }), status: 422, code: 'too_many_images' },
  { name: 'prompt of 2,049 characters', send: () => score1('p'.repeat(2049), png()), status: 422, code: 'prompt_too_long' },
  { name: 'prompt of 2,049 emoji (astral code points)', send: () => score1('🦊'.repeat(2049), png()), status: 422, code: 'prompt_too_long' },
  // Bad base64
  { name: 'base64 with % signs', send: () => score1('x', img('%%%%')), status: 400, code: 'invalid_base64' },
  { name: 'base64 of impossible length (4n+1)', send: () => score1('x', img('AAAAA')), status: 400, code: 'invalid_base64' },
  { name: 'base64 with padding in the middle', send: () => score1('x', img('AA==AA==')), status: 400, code: 'invalid_base64' },
  { name: 'base64 with a line break', send: () => score1('x', img(png().toString('base64').replace(/^(.{20})/, '$1\n'))), status: 400, code: 'invalid_base64' },
  { name: 'base64 with three = signs', send: () => score1('x', img('AAAA===')), status: 400, code: 'invalid_base64' },
  { name: 'data: URL with a non-base64 payload', send: () => score1('x', img('data:image/png;base64,@@@@')), status: 400, code: 'invalid_base64' },
  { name: 'base64 with a unicode letter', send: () => score1('x', img('AAAÄ')), status: 400, code: 'invalid_base64' },
  // Zero-byte, oversized, not-an-image, corrupt
  { name: 'zero-byte image (empty base64)', send: () => score1('x', img('')), status: 400, code: 'invalid_request' },
  { name: 'zero-byte image (data: URL, no payload)', send: () => score1('x', img('data:image/png;base64,')), status: 400, code: 'image_empty' },
  { name: 'image over 8 MiB', send: () => score1('x', img('A'.repeat(12 * 1024 * 1024))), status: 413, code: 'image_too_large' },
  { name: 'body over 32 MiB', send: () => json({ prompt: 'x', images: [img('A'.repeat(33 * 1024 * 1024))] }), status: 413, code: 'payload_too_large' },
  { name: 'a text file as image', send: () => score1('x', img(Buffer.from('just some text, not pixels').toString('base64'))), status: 415, code: 'unsupported_image_format' },
  { name: 'an ELF binary as image', send: () => score1('x', img(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0]).toString('base64'))), status: 415, code: 'unsupported_image_format' },
  { name: 'a PNG cut after 40 bytes', send: () => score1('x', png().subarray(0, 40)), status: 422, code: 'image_decode_failed' },
  { name: 'a PNG signature only', send: () => score1('x', png().subarray(0, 8)), status: 422, code: 'image_decode_failed' },
  // Decompression bombs: dimensions over the 40 M pixel limit, refused from the header
  { name: 'bomb: PNG header 100000×100000', send: () => score1('x', fx.pngHeader), status: 413, code: 'image_too_large' },
  { name: 'bomb: JPEG SOF 65500×65500', send: () => score1('x', fx.jpegHeader), status: 413, code: 'image_too_large' },
  { name: 'bomb: GIF screen 65535×65535', send: () => score1('x', fx.gifHeader), status: 413, code: 'image_too_large' },
  { name: 'bomb: WebP lossless 16384×16384', send: () => score1('x', fx.webpLossless), status: 413, code: 'image_too_large' },
  { name: 'bomb: WebP VP8X canvas 16384×16384', send: () => score1('x', fx.webpExtended), status: 413, code: 'image_too_large' },
  { name: 'bomb: real PNG 8000×6000 (sharp, a few KB)', send: () => score1('x', fx.pngReal), status: 413, code: 'image_too_large' },
  { name: 'bomb: real JPEG 7000×7000 (sharp)', send: () => score1('x', fx.jpegReal), status: 413, code: 'image_too_large' },
  { name: 'bomb: real PNG via multipart', send: () => form(multipart([{ name: 'prompt', data: 'x' }, { name: 'a', filename: 'a.png', type: 'image/png', data: fx.pngReal }])), status: 413, code: 'image_too_large' },
  // Malformed multipart
  { name: 'multipart truncated inside the closing boundary', send: () => form(multipart([{ name: 'prompt', data: 'x' }, pngPart()], { truncate: true })), status: 400, code: 'invalid_multipart' },
  { name: 'multipart without a boundary parameter', send: () => form(multipart([{ name: 'prompt', data: 'x' }, pngPart()]), 'multipart/form-data'), status: 400, code: 'invalid_multipart' },
  { name: 'multipart with another boundary than declared', send: () => form(multipart([{ name: 'prompt', data: 'x' }, pngPart()]), 'multipart/form-data; boundary=notTheOne'), status: 400, code: 'invalid_multipart' },
  { name: 'multipart without a prompt', send: () => form(multipart([pngPart()])), status: 400, code: 'invalid_request' },
  { name: 'multipart prompt sent as a file', send: () => form(multipart([{ name: 'prompt', filename: 'p.txt', type: 'text/plain', data: 'x' }, pngPart()])), status: 400, code: 'invalid_request' },
  { name: 'multipart prompt given twice', send: () => form(multipart([{ name: 'prompt', data: 'x' }, { name: 'prompt', data: 'y' }, pngPart()])), status: 400, code: 'invalid_request' },
  { name: 'multipart without an image', send: () => form(multipart([{ name: 'prompt', data: 'x' }])), status: 400, code: 'invalid_request' },
  { name: 'multipart image sent as a text field', send: () => form(multipart([{ name: 'prompt', data: 'x' }, { name: 'a', data: png().toString('base64') }])), status: 400, code: 'invalid_request' },
  { name: 'multipart zero-byte file', send: () => form(multipart([{ name: 'prompt', data: 'x' }, { name: 'a', filename: 'a.png', type: 'image/png', data: Buffer.alloc(0) }])), status: 400, code: 'image_empty' },
  { name: 'multipart 17 files', send: () => form(multipart([{ name: 'prompt', data: 'x' }, ...Array.from({ length: 17 }, (_, i) => pngPart(`f${i}`))])), status: 422, code: 'too_many_images' },
  // SSRF and bad URLs (the allow list admits only the image server's host:port)
  { name: 'URL file:///etc/passwd', send: () => score1('x', url('file:///etc/passwd')), status: 422, code: 'url_scheme' },
  { name: 'URL gopher://', send: () => score1('x', url('gopher://127.0.0.1:70/_GET')), status: 422, code: 'url_scheme' },
  { name: 'URL ftp://', send: () => score1('x', url('ftp://example.com/a.png')), status: 422, code: 'url_scheme' },
  { name: 'URL javascript:', send: () => score1('x', url('javascript:alert(1)')), status: 422, code: 'url_scheme' },
  { name: 'URL that is not a URL', send: () => score1('x', url('not a url')), status: 422, code: 'url_scheme' },
  { name: 'URL http://127.0.0.1/', send: () => score1('x', url('http://127.0.0.1/')), status: 422, code: 'url_forbidden' },
  { name: 'URL to a GPU service (loopback, other port)', send: () => score1('x', url(`${s.originUrls[0]}/metrics`)), status: 422, code: 'url_forbidden' },
  { name: 'URL http://[::1]/', send: () => score1('x', url('http://[::1]/')), status: 422, code: 'url_forbidden' },
  { name: 'URL http://[::ffff:127.0.0.1]/', send: () => score1('x', url('http://[::ffff:127.0.0.1]/')), status: 422, code: 'url_forbidden' },
  { name: 'URL http://169.254.169.254 (metadata)', send: () => score1('x', url('http://169.254.169.254/latest/meta-data/')), status: 422, code: 'url_forbidden' },
  { name: 'URL http://0x7f000001/ (hex loopback)', send: () => score1('x', url('http://0x7f000001/')), status: 422, code: 'url_forbidden' },
  { name: 'URL http://2130706433/ (decimal loopback)', send: () => score1('x', url('http://2130706433/')), status: 422, code: 'url_forbidden' },
  { name: 'URL http://0177.0.0.1/ (octal loopback)', send: () => score1('x', url('http://0177.0.0.1/')), status: 422, code: 'url_forbidden' },
  { name: 'URL http://localhost./ (trailing dot)', send: () => score1('x', url('http://localhost./')), status: 422, code: 'url_forbidden' },
  { name: 'URL http://10.0.0.1/ (private)', send: () => score1('x', url('http://10.0.0.1/a.png')), status: 422, code: 'url_forbidden' },
  { name: 'URL http://metadata/ (single label)', send: () => score1('x', url('http://metadata/computeMetadata/v1/')), status: 422, code: 'url_forbidden' },
  { name: 'URL with credentials (allowed host)', send: () => score1('x', url(`http://user:pass@127.0.0.1:${s.imageServer.port}/img/0`)), status: 422, code: 'url_forbidden' },
  { name: 'URL redirecting to a private host', send: () => score1('x', url(`${s.imageServer.url}/redirect?to=${encodeURIComponent(`${s.originUrls[0]}/healthz`)}`)), status: 422, code: 'url_forbidden' },
  { name: 'URL redirecting to the metadata address', send: () => score1('x', url(`${s.imageServer.url}/redirect?to=${encodeURIComponent('http://169.254.169.254/')}`)), status: 422, code: 'url_forbidden' },
  { name: 'URL redirecting to file:', send: () => score1('x', url(`${s.imageServer.url}/redirect?to=${encodeURIComponent('file:///etc/passwd')}`)), status: 422, code: 'url_scheme' },
  { name: 'URL redirecting forever', send: () => score1('x', url(`${s.imageServer.url}/loop`)), status: 502, code: 'url_fetch_failed' },
  { name: 'URL answering text/plain', send: () => score1('x', url(`${s.imageServer.url}/text`)), status: 415, code: 'url_not_image' },
  { name: 'URL answering 9 MiB', send: () => score1('x', url(`${s.imageServer.url}/big`)), status: 413, code: 'url_too_large' },
  // API keys and Authorization
  { name: 'no Authorization header', send: () => send('/v1/score', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', images: [b64(png())] }) }), status: 401, code: 'unauthorized' },
  { name: 'unknown API key', send: () => json({ prompt: 'x', images: [b64(png())] }, '/v1/score', auth('irk_not-a-real-key-0123456789')), status: 401, code: 'unauthorized' },
  { name: 'Basic credentials', send: () => json({ prompt: 'x', images: [b64(png())] }, '/v1/score', { authorization: 'Basic dXNlcjpwYXNz' }), status: 401, code: 'unauthorized' },
  { name: '"Bearer" without a token', send: () => json({ prompt: 'x', images: [b64(png())] }, '/v1/score', { authorization: 'Bearer' }), status: 401, code: 'unauthorized' },
  { name: 'Bearer with two tokens', send: () => json({ prompt: 'x', images: [b64(png())] }, '/v1/score', { authorization: `Bearer ${s.key} ${s.key}` }), status: 401, code: 'unauthorized' },
  { name: 'Bearer with characters outside b64token', send: () => json({ prompt: 'x', images: [b64(png())] }, '/v1/score', { authorization: 'Bearer irk_<script>' }), status: 401, code: 'unauthorized' },
  { name: 'Bearer with a 16 KB token', send: () => json({ prompt: 'x', images: [b64(png())] }, '/v1/score', auth('k'.repeat(16_000))), status: 401, code: 'unauthorized' },
  { name: 'the origin secret used as an API key', send: () => json({ prompt: 'x', images: [b64(png())] }, '/v1/score', auth('e2e-stack-origin-secret-0123456789')), status: 401, code: 'unauthorized' },
  {
    name: 'revoked key',
    send: async () => {
      const k = await s.createKey('standard', 'abuse-revoked');
      await s.revokeKey(k.id);
      return json({ prompt: 'x', images: [b64(png())] }, '/v1/score', auth(k.key));
    },
    status: 401,
    code: 'unauthorized',
  },
  { name: 'admin route with an API key', send: () => send('/admin/keys', { method: 'GET', headers: auth() }), status: 403, code: 'forbidden' },
  { name: 'admin route without credentials', send: () => send('/admin/keys', { method: 'GET', headers: {} }), status: 401, code: 'unauthorized' },
  // Rate limit
  { name: 'rate-limit burst: 12 requests on a trial key', send: () => burst(12), status: 429, code: 'rate_limited' },
  // Routes, methods, content types
  { name: 'unknown route', send: () => send('/v2/score', { method: 'GET' }), status: 404, code: 'not_found' },
  // The URL parser resolves %2e%2e to "..": it reaches /admin/keys, where an API key is not the admin secret.
  { name: 'encoded dot-segments to the admin API', send: () => send('/v1/%2e%2e/admin/keys', { method: 'GET' }), status: 403, code: 'forbidden' },
  { name: 'GET /v1/score', send: () => send('/v1/score', { method: 'GET' }), status: 405, code: 'method_not_allowed' },
  { name: 'DELETE /v1/score', send: () => send('/v1/score', { method: 'DELETE' }), status: 405, code: 'method_not_allowed' },
  { name: 'PUT /v1/jobs', send: () => send('/v1/jobs', { method: 'PUT', body: '{}' }), status: 405, code: 'method_not_allowed' },
  { name: 'text/plain body', send: () => send('/v1/score', { headers: { ...auth(), 'content-type': 'text/plain' }, body: 'hello' }), status: 415, code: 'unsupported_media_type' },
  { name: 'no Content-Type', send: () => send('/v1/score', { headers: auth(), body: new Uint8Array(Buffer.from('{"prompt":"x"}')) }), status: 415, code: 'unsupported_media_type' },
  { name: 'application/xml body', send: () => send('/v1/score', { headers: { ...auth(), 'content-type': 'application/xml' }, body: '<score/>' }), status: 415, code: 'unsupported_media_type' },
  { name: 'form-urlencoded body', send: () => send('/v1/score', { headers: { ...auth(), 'content-type': 'application/x-www-form-urlencoded' }, body: 'prompt=x' }), status: 415, code: 'unsupported_media_type' },
  { name: 'multipart to /v1/score:batch', send: () => send('/v1/score:batch', { headers: { ...auth(), 'content-type': multipart([{ name: 'prompt', data: 'x' }, pngPart()]).type }, body: multipart([{ name: 'prompt', data: 'x' }, pngPart()]).body }), status: 415, code: 'unsupported_media_type' },
  // Batch limits
  { name: 'batch of 17 requests', send: () => json({ requests: Array.from({ length: 17 }, () => ({ prompt: 'x', images: [b64(png())] })) }, '/v1/score:batch'), status: 422, code: 'too_many_requests_in_batch' },
  { name: 'batch of 80 images', send: () => json({ requests: Array.from({ length: 5 }, () => ({ prompt: 'x', images: Array.from({ length: 16 }, () => b64(png())) })) }, '/v1/score:batch'), status: 422, code: 'too_many_images' },
  { name: 'batch with no requests', send: () => json({ requests: [] }, '/v1/score:batch'), status: 400, code: 'invalid_request' },
  // Jobs
  { name: 'job with 1,001 items', send: () => job({ items: Array.from({ length: 1001 }, () => jobItem('x', [img('iVBORw0KGgo=')])) }), status: 422, code: 'too_many_items' },
  { name: 'job with no items', send: () => job({ items: [] }), status: 400, code: 'invalid_request' },
  { name: 'job with duplicate item ids', send: () => job({ items: [{ id: 'a', ...jobItem() }, { id: 'a', ...jobItem() }] }), status: 400, code: 'invalid_request' },
  { name: 'job with bad base64 in an item', send: () => job({ items: [jobItem(), jobItem('x', [img('%%%')])] }), status: 400, code: 'invalid_base64' },
  { name: 'job with a too-long prompt', send: () => job({ items: [jobItem('p'.repeat(2049))] }), status: 422, code: 'prompt_too_long' },
  { name: 'job with metadata over 16 KiB', send: () => job({ items: [jobItem()], metadata: { blob: 'm'.repeat(17 * 1024) } }), status: 400, code: 'invalid_request' },
  { name: 'job webhook over plain http to a public host', send: () => job({ items: [jobItem()], webhook: { url: 'http://hooks.example.com/x' } }), status: 422, code: 'invalid_webhook_url' },
  { name: 'job webhook to the metadata address', send: () => job({ items: [jobItem()], webhook: { url: 'https://169.254.169.254/hook' } }), status: 422, code: 'invalid_webhook_url' },
  { name: 'job webhook with credentials', send: () => job({ items: [jobItem()], webhook: { url: 'https://user:pw@hooks.example.com/x' } }), status: 422, code: 'invalid_webhook_url' },
  { name: 'job webhook that is not a URL', send: () => job({ items: [jobItem()], webhook: { url: 'hooks' } }), status: 422, code: 'invalid_webhook_url' },
  { name: 'job webhook to a private https host', send: () => job({ items: [jobItem()], webhook: { url: 'https://10.1.2.3/hook' } }), status: 422, code: 'invalid_webhook_url' },
  { name: 'job Idempotency-Key with a space', send: () => job({ items: [jobItem()] }, { ...auth(), 'idempotency-key': 'a key' }), status: 400, code: 'invalid_request' },
  { name: 'job Idempotency-Key of 1,000 characters', send: () => job({ items: [jobItem()] }, { ...auth(), 'idempotency-key': 'k'.repeat(1000) }), status: 400, code: 'invalid_request' },
  {
    name: 'job Idempotency-Key reused with another body',
    send: async () => {
      const headers = { ...auth(), 'idempotency-key': 'abuse-reuse-1' };
      const first = await job({ items: [jobItem('first body')] }, headers);
      if (first.status !== 202) return first;
      await first.arrayBuffer();
      return job({ items: [jobItem('another body')] }, headers);
    },
    status: 422,
    code: 'idempotency_key_reused',
  },
  { name: 'job as text/plain', send: () => send('/v1/jobs', { headers: { ...auth(), 'content-type': 'text/plain' }, body: '{}' }), status: 415, code: 'unsupported_media_type' },
  { name: "another tenant's job", send: () => send(`/v1/jobs/${canary!.id}`, { method: 'GET', headers: auth(otherKey) }), status: 404, code: 'not_found' },
  { name: "cancelling another tenant's job", send: () => send(`/v1/jobs/${canary!.id}`, { method: 'DELETE', headers: auth(otherKey) }), status: 404, code: 'not_found' },
  { name: 'a job id that is not one', send: () => send('/v1/jobs/not-a-job-id', { method: 'GET' }), status: 404, code: 'not_found' },
  { name: 'a well-formed unknown job id', send: () => send(`/v1/jobs/${'0'.repeat(64)}`, { method: 'GET' }), status: 404, code: 'not_found' },

  // Hostile but valid prompts: 200, nothing crashes
  { name: 'prompt: emoji and ZWJ sequences', send: () => score1('👩🏽‍🚀🧑‍🤝‍🧑 a family of astronauts 🚀', png()), status: 200 },
  { name: 'prompt: right-to-left and mixed scripts', send: () => score1('قطة على سطح القمر — 月の上の猫 — кошка', png()), status: 200 },
  { name: 'prompt: NUL and control characters', send: () => score1('a\u0000b\u0001c\u0007d\u001b[31mred\u001b[0m\u007f\u0085', png()), status: 200 },
  { name: 'prompt: lone surrogates', send: () => json(`{"prompt":"broken \\ud800 and \\udfff halves","images":[{"data":"${png().toString('base64')}"}]}`), status: 200 },
  { name: 'prompt: zero-width and bidi overrides', send: () => score1('a\u200b\u200c\u200d\u2060\ufeff\u202e\u2066cat', png()), status: 200 },
  { name: 'prompt: 300 combining marks (zalgo)', send: () => score1('z' + '\u0301\u0330\u0352'.repeat(100), png()), status: 200 },
  { name: 'prompt: exactly 2,048 emoji (4,096 UTF-16 units)', send: () => score1('🦊'.repeat(2048), png()), status: 200 },
  { name: 'prompt: empty', send: () => score1('', png()), status: 200 },
  { name: 'prompt: whitespace only', send: () => score1(' \t\n\r\u00a0\u3000', png()), status: 200 },
  { name: 'prompt: NUL in a multipart field', send: () => form(multipart([{ name: 'prompt', data: 'nul\u0000in\u0000form' }, pngPart()])), status: 200 },
];

// ---------------------------------------------------------------------------

/** The health probe: a real score request with a never-seen image (the GPU tier does the work). */
async function probe(): Promise<void> {
  const res = await score1('still serving after abuse', unique(probeN++));
  const body = await res.text();
  expect(res.status, body).toBe(200);
  expect((JSON.parse(body) as { rewards: unknown[] }).rewards).toHaveLength(1);
}

describe('abuse: bad inputs through wrangler dev and two GPU services', () => {
  it('has at least 50 error rows', () => {
    expect(rows.filter((r) => r.status >= 400).length).toBeGreaterThanOrEqual(50);
    expect(new Set(rows.map((r) => r.name)).size).toBe(rows.length);
  });

  it('accepts a job before the abuse starts', async () => {
    const items = Array.from({ length: 6 }, (_, i) => ({ id: `canary-${i}`, prompt: `canary ${i}`, images: [b64(s.images[10 + i]!), b64(unique(1_000_000 + i))] }));
    const res = await job({ items, webhook: { url: `${s.receiver.url}/hook`, secret: WEBHOOK_SECRET }, metadata: { suite: 'abuse' } });
    expect(res.status).toBe(202);
    canary = { id: ((await res.json()) as Job).id, items: items.length };
    await probe();
  });

  it.each(rows.map((r) => [r.name, r] as const))('%s', async (_name, row) => {
    const res = await row.send();
    const text = await res.text();
    expect(res.status, text.slice(0, 300)).toBe(row.status);
    if (row.code !== undefined) {
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(text)).toMatchObject({ code: row.code, status: row.status });
      if (row.status === 429 || row.status === 503) expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    } else {
      const body = JSON.parse(text) as { rewards: unknown[]; model: string };
      expect(body.rewards).toHaveLength(1);
      expect(typeof body.rewards[0]).toBe('number');
    }
    await probe();
  });

  it('loses nothing accepted: the job from before the abuse completes with every item, its webhook verified', async () => {
    const done = await finished(s.edgeUrl, canary!.id, s.key, 90_000, true);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ total: canary!.items, done: canary!.items, succeeded: canary!.items, failed: 0 });
    expect(done.items!.map((i) => i.id)).toEqual(Array.from({ length: canary!.items }, (_, i) => `canary-${i}`));
    const d = await until('the canary webhook', async () => s.receiver.deliveries.find((x) => x.body.includes(canary!.id) && x.answered < 300));
    expect(d.failure).toBeNull();
    delivery = d;
  });
});

// ---------------------------------------------------------------------------
// Forged and replayed webhooks, against verifyWebhook on the real delivery

let delivery: Delivery | undefined;

interface WebhookRow {
  name: string;
  body: () => string;
  headers: () => Record<string, string>;
  secret?: string;
  /** The receiver's clock, seconds (default: now). */
  now?: () => number;
  reason: string;
}

const realTs = () => Number(delivery!.headers['webhook-timestamp']);
const h = (over: Record<string, string | undefined>) => () => {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...delivery!.headers, ...over })) if (v !== undefined) out[k] = v;
  return out;
};
const body = () => delivery!.body;

const webhookRows: WebhookRow[] = [
  { name: 'forged signature (random bytes)', body, headers: h({ 'webhook-signature': `v1,${Buffer.alloc(32, 7).toString('base64')}` }), reason: 'no_matching_signature' },
  { name: 'signature of another version (v2)', body, headers: () => ({ ...h({})(), 'webhook-signature': delivery!.headers['webhook-signature']!.replace(/^v1,/, 'v2,') }), reason: 'no_matching_signature' },
  { name: 'truncated signature', body, headers: () => ({ ...h({})(), 'webhook-signature': delivery!.headers['webhook-signature']!.slice(0, 20) }), reason: 'no_matching_signature' },
  { name: 'body tampered ("completed" → "failed")', body: () => delivery!.body.replace('"completed"', '"failed"'), headers: h({}), reason: 'no_matching_signature' },
  { name: 'body with a space appended', body: () => `${delivery!.body} `, headers: h({}), reason: 'no_matching_signature' },
  { name: 'another webhook-id with the same signature', body, headers: h({ 'webhook-id': 'msg_forged' }), reason: 'no_matching_signature' },
  { name: 'replayed with a fresh timestamp, old signature', body, headers: () => h({ 'webhook-timestamp': String(realTs() + 60) })(), reason: 'no_matching_signature' },
  { name: 'replayed an hour later (beyond the 5 min tolerance)', body, headers: h({}), now: () => realTs() + 3600, reason: 'timestamp_too_old' },
  { name: 'timestamp an hour in the future', body, headers: h({}), now: () => realTs() - 3600, reason: 'timestamp_too_new' },
  { name: 'wrong secret', body, headers: h({}), secret: 'whsec_' + Buffer.from('a-completely-different-secret-32b!').toString('base64'), reason: 'no_matching_signature' },
  { name: 'secret that is not base64', body, headers: h({}), secret: 'whsec_***', reason: 'bad_secret' },
  { name: 'no signature header', body, headers: h({ 'webhook-signature': undefined }), reason: 'missing_headers' },
  { name: 'no id header', body, headers: h({ 'webhook-id': undefined }), reason: 'missing_headers' },
  { name: 'timestamp in milliseconds with a fraction', body, headers: h({ 'webhook-timestamp': '1700000000000.5' }), reason: 'bad_timestamp' },
];

describe('abuse: forged and replayed webhooks are refused by verifyWebhook', () => {
  it('accepts the real delivery as it came', async () => {
    expect(delivery, 'the canary delivery (previous describe)').toBeDefined();
    await expect(verifyWebhook(delivery!.body, delivery!.headers, WEBHOOK_SECRET)).resolves.toMatchObject({ id: delivery!.id });
  });

  it.each(webhookRows.map((r) => [r.name, r] as const))('%s', async (_name, row) => {
    expect(delivery).toBeDefined();
    const err = await verifyWebhook(row.body(), row.headers(), row.secret ?? WEBHOOK_SECRET, row.now ? { now: row.now() } : {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WebhookVerificationError);
    expect((err as WebhookVerificationError).reason).toBe(row.reason);
  });
});
