// The edge's GPU origin pool inside workerd, against the scripted origins (real
// loopback servers, test/workers/support/scripted-origins.ts): what reaches an
// origin is read back from the control server's log, so each test checks what
// actually went over the wire, not what the pool believes it did.
import { env } from 'cloudflare:workers';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import { ConfigError, originConfig, parseOrigins, type OriginEnv } from '../../edge/origins/config.js';
import { OriginUnavailableError, forwardToOrigins, originSnapshot, resetOriginState, type ForwardRequest } from '../../edge/origins/pool.js';

const origins = inject('scriptedOrigins');
const control = inject('scriptedOriginControl');

type Mode = 'ok' | 'refuse' | 'fail500' | 'fail503' | 'hang' | 'slow' | 'garbage' | 'model';
interface LogEntry {
  method: string;
  path: string;
  authorization: string | null;
  requestId: string | null;
  images: number | null;
  prompt: string | null;
}

async function setMode(origin: number, mode: Mode, extra: { delayMs?: number; modelId?: string } = {}): Promise<void> {
  const res = await fetch(`${control}/mode`, { method: 'POST', body: JSON.stringify({ origin, mode, ...extra }) });
  expect(res.status).toBe(200);
  await res.body?.cancel();
}

async function originLog(): Promise<LogEntry[][]> {
  const res = await fetch(`${control}/log`);
  return ((await res.json()) as { origins: LogEntry[][] }).origins;
}

/** How many /v1/score calls each origin received. */
async function scoreCounts(): Promise<number[]> {
  return (await originLog()).map((entries) => entries.filter((e) => e.path === '/v1/score').length);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const toBase64 = (text: string): string => btoa(text);

let counter = 0;
function scoreRequest(overrides: Partial<ForwardRequest> = {}): ForwardRequest {
  counter++;
  return {
    path: '/v1/score',
    method: 'POST',
    body: JSON.stringify({ prompt: `a cat #${counter}`, images: [{ data: toBase64('image-a') }, { data: toBase64('image-b') }] }),
    headers: { 'content-type': 'application/json' },
    requestId: `req-${counter}`,
    ...overrides,
  };
}

/** Env with small, test-friendly budgets (300 ms attempts unless told otherwise). */
function fastEnv(overrides: Partial<Record<Exclude<keyof OriginEnv, 'ORIGIN_STATE'>, string>> = {}): OriginEnv {
  return { ...env, ORIGIN_TIMEOUT_MS: '300', ...overrides };
}

beforeEach(async () => {
  const res = await fetch(`${control}/reset`, { method: 'POST' });
  expect(res.status).toBe(200);
  await res.body?.cancel();
  resetOriginState();
  await env.ORIGIN_STATE.delete('health');
});

describe('originConfig', () => {
  it('parses ORIGINS: trims, drops empties, strips trailing slashes, dedupes', () => {
    expect(parseOrigins(' http://a.test:8080/ , ,https://b.test/gpu/,http://A.test:8080,')).toEqual(['http://a.test:8080', 'https://b.test/gpu']);
    expect(parseOrigins('')).toEqual([]);
  });

  it.each([
    ['ftp://a.test', 'ftp://a.test'],
    ['a.test:8080', 'a.test:8080'],
    ['http://a.test/?x=1', 'http://a.test/?x=1'],
    ['http://a.test/#frag', 'http://a.test/#frag'],
    ['http://user:pw@a.test', 'http://user:pw@a.test'],
    ['not a url', 'not a url'],
  ])('rejects %s with a ConfigError naming it', (entry, named) => {
    expect(() => parseOrigins(`http://ok.test, ${entry}`)).toThrow(ConfigError);
    expect(() => parseOrigins(`http://ok.test, ${entry}`)).toThrow(named);
  });

  it('has the documented defaults and reads the tuning vars', () => {
    const c = originConfig({ ...env, ORIGINS: 'http://a.test', ORIGIN_TIMEOUT_MS: undefined });
    expect(c).toMatchObject({ urls: ['http://a.test'], attemptTimeoutMs: 30_000, maxAttempts: 1, failureThreshold: 3, openMs: 5_000, maxOpenMs: 60_000, healthTtlMs: 180_000 });
    expect(c.secret).toBe('test-origin-secret');
    expect(originConfig(env).maxAttempts).toBe(3);
    expect(originConfig({ ...env, ORIGINS: '' }).maxAttempts).toBe(1);
    const tuned = originConfig(fastEnv({ ORIGIN_FAILURE_THRESHOLD: '1', ORIGIN_OPEN_MS: '250' }));
    expect(tuned).toMatchObject({ attemptTimeoutMs: 300, failureThreshold: 1, openMs: 250 });
    expect(() => originConfig(fastEnv({ ORIGIN_TIMEOUT_MS: '-5' }))).toThrow(/ORIGIN_TIMEOUT_MS/);
    expect(() => originConfig(fastEnv({ ORIGIN_OPEN_MS: '1.5' }))).toThrow(ConfigError);
  });
});

describe('forwardToOrigins', () => {
  it('sends the origin secret and the request id, never the client Authorization', async () => {
    const { response, origin, attempts } = await forwardToOrigins(
      env,
      scoreRequest({ requestId: 'rid-123', headers: { 'content-type': 'application/json', Authorization: 'Bearer client-key', 'x-extra': 'kept' } }),
    );
    expect(response.status).toBe(200);
    const body = (await response.json()) as { model: string; rewards: number[]; ranking: number[] };
    expect(body.model).toBe('ImageReward-v1.0');
    expect(body.rewards).toHaveLength(2);
    expect(origins).toContain(origin);
    expect(attempts).toEqual([{ origin, outcome: 'ok', status: 200, ms: expect.any(Number) }]);

    const log = await originLog();
    const received = log.flat();
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ path: '/v1/score', method: 'POST', authorization: 'Bearer test-origin-secret', requestId: 'rid-123', images: 2 });
    expect(log[origins.indexOf(origin)]).toHaveLength(1);
  });

  it('sends no Authorization at all without ORIGIN_SECRET (and the origin says 401, not retried)', async () => {
    const { response, attempts } = await forwardToOrigins({ ...env, ORIGIN_SECRET: undefined }, scoreRequest({ headers: { authorization: 'Bearer client-key' } }));
    expect(response.status).toBe(401);
    expect(attempts).toHaveLength(1);
    const received = (await originLog()).flat();
    expect(received).toHaveLength(1);
    expect(received[0]?.authorization).toBeNull();
  });

  it('spreads sequential calls over every origin', async () => {
    for (let i = 0; i < 6; i++) {
      const { response } = await forwardToOrigins(env, scoreRequest());
      expect(response.status).toBe(200);
      await response.body?.cancel();
    }
    expect(await scoreCounts()).toEqual([2, 2, 2]);
  });

  it('prefers origins with fewer calls in flight', async () => {
    // The first call of a fresh pool starts its rotation at origin 0; a slow
    // origin 0 keeps that call in flight while four more are made.
    await setMode(0, 'slow', { delayMs: 600 });
    const first = forwardToOrigins(env, scoreRequest());
    await sleep(50);
    expect(originSnapshot(env).map((o) => o.inFlight)).toEqual([1, 0, 0]);
    for (let i = 0; i < 4; i++) {
      const { response } = await forwardToOrigins(env, scoreRequest());
      await response.body?.cancel();
    }
    const slow = await first;
    expect(slow.origin).toBe(origins[0]);
    await slow.response.body?.cancel();
    // Round-robin alone would have sent the fourth call (rotation back at 0) to origin 0 too.
    const counts = await scoreCounts();
    expect(counts[0]).toBe(1);
    expect((counts[1] ?? 0) + (counts[2] ?? 0)).toBe(4);
  });

  it('retries a refused connection on another origin and records the attempts', async () => {
    await setMode(0, 'refuse');
    const { response, origin, attempts } = await forwardToOrigins(env, scoreRequest({ requestId: 'rid-retry' }));
    expect(response.status).toBe(200);
    await response.body?.cancel();
    expect(origin).not.toBe(origins[0]);
    expect(attempts).toHaveLength(2);
    expect(attempts[0]).toMatchObject({ origin: origins[0], outcome: 'network_error' });
    expect(attempts[1]).toMatchObject({ origin, outcome: 'ok', status: 200 });
    const log = await originLog();
    // Both tries carried the same request id.
    expect(log.flat().map((e) => e.requestId)).toEqual(['rid-retry', 'rid-retry']);
    expect(originSnapshot(env)[0]).toMatchObject({ state: 'closed', consecutiveFailures: 1, inFlight: 0 });
  });

  it.each([
    ['fail503', 503],
    ['fail500', 500],
  ] as const)('retries %s elsewhere', async (mode, status) => {
    await setMode(0, mode);
    const { response, origin, attempts } = await forwardToOrigins(env, scoreRequest());
    expect(response.status).toBe(200);
    await response.body?.cancel();
    expect(origin).not.toBe(origins[0]);
    expect(attempts.map((a) => [a.origin, a.outcome, a.status])).toEqual([
      [origins[0], 'http_error', status],
      [origin, 'ok', 200],
    ]);
  });

  it('gives up on a hung origin after the attempt timeout and uses another', async () => {
    await setMode(0, 'hang');
    const started = Date.now();
    const { response, attempts } = await forwardToOrigins(fastEnv(), scoreRequest());
    expect(response.status).toBe(200);
    await response.body?.cancel();
    expect(attempts[0]).toMatchObject({ origin: origins[0], outcome: 'timeout' });
    expect(attempts[0]?.ms).toBeGreaterThanOrEqual(250);
    expect(attempts[1]).toMatchObject({ outcome: 'ok' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('returns an origin 4xx at once without retrying', async () => {
    const { response, attempts } = await forwardToOrigins(env, scoreRequest({ body: '{"prompt": oops' }));
    expect(response.status).toBe(400);
    expect(((await response.json()) as { code: string }).code).toBe('invalid_json');
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ outcome: 'http_error', status: 400 });
    expect((await scoreCounts()).reduce((a, b) => a + b, 0)).toBe(1);
    // A 4xx proves the origin alive: it is not a failure.
    expect(originSnapshot(env).every((o) => o.consecutiveFailures === 0)).toBe(true);
  });

  it('returns a 200 garbage body as is (the caller judges it)', async () => {
    for (const i of [0, 1, 2]) await setMode(i, 'garbage');
    const { response, attempts } = await forwardToOrigins(env, scoreRequest());
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('not JSON');
    expect(attempts).toHaveLength(1);
  });

  it('passes the last origin 5xx through when every attempt got one', async () => {
    for (const i of [0, 1, 2]) await setMode(i, 'fail503');
    const { response, attempts } = await forwardToOrigins(env, scoreRequest());
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('2');
    expect(((await response.json()) as { code: string }).code).toBe('queue_full');
    expect(attempts.map((a) => a.origin).sort()).toEqual([...origins].sort());
    expect(await scoreCounts()).toEqual([1, 1, 1]);
  });

  it('throws OriginUnavailableError promptly when every origin refuses', async () => {
    for (const i of [0, 1, 2]) await setMode(i, 'refuse');
    const started = Date.now();
    const err = await forwardToOrigins(env, scoreRequest()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OriginUnavailableError);
    const u = err as OriginUnavailableError;
    expect(u.code).toBe('origin_unavailable');
    expect(u.reason).toBe('all_attempts_failed');
    expect(u.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(u.retryAfterSeconds).toBeLessThanOrEqual(30);
    expect(u.attempts.map((a) => a.outcome)).toEqual(['network_error', 'network_error', 'network_error']);
    expect(new Set(u.attempts.map((a) => a.origin)).size).toBe(3);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('throws OriginUnavailableError within the attempt budgets when every origin hangs', async () => {
    for (const i of [0, 1, 2]) await setMode(i, 'hang');
    const started = Date.now();
    const err = await forwardToOrigins(fastEnv(), scoreRequest()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OriginUnavailableError);
    expect((err as OriginUnavailableError).attempts.map((a) => a.outcome)).toEqual(['timeout', 'timeout', 'timeout']);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('throws at once, without any fetch, when no origin is configured', async () => {
    const err = await forwardToOrigins({ ...env, ORIGINS: '' }, scoreRequest()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OriginUnavailableError);
    expect((err as OriginUnavailableError).reason).toBe('no_eligible_origin');
    expect((err as OriginUnavailableError).attempts).toEqual([]);
  });

  it('honours the deadline of the whole forward', async () => {
    for (const i of [0, 1, 2]) await setMode(i, 'hang');
    const started = Date.now();
    // Attempts may take 30 s each, but the forward as a whole has 400 ms.
    const err = await forwardToOrigins({ ...env, ORIGIN_TIMEOUT_MS: '30000' }, scoreRequest({ deadlineMs: Date.now() + 400 })).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(OriginUnavailableError);
    expect((err as OriginUnavailableError).reason).toBe('deadline_exceeded');
    expect((err as OriginUnavailableError).attempts).toEqual([expect.objectContaining({ outcome: 'timeout' })]);
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(elapsed).toBeLessThan(5_000);
  });

  it('does not fetch at all when the deadline has already passed', async () => {
    const err = await forwardToOrigins(env, scoreRequest({ deadlineMs: Date.now() - 1 })).catch((e: unknown) => e);
    expect((err as OriginUnavailableError).reason).toBe('deadline_exceeded');
    expect(await scoreCounts()).toEqual([0, 0, 0]);
  });

  it('stops on a client abort, rethrows it, and does not blame the origin', async () => {
    await setMode(0, 'hang');
    const client = new AbortController();
    const tuned = fastEnv({ ORIGIN_TIMEOUT_MS: '5000', ORIGIN_FAILURE_THRESHOLD: '1' });
    const pending = forwardToOrigins(tuned, scoreRequest({ signal: client.signal }));
    await sleep(100);
    client.abort(new Error('client went away'));
    const err = await pending.catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(OriginUnavailableError);
    expect((err as Error).message).toBe('client went away');
    // Not retried elsewhere, and origin 0's circuit is untouched (threshold 1 would have opened it).
    expect(await scoreCounts()).toEqual([1, 0, 0]);
    expect(originSnapshot(tuned)[0]).toMatchObject({ state: 'closed', consecutiveFailures: 0, inFlight: 0 });
  });

  it('refuses an already aborted call without fetching', async () => {
    const client = new AbortController();
    client.abort(new Error('gone'));
    await expect(forwardToOrigins(env, scoreRequest({ signal: client.signal }))).rejects.toThrow('gone');
    expect(await scoreCounts()).toEqual([0, 0, 0]);
  });
});

describe('circuit breaker', () => {
  it('opens after the failure threshold and skips the origin without contacting it', async () => {
    const tuned = fastEnv({ ORIGIN_FAILURE_THRESHOLD: '2', ORIGIN_OPEN_MS: '60000' });
    await setMode(0, 'refuse');
    for (let i = 0; i < 9; i++) {
      const { response } = await forwardToOrigins(tuned, scoreRequest());
      expect(response.status).toBe(200);
      await response.body?.cancel();
    }
    const counts = await scoreCounts();
    // Exactly two failures reached origin 0; after that its circuit kept every call away.
    expect(counts[0]).toBe(2);
    expect((counts[1] ?? 0) + (counts[2] ?? 0)).toBe(9);
    expect(originSnapshot(tuned)[0]).toMatchObject({ state: 'open', consecutiveFailures: 2 });
  });

  it('half-opens after the open period: one probe, and a success closes it', async () => {
    const tuned = fastEnv({ ORIGIN_FAILURE_THRESHOLD: '1', ORIGIN_OPEN_MS: '300' });
    await setMode(0, 'refuse');
    const first = await forwardToOrigins(tuned, scoreRequest());
    await first.response.body?.cancel();
    expect(originSnapshot(tuned)[0]?.state).toBe('open');
    // Slow enough to still be in flight while the others are chosen, well inside the 300 ms attempt budget.
    await setMode(0, 'slow', { delayMs: 150 });
    await sleep(350);
    expect(originSnapshot(tuned)[0]?.state).toBe('half_open');

    // Six concurrent calls: the half-open origin takes exactly one (the probe).
    const results = await Promise.all(Array.from({ length: 6 }, () => forwardToOrigins(tuned, scoreRequest())));
    for (const r of results) await r.response.body?.cancel();
    expect((await scoreCounts())[0]).toBe(2); // the refused call + the probe
    expect(results.filter((r) => r.origin === origins[0])).toHaveLength(1);
    expect(originSnapshot(tuned)[0]).toMatchObject({ state: 'closed', consecutiveFailures: 0 });
  });

  it('re-opens for twice as long when the probe fails', async () => {
    const tuned = fastEnv({ ORIGIN_FAILURE_THRESHOLD: '1', ORIGIN_OPEN_MS: '400' });
    await setMode(0, 'refuse');
    const send = async (): Promise<void> => {
      const { response } = await forwardToOrigins(tuned, scoreRequest());
      await response.body?.cancel();
    };
    await send(); // opens for 400 ms
    await sleep(450);
    // The probe: calls go round until one lands on origin 0.
    for (let i = 0; i < 3; i++) await send();
    expect((await scoreCounts())[0]).toBe(2);
    expect(originSnapshot(tuned)[0]?.state).toBe('open'); // now for 800 ms
    await sleep(450);
    for (let i = 0; i < 3; i++) await send();
    expect((await scoreCounts())[0]).toBe(2); // still open after 450 ms
    await sleep(450);
    for (let i = 0; i < 3; i++) await send();
    expect((await scoreCounts())[0]).toBe(3); // probed again after 900 ms
  });

  it('throws at once with no fetch when every circuit is open, with Retry-After from the soonest half-open', async () => {
    const tuned = fastEnv({ ORIGIN_FAILURE_THRESHOLD: '1', ORIGIN_OPEN_MS: '20000' });
    for (const i of [0, 1, 2]) await setMode(i, 'refuse');
    await expect(forwardToOrigins(tuned, scoreRequest())).rejects.toBeInstanceOf(OriginUnavailableError);
    expect(await scoreCounts()).toEqual([1, 1, 1]);
    expect(originSnapshot(tuned).map((o) => o.state)).toEqual(['open', 'open', 'open']);

    const started = Date.now();
    const err = await forwardToOrigins(tuned, scoreRequest()).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(err).toBeInstanceOf(OriginUnavailableError);
    const u = err as OriginUnavailableError;
    expect(u.reason).toBe('no_eligible_origin');
    expect(u.attempts).toEqual([]);
    expect(u.retryAfterSeconds).toBeGreaterThanOrEqual(19);
    expect(u.retryAfterSeconds).toBeLessThanOrEqual(20);
    expect(await scoreCounts()).toEqual([1, 1, 1]);
  });
});

// The stand-in itself: the score-route tests rely on this contract too.
describe('scripted origins', () => {
  const auth = { authorization: 'Bearer test-origin-secret', 'content-type': 'application/json' };
  const score = (i: number, body: unknown): Promise<Response> =>
    fetch(`${origins[i]}/v1/score`, { method: 'POST', headers: auth, body: JSON.stringify(body) });

  async function expectedReward(prompt: string, bytes: string): Promise<number> {
    const data = new Uint8Array([...new TextEncoder().encode(prompt), 0, ...new TextEncoder().encode(bytes)]);
    const digest = new DataView(await crypto.subtle.digest('SHA-256', data));
    return (digest.getUint32(0) / 2 ** 32) * 4 - 2;
  }

  it('scores deterministically from (prompt, bytes), the same on every origin, and ranks 1 = best', async () => {
    const body = { prompt: 'a red fox', images: [{ data: btoa('one') }, { data: btoa('two') }, { data: btoa('three') }] };
    const answers = await Promise.all([0, 1, 2].map(async (i) => {
      const res = await score(i, body);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-origin-index')).toBe(String(i));
      return (await res.json()) as { model: string; rewards: number[]; ranking: number[]; cached: boolean[]; errors?: unknown };
    }));
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
    const a = answers[0];
    expect(a?.model).toBe('ImageReward-v1.0');
    expect(a?.rewards).toEqual([await expectedReward('a red fox', 'one'), await expectedReward('a red fox', 'two'), await expectedReward('a red fox', 'three')]);
    const best = a?.rewards.indexOf(Math.max(...(a?.rewards ?? [])));
    expect(a?.ranking[best ?? -1]).toBe(1);
    expect([...(a?.ranking ?? [])].sort()).toEqual([1, 2, 3]);
    expect(a?.cached).toEqual([false, false, false]);
    expect(a?.errors).toBeUndefined();
  });

  it('takes multipart/form-data like the real service, with the same rewards as JSON', async () => {
    const form = new FormData();
    form.append('prompt', 'a red fox');
    form.append('image0', new Blob([new TextEncoder().encode('one')]), 'image0');
    form.append('image1', new Blob([new TextEncoder().encode('CORRUPT two')]), 'image1');
    const res = await fetch(`${origins[2]}/v1/score`, { method: 'POST', headers: { authorization: auth.authorization }, body: form });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { rewards: (number | null)[]; ranking: (number | null)[] };
    expect(body.rewards).toEqual([await expectedReward('a red fox', 'one'), null]);
    expect(body.ranking).toEqual([1, null]);
    expect((await originLog())[2]?.[0]).toMatchObject({ path: '/v1/score', images: 2, prompt: 'a red fox' });
  });

  it('fails CORRUPT images one by one, and the whole call when all are', async () => {
    const partial = await score(0, { prompt: 'p', images: [{ data: btoa('CORRUPT!') }, { data: btoa('fine') }] });
    expect(partial.status).toBe(200);
    const p = (await partial.json()) as { rewards: (number | null)[]; ranking: (number | null)[]; errors: { index: number; code: string; status: number }[] };
    expect(p.rewards[0]).toBeNull();
    expect(p.ranking).toEqual([null, 1]);
    expect(p.errors).toEqual([expect.objectContaining({ index: 0, code: 'image_decode_failed', status: 422 })]);

    const all = await score(1, { prompt: 'p', images: [{ data: btoa('CORRUPT') }] });
    expect(all.status).toBe(422);
    expect(all.headers.get('content-type')).toBe('application/problem+json');
    expect(await all.json()).toMatchObject({ code: 'image_decode_failed', errors: [{ index: 0, code: 'image_decode_failed' }] });
  });

  it('guards /v1/* and /readyz with the secret, and serves models, health and readiness', async () => {
    const denied = await fetch(`${origins[0]}/v1/models`);
    expect(denied.status).toBe(401);
    expect(await denied.json()).toMatchObject({ code: 'unauthorized' });
    expect((await fetch(`${origins[0]}/readyz`)).status).toBe(401);
    expect(await (await fetch(`${origins[0]}/healthz`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${origins[0]}/readyz`, { headers: auth })).json()).toEqual({ status: 'ready', model: 'ImageReward-v1.0' });
    await setMode(1, 'model', { modelId: 'ImageReward-v2' });
    const models = (await (await fetch(`${origins[1]}/v1/models`, { headers: auth })).json()) as { object: string; data: { id: string; backend: string; ready: boolean }[] };
    expect(models).toMatchObject({ object: 'list', data: [{ id: 'ImageReward-v2', object: 'model', backend: 'ort', ready: true }] });
  });
});
