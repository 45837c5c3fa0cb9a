// Unit tests of the HTTP layer (gpu-service/server/app.ts) in process, against a
// fake scoring service: routing, problem+json, limits, auth, logging, metrics,
// OpenAPI. The real service over a real socket: server.test.ts.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, ERROR_CODES, openApiDocument, resolveLimits } from '../../contracts/api/index.js';
import { URL_FETCH_ERROR_STATUS } from '../../gpu-service/net/safe-fetch.js';
import { IMAGE_ERROR_STATUS } from '../../gpu-service/preprocess/errors.js';
import { CanceledError, DeadlineError, QueueFullError, RequestLimitError, ServiceClosedError } from '../../gpu-service/service/score-service.js';
import { createApp, type AppOptions, type LogEntry } from '../../gpu-service/server/app.js';
import { fakeScoreService, type FakeService } from '../support/fake-score-service.js';

function setup(extra: Partial<AppOptions> = {}): { app: ReturnType<typeof createApp>; svc: FakeService; logs: LogEntry[] } {
  const svc = fakeScoreService();
  const logs: LogEntry[] = [];
  const app = createApp({ service: svc, logger: (e) => logs.push(e), ...extra });
  return { app, svc, logs };
}

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString('base64');
const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const IMG_A = 'a'.repeat(100);
const IMG_B = 'b'.repeat(300);
const IMG_C = 'c'.repeat(200);

async function problemOf(res: Response): Promise<Record<string, unknown>> {
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  expect(res.headers.get('x-request-id')).toBeTruthy();
  const p = (await res.json()) as Record<string, unknown>;
  expect(p.status).toBe(res.status);
  expect(p.request_id).toBe(res.headers.get('x-request-id'));
  expect(p.instance).toBe(`urn:request:${res.headers.get('x-request-id')}`);
  expect(typeof p.type).toBe('string');
  expect(typeof p.title).toBe('string');
  expect(typeof p.detail).toBe('string');
  return p;
}

describe('contracts', () => {
  it('the error table agrees with the preprocessing, URL-fetch and service codes, and gives Retry-After codes 409/429/503', () => {
    const table = ERROR_CODES as Record<string, { status: number }>;
    for (const [code, status] of Object.entries({ ...IMAGE_ERROR_STATUS, ...URL_FETCH_ERROR_STATUS })) expect(table[code]?.status, code).toBe(status);
    const serviceErrors = [new QueueFullError('q', 2), new DeadlineError('d'), new CanceledError('c'), new ServiceClosedError('s'), new RequestLimitError('too_many_images', 't'), new RequestLimitError('prompt_too_long', 'p')];
    for (const e of serviceErrors) expect(table[e.code]?.status, e.code).toBe(e.status);
    // 409 only for a request whose Idempotency-Key is still being processed (the IETF idempotency-key draft).
    for (const [code, info] of Object.entries(ERROR_CODES)) if ('retryAfter' in info) expect([409, 429, 503], code).toContain(info.status);
  });

  it('limits resolve with overrides and refuse nonsense', () => {
    expect(resolveLimits()).toEqual(DEFAULT_LIMITS);
    expect(resolveLimits({ maxImagesPerRequest: 3 }).maxImagesPerRequest).toBe(3);
    expect(() => resolveLimits({ maxBodyBytes: 0 })).toThrow(RangeError);
    expect(() => resolveLimits({ nope: 1 } as never)).toThrow(RangeError);
  });

  it('the OpenAPI document is 3.1 and documents every route', () => {
    const doc = openApiDocument();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths ?? {}).sort()).toEqual(['/healthz', '/metrics', '/readyz', '/v1/models', '/v1/score', '/v1/score:batch']);
  });
});

describe('HTTP layer (fake service)', () => {
  it('scores JSON base64 images: rewards in input order, ranking 1 = best, timings', async () => {
    const { app, svc } = setup();
    const res = await app.request('/v1/score', json({ prompt: 'p', images: [{ data: b64(IMG_A) }, { data: b64(IMG_B) }, { data: `data:image/png;base64,${b64(IMG_C)}` }] }));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBeTruthy();
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toEqual({
      model: 'fake-model',
      rewards: [0.1, 0.3, 0.2],
      ranking: [3, 1, 2],
      cached: [false, false, false],
      timings: { queue_ms: 1, preprocess_ms: 2, inference_ms: 3, total_ms: 6 },
    });
    expect(svc.calls[0]!.images.map((b) => b.length)).toEqual([100, 300, 200]);
    expect(svc.calls[0]!.signal).toBeInstanceOf(AbortSignal);
    expect(svc.calls[0]!.deadlineMs).toBeGreaterThan(Date.now());
    expect(svc.calls[0]!.deadlineMs).toBeLessThanOrEqual(Date.now() + DEFAULT_LIMITS.requestTimeoutMs);
  });

  it('accepts URL-safe and unpadded base64', async () => {
    const { app } = setup();
    const bytes = new Uint8Array([0xfb, 0xff, 0xfe, 0x01, 0x02]);
    const urlSafe = Buffer.from(bytes).toString('base64url');
    const res = await app.request('/v1/score', json({ prompt: 'p', images: [{ data: urlSafe }] }));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { rewards: number[] }).rewards).toEqual([0.005]);
  });

  it('scores multipart uploads the same as JSON, in field order', async () => {
    const { app, svc } = setup();
    const form = new FormData();
    form.set('prompt', 'p');
    form.append('image', new Blob([IMG_A]), 'a.png');
    form.append('image', new Blob([IMG_B]), 'b.png');
    form.append('other', new Blob([IMG_C]), 'c.png');
    const res = await app.request('/v1/score', { method: 'POST', body: form });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { rewards: number[]; ranking: number[] };
    expect(body.rewards).toEqual([0.1, 0.3, 0.2]);
    expect(body.ranking).toEqual([3, 1, 2]);
    expect(svc.calls[0]!.prompt).toBe('p');
  });

  it('a corrupt image fails alone: 200, its reward and rank null, errors[] says why', async () => {
    const { app } = setup();
    const res = await app.request('/v1/score', json({ prompt: 'p', images: [{ data: b64(IMG_A) }, { data: b64('BADxxxx') }, { data: b64(IMG_B) }] }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.rewards).toEqual([0.1, null, 0.3]);
    expect(body.ranking).toEqual([2, null, 1]);
    expect(body.errors).toEqual([{ index: 1, code: 'image_decode_failed', message: 'corrupt', status: 422 }]);
  });

  it('every image failing is the problem itself (with errors[])', async () => {
    const { app } = setup();
    const res = await app.request('/v1/score', json({ prompt: 'p', images: [{ data: b64('BAD1') }, { data: b64('BAD2') }] }));
    expect(res.status).toBe(422);
    const p = await problemOf(res);
    expect(p.code).toBe('image_decode_failed');
    expect((p.errors as unknown[]).length).toBe(2);
  });

  it('bad inputs answer problem+json with stable codes', async () => {
    const { app, svc } = setup({ limits: { maxImagesPerRequest: 2, maxPromptChars: 10, maxImageBytes: 150, maxBodyBytes: 4096 } });
    const cases: [RequestInit, number, string][] = [
      [json('{"prompt": "p", "images": ['), 400, 'invalid_json'],
      [json({ images: [{ data: b64(IMG_A) }] }), 400, 'invalid_request'],
      [json({ prompt: 'p', images: [] }), 400, 'invalid_request'],
      [json({ prompt: 'p', images: [{ data: b64(IMG_A), url: 'http://x' }] }), 400, 'invalid_request'],
      [json({ prompt: 'p', images: [{ data: '!!notbase64!!' }] }), 400, 'invalid_base64'],
      [json({ prompt: 'p', images: [{ data: 'abcde' }] }), 400, 'invalid_base64'],
      [json({ prompt: 'p', images: [{ data: b64(IMG_A) }, { data: b64(IMG_A) }, { data: b64(IMG_A) }] }), 422, 'too_many_images'],
      [json({ prompt: 'x'.repeat(11), images: [{ data: b64(IMG_A) }] }), 422, 'prompt_too_long'],
      [json({ prompt: 'p', images: [{ data: b64(IMG_B) }] }), 413, 'image_too_large'],
      [json({ prompt: 'p', images: [{ data: b64('x'.repeat(5000)) }] }), 413, 'payload_too_large'],
      [{ method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' }, 415, 'unsupported_media_type'],
      [{ method: 'POST', body: 'hi' }, 415, 'unsupported_media_type'],
      [{ method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=zzz' }, body: 'garbage' }, 400, 'invalid_multipart'],
    ];
    for (const [init, status, code] of cases) {
      const res = await app.request('/v1/score', init);
      expect(res.status, code).toBe(status);
      expect((await problemOf(res)).code, code).toBe(code);
    }
    expect(svc.calls).toHaveLength(0); // nothing reached the service
  });

  it('a 4-byte emoji counts as one prompt character', async () => {
    const { app } = setup({ limits: { maxPromptChars: 3 } });
    const res = await app.request('/v1/score', json({ prompt: '😀😀😀', images: [{ data: b64(IMG_A) }] }));
    expect(res.status).toBe(200);
  });

  it('multipart without prompt, without files, or with a text image field is invalid_request', async () => {
    const { app } = setup();
    const noPrompt = new FormData();
    noPrompt.append('image', new Blob([IMG_A]), 'a.png');
    const noFiles = new FormData();
    noFiles.set('prompt', 'p');
    const textField = new FormData();
    textField.set('prompt', 'p');
    textField.set('image', 'not a file');
    for (const form of [noPrompt, noFiles, textField]) {
      const res = await app.request('/v1/score', { method: 'POST', body: form });
      expect(res.status).toBe(400);
      expect((await problemOf(res)).code).toBe('invalid_request');
    }
  });

  it('404 and 405 are problems; 405 says Allow', async () => {
    const { app } = setup();
    const nf = await app.request('/nope');
    expect(nf.status).toBe(404);
    expect((await problemOf(nf)).code).toBe('not_found');
    const na = await app.request('/v1/score');
    expect(na.status).toBe(405);
    expect(na.headers.get('allow')).toBe('POST');
    expect((await problemOf(na)).code).toBe('method_not_allowed');
    const nb = await app.request('/v1/score:batch', { method: 'PUT' });
    expect(nb.status).toBe(405);
    const head = await app.request('/healthz', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('echoes a client X-Request-Id and logs one JSON line per request', async () => {
    const { app, logs } = setup();
    const res = await app.request('/healthz', { headers: { 'x-request-id': 'abc-123' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('abc-123');
    await app.request('/v1/score', json('{'));
    expect(logs).toHaveLength(2);
    expect(logs[0]).toMatchObject({ level: 'info', request_id: 'abc-123', method: 'GET', path: '/healthz', status: 200 });
    expect(logs[1]).toMatchObject({ level: 'warn', method: 'POST', path: '/v1/score', status: 400, code: 'invalid_json' });
    for (const l of logs) {
      expect(typeof l.ts).toBe('string');
      expect(typeof l.ms).toBe('number');
    }
  });

  it('readyz is 503 + Retry-After until the service is ready, and while draining', async () => {
    let draining = false;
    const { app, svc } = setup({ isDraining: () => draining });
    svc.isReady = false;
    let res = await app.request('/readyz');
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect((await problemOf(res)).code).toBe('not_ready');
    const score = await app.request('/v1/score', json({ prompt: 'p', images: [{ data: b64(IMG_A) }] }));
    expect(score.status).toBe(503);
    expect((await problemOf(score)).code).toBe('not_ready');
    expect((await app.request('/healthz')).status).toBe(200);
    svc.isReady = true;
    res = await app.request('/readyz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready', model: 'fake-model' });
    draining = true;
    res = await app.request('/readyz');
    expect(res.status).toBe(503);
    expect((await problemOf(res)).code).toBe('shutting_down');
    const late = await app.request('/v1/score', json({ prompt: 'p', images: [{ data: b64(IMG_A) }] }));
    expect(late.status).toBe(503);
    expect(late.headers.get('retry-after')).toBe('1');
    expect((await problemOf(late)).code).toBe('shutting_down');
  });

  it('queue_full is 503 with the service\'s Retry-After', async () => {
    const { app } = setup();
    const res = await app.request('/v1/score', json({ prompt: 'QUEUE_FULL', images: [{ data: b64(IMG_A) }] }));
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('7');
    expect((await problemOf(res)).code).toBe('queue_full');
  });

  it('a call over its time budget is 504 deadline_exceeded and aborts the service call', async () => {
    const { app, svc, logs } = setup({ limits: { requestTimeoutMs: 200 } });
    const res = await app.request('/v1/score', json({ prompt: 'SLOW', images: [{ data: b64(IMG_A) }] }));
    expect(res.status).toBe(504);
    expect((await problemOf(res)).code).toBe('deadline_exceeded');
    await new Promise((r) => setTimeout(r, 20));
    expect(svc.aborted).toBe(1);
    expect(logs.at(-1)).toMatchObject({ status: 504, code: 'deadline_exceeded' });
  });

  it('URL images: refused when fetching is off, fetched (and errors mapped) when on', async () => {
    const off = setup();
    let res = await off.app.request('/v1/score', json({ prompt: 'p', images: [{ url: 'https://example.com/a.png' }, { data: b64(IMG_A) }] }));
    expect(res.status).toBe(200);
    let body = (await res.json()) as Record<string, unknown>;
    expect(body.rewards).toEqual([null, 0.1]);
    expect((body.errors as { code: string; status: number }[])[0]).toMatchObject({ index: 0, code: 'url_forbidden', status: 422 });

    const fetched: string[] = [];
    const on = setup({
      fetchImage: async (url, o) => {
        fetched.push(url);
        expect(o.maxBytes).toBe(DEFAULT_LIMITS.maxImageBytes);
        if (url.endsWith('/slow')) throw Object.assign(new Error('too slow'), { code: 'url_timeout', status: 504 });
        return new TextEncoder().encode(IMG_B);
      },
    });
    res = await on.app.request('/v1/score', json({ prompt: 'p', images: [{ url: 'https://example.com/a.png' }, { url: 'https://example.com/slow' }, { url: 'ftp://x/y' }] }));
    expect(res.status).toBe(200);
    body = (await res.json()) as Record<string, unknown>;
    expect(body.rewards).toEqual([0.3, null, null]);
    expect(body.errors).toEqual([
      { index: 1, code: 'url_timeout', message: 'image 1: too slow', status: 504 },
      { index: 2, code: 'url_scheme', message: 'images[2].url must be http(s) (got ftp:)', status: 422 },
    ]);
    expect(fetched).toEqual(['https://example.com/a.png', 'https://example.com/slow']);
  });

  it('batch: one result per request, a failing request answered by its problem', async () => {
    const { app } = setup({ limits: { maxImagesPerRequest: 2 } });
    const res = await app.request(
      '/v1/score:batch',
      json({
        requests: [
          { prompt: 'p', images: [{ data: b64(IMG_A) }, { data: b64(IMG_B) }] },
          { prompt: 'p', images: [{ data: b64(IMG_A) }, { data: b64(IMG_A) }, { data: b64(IMG_A) }] },
          { prompt: 'QUEUE_FULL', images: [{ data: b64(IMG_A) }] },
        ],
      }),
    );
    expect(res.status).toBe(200);
    const { results } = (await res.json()) as { results: Record<string, unknown>[] };
    expect(results).toHaveLength(3);
    expect(results[0]).toMatchObject({ rewards: [0.1, 0.3], ranking: [2, 1] });
    expect(results[1]).toMatchObject({ status: 422, code: 'too_many_images' });
    expect(results[2]).toMatchObject({ status: 503, code: 'queue_full', retry_after: 7 });

    const tooMany = await app.request('/v1/score:batch', json({ requests: Array.from({ length: 17 }, () => ({ prompt: 'p', images: [{ data: b64(IMG_A) }] })) }));
    expect(tooMany.status).toBe(422);
    expect((await problemOf(tooMany)).code).toBe('too_many_requests_in_batch');
    const bad = await app.request('/v1/score:batch', json({ requests: [{ prompt: 3 }] }));
    expect(bad.status).toBe(400);
    expect((await problemOf(bad)).code).toBe('invalid_request');
  });

  it('models, metrics, openapi.json and docs', async () => {
    const { app } = setup();
    await app.request('/healthz');
    const models = (await (await app.request('/v1/models')).json()) as { data: Record<string, unknown>[] };
    expect(models.data[0]).toMatchObject({ id: 'fake-model', object: 'model', backend: 'ort', ready: true, skipped_backends: [{ name: 'native', reason: 'no GPU in the fake' }] });
    const metrics = await app.request('/metrics');
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await metrics.text();
    expect(text).toContain('imagereward_fake_total 1');
    expect(text).toContain('imagereward_http_requests_total{method="GET",route="/healthz",status="200"} 1');
    expect(text).toMatch(/imagereward_http_request_duration_seconds_bucket\{method="GET",route="\/v1\/models",le="\+Inf"\} 1/);
    const oa = await app.request('/openapi.json');
    expect(oa.status).toBe(200);
    expect(((await oa.json()) as { openapi: string }).openapi).toBe('3.1.0');
    const docs = await app.request('/docs');
    expect(docs.headers.get('content-type')).toMatch(/text\/html/);
    expect(await docs.text()).toContain('/openapi.json');
  });

  it('API keys: Bearer required on /v1 and /metrics, never on health; plain and sha256 entries', async () => {
    const hashed = createHash('sha256').update('second-key').digest('hex');
    const { app } = setup({ apiKeys: ['first-key', `sha256:${hashed}`] });
    const body = { prompt: 'p', images: [{ data: b64(IMG_A) }] };
    const none = await app.request('/v1/score', json(body));
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer realm="imagereward"/);
    expect((await problemOf(none)).code).toBe('unauthorized');
    const wrong = await app.request('/v1/score', json(body, { authorization: 'Bearer nope' }));
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('invalid_token');
    expect((await problemOf(wrong)).code).toBe('unauthorized');
    const malformed = await app.request('/v1/models', { headers: { authorization: 'Basic abc' } });
    expect(malformed.status).toBe(401);
    expect((await app.request('/v1/score', json(body, { authorization: 'Bearer first-key' }))).status).toBe(200);
    expect((await app.request('/v1/score', json(body, { authorization: 'bearer second-key' }))).status).toBe(200);
    expect((await app.request('/healthz')).status).toBe(200);
    expect((await app.request('/readyz')).status).toBe(200);
    expect((await app.request('/metrics')).status).toBe(401);
    expect((await app.request('/metrics', { headers: { authorization: 'Bearer first-key' } })).status).toBe(200);
    const open = setup({ apiKeys: ['k'], metricsPublic: true });
    expect((await open.app.request('/metrics')).status).toBe(200);
    expect(() => setup({ apiKeys: ['sha256:zz'] })).toThrow(RangeError);
  });

  it('tenants: one per key; X-Imagereward-Tenant only when trusted (behind the edge)', async () => {
    const body = { prompt: 'p', images: [{ data: b64(IMG_A) }] };
    const hdr = { authorization: 'Bearer edge-secret', 'x-imagereward-tenant': 'acme' };
    const plain = setup({ apiKeys: ['other', 'edge-secret'] });
    await plain.app.request('/v1/score', json(body, hdr));
    expect(plain.svc.calls[0]!.tenant).toBe('key1');
    const trusted = setup({ apiKeys: ['other', 'edge-secret'], trustTenantHeader: true });
    await trusted.app.request('/v1/score', json(body, hdr));
    await trusted.app.request('/v1/score', json(body, { ...hdr, 'x-imagereward-tenant': 'bad tenant name!' }));
    await trusted.app.request('/v1/score', json(body, { authorization: 'Bearer edge-secret' }));
    expect(trusted.svc.calls.map((c) => c.tenant)).toEqual(['edge:acme', 'key1', 'key1']);
  });
});
