// rateLimit (edge/auth/rate-limit.ts) behind apiKeyAuth on a small Hono app,
// with the real `[[ratelimits]]` bindings of wrangler.toml as workerd runs them
// locally: trial = 10 requests / 10 s, standard = 600 / 60 s, high = 6000 / 60 s.
// TIER_PERIOD_SECONDS must equal those periods (the test cannot read
// wrangler.toml from workerd; it checks the behaviour and the table).
import { env } from 'cloudflare:workers';
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { describe, expect, it, vi } from 'vitest';
import { createKey } from '../../edge/auth/api-keys.js';
import { apiKeyAuth } from '../../edge/auth/api-key-auth.js';
import { TIER_PERIOD_SECONDS, rateLimit } from '../../edge/auth/rate-limit.js';
import type { Tier } from '../../edge/auth/tenant.js';
import type { EdgeEnv, Env } from '../../edge/env.js';

const app = new Hono<EdgeEnv>();
app.use('*', requestId());
app.use('/v1/*', apiKeyAuth());
app.use('/v1/*', rateLimit());
app.get('/v1/ping', (c) => c.json({ ok: true, tenant: c.get('tenant').tenant }));
// rateLimit without apiKeyAuth: a wiring mistake.
app.use('/unwired/*', rateLimit());
app.get('/unwired/ping', (c) => c.text('ok'));

const ping = (headers: Record<string, string>, bindings: Env = env) => app.request('/v1/ping', { headers }, bindings);

async function keyFor(tier: Tier, tenant = 'acme'): Promise<string> {
  return (await createKey(env.API_KEYS, { tenant, name: `${tier} ${crypto.randomUUID()}`, tier })).key;
}

/**
 * Waits, if needed, so that the next `needMs` fall inside one window of a
 * `period`-second limiter: workerd's local limiter counts in fixed windows
 * aligned to multiples of the period, and a boundary mid-test would reset it.
 */
async function withinOneWindow(period: number, needMs = 3_000): Promise<void> {
  const left = period * 1000 - (Date.now() % (period * 1000));
  if (left < needMs) await new Promise((r) => setTimeout(r, left + 20));
}

/** Statuses of n sequential requests. */
async function statuses(n: number, headers: Record<string, string>, bindings: Env = env): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await ping(headers, bindings)).status);
  return out;
}

describe('rateLimit', () => {
  it('keeps TIER_PERIOD_SECONDS in step with wrangler.toml (trial 10 s, standard and high 60 s)', () => {
    expect(TIER_PERIOD_SECONDS).toEqual({ trial: 10, standard: 60, high: 60 });
  });

  it('lets a trial key make 10 requests, then answers 429 rate_limited with Retry-After 10', async () => {
    const auth = { authorization: `Bearer ${await keyFor('trial')}` };
    await withinOneWindow(10);
    expect(await statuses(10, auth)).toEqual(Array(10).fill(200));
    const res = await ping(auth);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('10');
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    const p = (await res.json()) as { code: string; status: number; detail: string; request_id: string };
    expect(p).toMatchObject({ code: 'rate_limited', status: 429 });
    expect(p.detail).toMatch(/trial/);
    expect(p.request_id).toBeTruthy();
    expect((await ping(auth)).status).toBe(429);
  });

  it('limits keys independently, even of the same tenant', async () => {
    const a = { authorization: `Bearer ${await keyFor('trial', 'same')}` };
    const b = { authorization: `Bearer ${await keyFor('trial', 'same')}` };
    await withinOneWindow(10);
    expect(await statuses(11, a)).toEqual([...Array(10).fill(200), 429]);
    expect(await statuses(10, b)).toEqual(Array(10).fill(200));
    expect((await ping(a)).status).toBe(429);
  });

  it('gives standard and high keys their own, larger limits', async () => {
    for (const tier of ['standard', 'high'] as const) {
      const auth = { authorization: `Bearer ${await keyFor(tier)}` };
      expect(await statuses(25, auth)).toEqual(Array(25).fill(200));
    }
  });

  it('does not count requests refused by auth', async () => {
    const res = await ping({ authorization: `Bearer irk_${'A'.repeat(43)}` });
    expect(res.status).toBe(401);
  });

  it('with AUTH=off limits the anonymous tenant per client address (standard tier)', async () => {
    const off = { ...env, AUTH: 'off' };
    // A one-request limiter standing in for RATE_LIMIT_STANDARD shows which key is counted.
    const seen: string[] = [];
    const counts = new Map<string, number>();
    const fake: RateLimit = {
      limit: async ({ key }) => {
        seen.push(key);
        counts.set(key, (counts.get(key) ?? 0) + 1);
        return { success: (counts.get(key) ?? 0) <= 1 };
      },
    };
    const bindings = { ...off, RATE_LIMIT_STANDARD: fake };
    expect((await ping({ 'cf-connecting-ip': '203.0.113.7' }, bindings)).status).toBe(200);
    const limited = await ping({ 'cf-connecting-ip': '203.0.113.7' }, bindings);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('60');
    expect((await ping({ 'cf-connecting-ip': '2001:db8::1' }, bindings)).status).toBe(200);
    expect((await ping({}, bindings)).status).toBe(200);
    expect(seen).toEqual(['ip:203.0.113.7', 'ip:203.0.113.7', 'ip:2001:db8::1', 'ip:local']);
  });

  it('with AUTH=off and the real binding, one address is limited, another is not', async () => {
    // Standard tier: 600 per 60 s; a fresh address per run of the suite.
    const ip = `198.51.100.${Math.floor(Math.random() * 250) + 1}`;
    const off = { ...env, AUTH: 'off' };
    await withinOneWindow(60, 10_000);
    const results = await statuses(601, { 'cf-connecting-ip': ip }, off);
    expect(results.slice(0, 600).every((s) => s === 200)).toBe(true);
    expect(results[600]).toBe(429);
    expect((await ping({ 'cf-connecting-ip': `${ip}0` }, off)).status).toBe(200);
  });

  it('counts a key by its id, in the binding of its tier', async () => {
    const calls: { tier: string; key: string }[] = [];
    const spy = (tier: string): RateLimit => ({
      limit: async ({ key }) => {
        calls.push({ tier, key });
        return { success: true };
      },
    });
    const bindings = { ...env, RATE_LIMIT_TRIAL: spy('trial'), RATE_LIMIT_STANDARD: spy('standard'), RATE_LIMIT_HIGH: spy('high') };
    for (const tier of ['trial', 'standard', 'high'] as const) {
      const { key, record } = await createKey(env.API_KEYS, { tenant: 'acme', name: tier, tier });
      expect((await ping({ authorization: `Bearer ${key}` }, bindings)).status).toBe(200);
      expect(calls.at(-1)).toEqual({ tier, key: `key:${record.id}` });
    }
  });

  it('fails open, with a JSON log line, when the binding throws', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const broken: RateLimit = {
        limit: async () => {
          throw new Error('limiter down');
        },
      };
      const auth = { authorization: `Bearer ${await keyFor('trial')}` };
      expect(await statuses(12, auth, { ...env, RATE_LIMIT_TRIAL: broken })).toEqual(Array(12).fill(200));
      expect(errors).toHaveBeenCalledTimes(12);
      const line = JSON.parse(String(errors.mock.calls[0]?.[0])) as Record<string, unknown>;
      expect(line).toMatchObject({ level: 'error', event: 'rate_limit_unavailable', tier: 'trial', message: 'limiter down' });
    } finally {
      errors.mockRestore();
    }
  });

  it('refuses to run without a tenant (rateLimit before apiKeyAuth is a wiring bug)', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const res = await app.request('/unwired/ping', {}, env);
      expect(res.status).toBe(500);
    } finally {
      errors.mockRestore();
    }
  });
});
