// POST /v1/score and /v1/score:batch through the whole edge app inside workerd:
// validation, URL images, the result cache (Cache API + KV) and the origin
// pool, against the scripted origins of support/scripted-origins.ts (real HTTP
// servers on loopback that play the GPU service; their rewards are a fixed
// function of (prompt, image bytes), like real replicas of one model).
import { env } from 'cloudflare:workers';
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import { app } from '../../edge/index.js';
import { resetOriginState } from '../../edge/origins/pool.js';
import type { Env } from '../../edge/env.js';

const control = inject('scriptedOriginControl');
const imageServer = inject('imageServer');

interface LogEntry {
  method: string;
  path: string;
  images: number;
  prompt?: string;
  authorization?: string;
  requestId?: string;
}

async function ctl(path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${control}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return res.json();
}
const originLog = async (): Promise<LogEntry[]> => ((await ctl('/log')) as { origins: LogEntry[][] }).origins.flat().filter((e) => e.path === '/v1/score');

/** The test env: auth off unless asked. (Every test uses its own images, so cache entries never collide.) */
function testEnv(over: Partial<Env> = {}): Env {
  return { ...(env as unknown as Env), AUTH: 'off', ...over };
}

async function call(e: Env, path: string, init: RequestInit): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`http://edge.test${path}`, init), e, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}
const postJson = (e: Env, body: unknown, path = '/v1/score') =>
  call(e, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

/** Bytes that sniff as PNG; the scripted origins score them without decoding. */
function png(tag: string): Uint8Array {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  return new Uint8Array([...sig, ...new TextEncoder().encode(tag)]);
}
const b64 = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes));
const data = (bytes: Uint8Array) => ({ data: b64(bytes) });

/** The scripted origins' reward (see scripted-origins.ts). */
async function expectedReward(prompt: string, bytes: Uint8Array): Promise<number> {
  const p = new TextEncoder().encode(prompt);
  const buf = new Uint8Array(p.length + 1 + bytes.length);
  buf.set(p, 0);
  buf.set(bytes, p.length + 1);
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  const u = ((d[0]! << 24) >>> 0) + (d[1]! << 16) + (d[2]! << 8) + d[3]!;
  return (u / 2 ** 32) * 4 - 2;
}

interface ScoreBody {
  model: string;
  rewards: (number | null)[];
  ranking: (number | null)[];
  cached: boolean[];
  errors?: { index: number; code: string; status: number }[];
}

beforeEach(async () => {
  await ctl('/reset', {});
  resetOriginState();
});

describe('edge /v1/score: cache', () => {
  it('answers a miss from the origin, then the same pairs from the cache with identical rewards', async () => {
    const e = testEnv();
    const prompt = 'a red fox in the snow, 4k';
    const imgs = [png('fox-1'), png('fox-2'), png('fox-3')];
    const first = await postJson(e, { prompt, images: imgs.map(data) });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cache')).toBe('MISS');
    const a = (await first.json()) as ScoreBody;
    const want = await Promise.all(imgs.map((i) => expectedReward(prompt, i)));
    expect(a.rewards).toEqual(want);
    expect(a.model).toBe(e.MODEL_ID);
    expect(a.cached).toEqual([false, false, false]);

    const second = await postJson(e, { prompt, images: imgs.map(data) });
    expect(second.headers.get('x-cache')).toBe('HIT');
    const b = (await second.json()) as ScoreBody;
    expect(b.rewards).toEqual(a.rewards); // bit-identical doubles
    expect(b.ranking).toEqual(a.ranking);
    expect(b.cached).toEqual([true, true, true]);
    const log = await originLog();
    expect(log).toHaveLength(1);
    expect(log[0]!.images).toBe(3);
  });

  it('sends only the missing pairs upstream and merges them (PARTIAL), ranking over all', async () => {
    const e = testEnv();
    const prompt = 'portrait of an old sailor';
    const [a, b, c, d] = [png('s-a'), png('s-b'), png('s-c'), png('s-d')];
    expect((await postJson(e, { prompt, images: [data(a), data(b)] })).status).toBe(200);
    const res = await postJson(e, { prompt, images: [data(c), data(a), data(d), data(b)] });
    expect(res.headers.get('x-cache')).toBe('PARTIAL');
    const body = (await res.json()) as ScoreBody;
    const want = await Promise.all([c, a, d, b].map((i) => expectedReward(prompt, i)));
    expect(body.rewards).toEqual(want);
    expect(body.cached).toEqual([false, true, false, true]);
    const order = [...want.keys()].sort((x, y) => want[y]! - want[x]!);
    const ranking = new Array<number>(4);
    order.forEach((i, place) => (ranking[i] = place + 1));
    expect(body.ranking).toEqual(ranking);
    const log = await originLog();
    expect(log.map((l) => l.images)).toEqual([2, 2]);
  });

  it('sends a repeated image once and answers it at every position', async () => {
    const e = testEnv();
    const [a, b] = [png('dup-a'), png('dup-b')];
    const res = await postJson(e, { prompt: 'dup', images: [data(a), data(b), data(a)] });
    const body = (await res.json()) as ScoreBody;
    expect(body.rewards[0]).toBe(body.rewards[2]);
    expect((await originLog())[0]!.images).toBe(2);
  });

  it('shares entries between prompts the tokenizer cannot tell apart', async () => {
    const e = testEnv();
    const img = png('tok');
    await postJson(e, { prompt: 'A  Café, at NIGHT', images: [data(img)] });
    const res = await postJson(e, { prompt: 'a cafe, at night', images: [data(img)] });
    expect(res.headers.get('x-cache')).toBe('HIT');
    const other = await postJson(e, { prompt: 'a cafe at night', images: [data(img)] }); // the comma is a token
    expect(other.headers.get('x-cache')).toBe('MISS');
  });

  it('keys the cache by model version', async () => {
    const e1 = testEnv();
    const img = png('model-key');
    await postJson(e1, { prompt: 'p', images: [data(img)] });
    const e2 = { ...e1, MODEL_ID: `${e1.MODEL_ID}-b` };
    await ctl('/mode', { origin: 0, mode: 'model', modelId: e2.MODEL_ID });
    await ctl('/mode', { origin: 1, mode: 'model', modelId: e2.MODEL_ID });
    await ctl('/mode', { origin: 2, mode: 'model', modelId: e2.MODEL_ID });
    const res = await postJson(e2, { prompt: 'p', images: [data(img)] });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-cache')).toBe('MISS');
  });

  it('answers cache hits alone when every origin is down', async () => {
    const e = testEnv();
    const img = png('alone');
    await postJson(e, { prompt: 'alone', images: [data(img)] });
    for (const origin of [0, 1, 2]) await ctl('/mode', { origin, mode: 'refuse' });
    const res = await postJson(e, { prompt: 'alone', images: [data(img)] });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-cache')).toBe('HIT');
  });

  it('accepts multipart uploads with the same answers and cache entries as JSON', async () => {
    const e = testEnv();
    const [a, b] = [png('mp-a'), png('mp-b')];
    const json = (await (await postJson(e, { prompt: 'mp', images: [data(a), data(b)] })).json()) as ScoreBody;
    const form = new FormData();
    form.append('prompt', 'mp');
    form.append('x', new Blob([a]), 'a.png');
    form.append('y', new Blob([b]), 'b.png');
    const res = await call(e, '/v1/score', { method: 'POST', body: form });
    expect(res.headers.get('x-cache')).toBe('HIT');
    expect(((await res.json()) as ScoreBody).rewards).toEqual(json.rewards);
  });
});

describe('edge /v1/score: per-image errors', () => {
  it('refuses non-images at the edge and scores the rest', async () => {
    const e = testEnv();
    const bmp = new Uint8Array([0x42, 0x4d, ...new Array<number>(30).fill(0)]);
    const res = await postJson(e, { prompt: 'mixed', images: [data(png('ok-1')), data(bmp), { data: b64(new TextEncoder().encode('hello world')) }] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as ScoreBody;
    expect(body.rewards[0]).toBeTypeOf('number');
    expect(body.rewards.slice(1)).toEqual([null, null]);
    expect(body.ranking).toEqual([1, null, null]);
    expect(body.errors?.map((x) => [x.index, x.code, x.status])).toEqual([
      [1, 'unsupported_image_format', 415],
      [2, 'unsupported_image_format', 415],
    ]);
    expect((await originLog())[0]!.images).toBe(1);
  });

  it("maps the origin's per-image failures back to input positions, next to cache hits", async () => {
    const e = testEnv();
    const good = png('good');
    await postJson(e, { prompt: 'c', images: [data(good)] });
    const res = await postJson(e, { prompt: 'c', images: [data(png('CORRUPT-1')), data(good), data(png('CORRUPT-2'))] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as ScoreBody;
    expect(body.errors?.map((x) => [x.index, x.code])).toEqual([
      [0, 'image_decode_failed'],
      [2, 'image_decode_failed'],
    ]);
    expect(body.ranking).toEqual([null, 1, null]);
    // Failures are not cached: the origin is asked again.
    await postJson(e, { prompt: 'c', images: [data(png('CORRUPT-1'))] });
    expect((await originLog()).length).toBe(3);
  });

  it('answers the problem of the images when none could be scored', async () => {
    const res = await postJson(testEnv(), { prompt: 'x', images: [{ data: b64(new TextEncoder().encode('GIF-but-not')) }] });
    expect(res.status).toBe(415);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toMatchObject({ code: 'unsupported_image_format', errors: [{ index: 0 }] });
  });
});

describe('edge /v1/score: the GPU tier', () => {
  it('propagates the request id and answers with Server-Timing', async () => {
    const e = testEnv();
    const res = await call(e, '/v1/score', { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'req-edge-42' }, body: JSON.stringify({ prompt: 'id', images: [data(png('id'))] }) });
    expect(res.headers.get('x-request-id')).toBe('req-edge-42');
    expect(res.headers.get('server-timing')).toMatch(/origin;/);
    expect((await originLog())[0]!.requestId).toBe('req-edge-42');
  });

  it('fails over when an origin is down', async () => {
    const e = testEnv();
    await ctl('/mode', { origin: 0, mode: 'refuse' });
    await ctl('/mode', { origin: 1, mode: 'fail503' });
    const res = await postJson(e, { prompt: 'failover', images: [data(png('f'))] });
    expect(res.status).toBe(200);
  });

  it('answers 503 + Retry-After when no origin can score, and caches nothing', async () => {
    const e = testEnv();
    for (const origin of [0, 1, 2]) await ctl('/mode', { origin, mode: 'refuse' });
    const res = await postJson(e, { prompt: 'down', images: [data(png('d'))] });
    expect(res.status).toBe(503);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await res.json()).toMatchObject({ code: 'origin_unavailable' });
  });

  it('answers 504 deadline_exceeded when the GPU tier hangs past the request budget', async () => {
    const e = testEnv({ LIMITS: '{"requestTimeoutMs":600}' });
    for (const origin of [0, 1, 2]) await ctl('/mode', { origin, mode: 'hang' });
    const t0 = Date.now();
    const res = await postJson(e, { prompt: 'hang', images: [data(png('hang'))] });
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({ code: 'deadline_exceeded' });
    expect(Date.now() - t0).toBeLessThan(5000); // bounded by the budget, not the origin timeout (30 s)
  });

  it('refuses (502) and never caches an answer from another model', async () => {
    const e = testEnv();
    for (const origin of [0, 1, 2]) await ctl('/mode', { origin, mode: 'model', modelId: 'some-other-model' });
    const res = await postJson(e, { prompt: 'wrong', images: [data(png('w'))] });
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({ code: 'bad_origin_response' });
    await ctl('/reset', {});
    resetOriginState();
    for (const origin of [0, 1, 2]) await ctl('/mode', { origin, mode: 'model', modelId: e.MODEL_ID });
    const again = await postJson(e, { prompt: 'wrong', images: [data(png('w'))] });
    expect(again.headers.get('x-cache')).toBe('MISS');
  });

  it('refuses a garbage origin answer with 502', async () => {
    const e = testEnv();
    for (const origin of [0, 1, 2]) await ctl('/mode', { origin, mode: 'garbage' });
    const res = await postJson(e, { prompt: 'g', images: [data(png('g'))] });
    expect(res.status).toBe(502);
  });
});

describe('edge /v1/score: validation before any upstream work', () => {
  const many = Array.from({ length: 17 }, (_, i) => data(png(`m${i}`)));
  it.each<[string, string | object, number, string, Record<string, string>?]>([
    ['invalid JSON', '{"prompt":', 400, 'invalid_json'],
    ['no images', { prompt: 'x', images: [] }, 400, 'invalid_request'],
    ['a number prompt', { prompt: 1, images: [{ data: 'iVBORw0KGgo=' }] }, 400, 'invalid_request'],
    ['an unknown field', { prompt: 'x', images: [{ data: 'iVBORw0KGgo=' }], extra: 1 }, 400, 'invalid_request'],
    ['an image with data and url', { prompt: 'x', images: [{ data: 'iVBORw0KGgo=', url: 'https://a/b' }] }, 400, 'invalid_request'],
    ['bad base64', { prompt: 'x', images: [{ data: 'not base64!!' }] }, 400, 'invalid_base64'],
    ['17 images', { prompt: 'x', images: many }, 422, 'too_many_images'],
    ['a 2049-character prompt', { prompt: 'é'.repeat(2049), images: [{ data: 'iVBORw0KGgo=' }] }, 422, 'prompt_too_long'],
    ['an image over maxImageBytes', { prompt: 'x', images: [{ data: 'A'.repeat(2000) }] }, 413, 'image_too_large', { LIMITS: '{"maxImageBytes":1000}' }],
    ['a body over maxBodyBytes', { prompt: 'x'.repeat(5000), images: [{ data: 'iVBORw0KGgo=' }] }, 413, 'payload_too_large', { LIMITS: '{"maxBodyBytes":4096}' }],
  ])('answers %s with problem+json and never calls an origin', async (_name, body, status, code, over) => {
    const res = await postJson(testEnv(over ?? {}), body);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toMatchObject({ code, status });
    expect(await originLog()).toHaveLength(0);
  });

  it('answers an unsupported content type with 415 and GET with 405', async () => {
    const e = testEnv();
    const res = await call(e, '/v1/score', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
    expect(res.status).toBe(415);
    const get = await call(e, '/v1/score', { method: 'GET' });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
  });

  it('answers a broken multipart body with invalid_multipart', async () => {
    const res = await call(testEnv(), '/v1/score', { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=zzz' }, body: '--zzz\r\nbroken' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'invalid_multipart' });
  });

  it('answers a misconfigured LIMITS var with a clear 500', async () => {
    const res = await postJson(testEnv({ LIMITS: '{"maxImageBytes":-1}' }), { prompt: 'x', images: [{ data: 'iVBORw0KGgo=' }] });
    expect(res.status).toBe(500);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/LIMITS/);
  });
});

describe('edge /v1/score: image URLs', () => {
  const host = new URL(imageServer).host;
  it('fetches allowed URLs and scores their bytes like inline ones', async () => {
    const e = testEnv({ URL_FETCH_ALLOW: host });
    const bytes = new Uint8Array(await (await fetch(`${imageServer}/png`)).arrayBuffer());
    const res = await postJson(e, { prompt: 'url', images: [{ url: `${imageServer}/png` }] });
    expect(res.status).toBe(200);
    expect(((await res.json()) as ScoreBody).rewards).toEqual([await expectedReward('url', bytes)]);
    const inline = await postJson(e, { prompt: 'url', images: [data(bytes)] });
    expect(inline.headers.get('x-cache')).toBe('HIT');
  });

  it('refuses loopback URLs that are not allowed, and every URL when URL_IMAGES=off', async () => {
    const res = await postJson(testEnv(), { prompt: 'url', images: [{ url: `${imageServer}/png` }, data(png('u'))] });
    expect(((await res.json()) as ScoreBody).errors).toMatchObject([{ index: 0, code: 'url_forbidden' }]);
    const off = await postJson(testEnv({ URL_IMAGES: 'off', URL_FETCH_ALLOW: host }), { prompt: 'url', images: [{ url: `${imageServer}/png` }] });
    expect(off.status).toBe(422);
    expect(await off.json()).toMatchObject({ code: 'url_forbidden' });
  });
});

describe('edge /v1/score:batch', () => {
  it('answers each request, a bad one as its problem', async () => {
    const e = testEnv();
    const res = await postJson(e, { requests: [{ prompt: 'b1', images: [data(png('b1'))] }, { prompt: 'b2', images: [{ data: b64(new TextEncoder().encode('nope')) }] }] }, '/v1/score:batch');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { results: [ScoreBody, { code: string; status: number }] };
    expect(body.results[0].rewards).toEqual([await expectedReward('b1', png('b1'))]);
    expect(body.results[1]).toMatchObject({ code: 'unsupported_image_format', status: 415 });
  });
});

describe('edge: auth and rate limits on the real app', () => {
  it('needs an API key before any work when AUTH=required', async () => {
    const res = await postJson(testEnv({ AUTH: 'required' }), { prompt: 'x', images: [data(png('k'))] });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await originLog()).toHaveLength(0);
  });
});

describe('edge: CORS', () => {
  it('answers preflights and exposes the edge headers only for configured origins', async () => {
    const e = testEnv({ CORS_ORIGINS: 'https://app.example' });
    const pre = await call(e, '/v1/score', { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(pre.headers.get('access-control-allow-headers')).toMatch(/authorization/);
    const res = await call(e, '/v1/score', { method: 'POST', headers: { origin: 'https://app.example', 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'cors', images: [data(png('cors'))] }) });
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('access-control-expose-headers')).toMatch(/x-cache/);
    const other = await call(e, '/healthz', { headers: { origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const none = await call(testEnv(), '/healthz', { headers: { origin: 'https://app.example' } });
    expect(none.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('edge: documents and health', () => {
  it('serves the OpenAPI document, the docs page, /healthz and /readyz', async () => {
    const e = testEnv();
    const doc = (await (await call(e, '/openapi.json', {})).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/score', '/v1/score:batch', '/v1/models', '/v1/jobs', '/v1/jobs/{id}', '/v1/jobs/{id}/deliveries', '/v1/jobs/{id}/webhook/redeliver']));
    expect(Object.keys(doc.paths)).not.toContain('/metrics'); // the edge serves no /metrics
    const docs = await call(e, '/docs', {});
    expect(await docs.text()).toContain('origin_unavailable');
    expect(await (await call(e, '/healthz', {})).json()).toMatchObject({ status: 'ok', model: e.MODEL_ID });
    expect((await call(e, '/readyz', {})).status).toBe(200);
    expect((await call({ ...e, ORIGINS: '' }, '/readyz', {})).status).toBe(503);
  });
});
