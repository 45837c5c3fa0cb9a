// The cron health check of the GPU origins inside workerd, against the scripted
// origins: what it publishes in KV, and how the pool's choice follows it (a
// down origin gets no traffic until this isolate sees it succeed or a later
// check says it is healthy again).
import { env } from 'cloudflare:workers';
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from 'cloudflare:test';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import { HEALTH_KEY, checkOrigins, readHealth, resetHealthCache, scheduledHealthCheck, type HealthReport } from '../../edge/origins/health.js';
import { OriginUnavailableError, forwardToOrigins, originSnapshot, resetOriginState, type ForwardRequest } from '../../edge/origins/pool.js';

const origins = inject('scriptedOrigins');
const control = inject('scriptedOriginControl');

interface LogEntry {
  method: string;
  path: string;
  authorization: string | null;
  requestId: string | null;
}

async function setMode(origin: number, mode: 'ok' | 'refuse' | 'fail503' | 'hang' | 'model', extra: { modelId?: string } = {}): Promise<void> {
  const res = await fetch(`${control}/mode`, { method: 'POST', body: JSON.stringify({ origin, mode, ...extra }) });
  expect(res.status).toBe(200);
  await res.body?.cancel();
}

async function originLog(): Promise<LogEntry[][]> {
  const res = await fetch(`${control}/log`);
  return ((await res.json()) as { origins: LogEntry[][] }).origins;
}

async function scoreCounts(): Promise<number[]> {
  return (await originLog()).map((entries) => entries.filter((e) => e.path === '/v1/score').length);
}

let counter = 0;
function scoreRequest(): ForwardRequest {
  counter++;
  return {
    path: '/v1/score',
    body: JSON.stringify({ prompt: `health #${counter}`, images: [{ data: btoa('pixels') }] }),
    headers: { 'content-type': 'application/json' },
    requestId: `health-test-${counter}`,
  };
}

/** Sends `n` calls through the pool, each expected to succeed. */
async function sendMany(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const { response } = await forwardToOrigins(env, scoreRequest());
    expect(response.status).toBe(200);
    await response.body?.cancel();
  }
}

/** A report as another isolate's cron would have written it. */
async function publish(checkedAt: number, down: number[]): Promise<void> {
  const report: HealthReport = {
    checked_at: new Date(checkedAt).toISOString(),
    origins: Object.fromEntries(origins.map((url, i) => [url, down.includes(i) ? { healthy: false, error: 'scripted', ms: 1 } : { healthy: true, status: 200, ms: 1 }])),
  };
  await env.ORIGIN_STATE.put(HEALTH_KEY, JSON.stringify(report));
  resetHealthCache();
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

beforeEach(async () => {
  const res = await fetch(`${control}/reset`, { method: 'POST' });
  expect(res.status).toBe(200);
  await res.body?.cancel();
  resetOriginState();
  await env.ORIGIN_STATE.delete(HEALTH_KEY);
});

describe('checkOrigins', () => {
  it('asks every origin /readyz with the secret and publishes the verdicts in KV', async () => {
    await setMode(1, 'refuse');
    await setMode(2, 'model', { modelId: 'ImageReward-v9' });
    const report = await checkOrigins(env);

    expect(Object.keys(report.origins)).toEqual(origins);
    expect(report.origins[origins[0] ?? '']).toMatchObject({ healthy: true, status: 200, model: 'ImageReward-v1.0' });
    expect(report.origins[origins[1] ?? '']).toMatchObject({ healthy: false, error: expect.any(String) });
    expect(report.origins[origins[1] ?? '']?.status).toBeUndefined();
    expect(report.origins[origins[2] ?? '']).toMatchObject({ healthy: true, model: 'ImageReward-v9' });
    expect(Date.now() - Date.parse(report.checked_at)).toBeLessThan(60_000);

    const stored = await env.ORIGIN_STATE.get(HEALTH_KEY, 'json');
    expect(stored).toEqual(report);

    const log = await originLog();
    for (const entries of log) {
      expect(entries).toHaveLength(1);
      expect(entries[0]).toMatchObject({ method: 'GET', path: '/readyz', authorization: 'Bearer test-origin-secret', requestId: expect.stringMatching(/^health-/) });
    }
  });

  it('marks a hung origin down after the check timeout and a 503 origin down with its status', async () => {
    await setMode(0, 'hang');
    await setMode(1, 'fail503');
    const started = Date.now();
    const report = await checkOrigins(env, { timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(report.origins[origins[0] ?? '']).toMatchObject({ healthy: false, error: 'timeout' });
    expect(report.origins[origins[1] ?? '']).toMatchObject({ healthy: false, status: 503 });
    expect(report.origins[origins[2] ?? '']).toMatchObject({ healthy: true, status: 200 });
  });

  it('runs as the scheduled handler', async () => {
    await setMode(2, 'refuse');
    const ctx = createExecutionContext();
    await scheduledHealthCheck(createScheduledController({ cron: '* * * * *', scheduledTime: Date.now() }), env, ctx);
    await waitOnExecutionContext(ctx);
    const stored = (await env.ORIGIN_STATE.get(HEALTH_KEY, 'json')) as HealthReport | null;
    expect(stored).not.toBeNull();
    expect(Object.values(stored?.origins ?? {}).map((o) => o.healthy)).toEqual([true, true, false]);
  });
});

describe('readHealth', () => {
  it('reads what another isolate published, and caches it for a while', async () => {
    expect(await readHealth(env)).toBeNull();
    await publish(Date.now(), [1]);
    const first = await readHealth(env);
    expect(first?.origins[origins[1] ?? '']?.healthy).toBe(false);
    // A newer KV value is not read again within the cache period.
    await env.ORIGIN_STATE.put(HEALTH_KEY, JSON.stringify({ checked_at: new Date().toISOString(), origins: {} }));
    expect(await readHealth(env)).toEqual(first);
  });

  it('ignores a malformed KV value', async () => {
    await env.ORIGIN_STATE.put(HEALTH_KEY, '{"checked_at": 12');
    expect(await readHealth(env)).toBeNull();
    await sendMany(3);
  });
});

describe('health-aware choice', () => {
  it('skips an origin the check found down, and uses it again once a check finds it healthy', async () => {
    await setMode(1, 'refuse');
    await checkOrigins(env);
    await setMode(1, 'ok'); // recovered, but nobody has checked yet
    await sendMany(6);
    const counts = await scoreCounts();
    expect(counts[1]).toBe(0);
    expect((counts[0] ?? 0) + (counts[2] ?? 0)).toBe(6);
    expect(originSnapshot(env).map((o) => o.healthy)).toEqual([true, false, true]);

    await checkOrigins(env);
    await sendMany(6);
    expect((await scoreCounts())[1]).toBeGreaterThan(0);
    expect(originSnapshot(env).map((o) => o.healthy)).toEqual([true, true, true]);
  });

  it('trusts its own success over an older down verdict, but not over a newer one', async () => {
    await sendMany(3); // one success from each origin
    expect(await scoreCounts()).toEqual([1, 1, 1]);

    // A verdict from before those successes: origin 1 keeps its traffic.
    await publish(Date.now() - 30_000, [1]);
    await sendMany(3);
    expect(await scoreCounts()).toEqual([2, 2, 2]);

    // A verdict from after them: origin 1 is skipped.
    await sleep(20);
    await publish(Date.now(), [1]);
    await sendMany(4);
    expect(await scoreCounts()).toEqual([4, 2, 4]);
  });

  it('forgets a down verdict older than the health TTL', async () => {
    await publish(Date.now() - 200_000, [0, 1, 2]);
    await sendMany(3);
    expect(await scoreCounts()).toEqual([1, 1, 1]);
    expect(originSnapshot(env).map((o) => o.healthy)).toEqual([null, null, null]);
  });

  it('answers at once, without any fetch, when the check found every origin down', async () => {
    await publish(Date.now(), [0, 1, 2]);
    const started = Date.now();
    const err = await forwardToOrigins(env, scoreRequest()).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(err).toBeInstanceOf(OriginUnavailableError);
    const u = err as OriginUnavailableError;
    expect(u.reason).toBe('no_eligible_origin');
    expect(u.attempts).toEqual([]);
    expect(u.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(u.retryAfterSeconds).toBeLessThanOrEqual(30);
    expect(await scoreCounts()).toEqual([0, 0, 0]);
  });
});
