// apiKeyAuth (edge/auth/api-key-auth.ts) on a small Hono app inside workerd,
// with the real API_KEYS KV: the RFC 6750 challenges, revocation, AUTH=off and
// a misconfigured AUTH.
import { env } from 'cloudflare:workers';
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { beforeEach, describe, expect, it } from 'vitest';
import { createKey, revokeKey } from '../../edge/auth/api-keys.js';
import { apiKeyAuth } from '../../edge/auth/api-key-auth.js';
import type { EdgeEnv, Env } from '../../edge/env.js';

const app = new Hono<EdgeEnv>();
app.use('*', requestId());
app.use('/v1/*', apiKeyAuth());
app.get('/v1/whoami', (c) => c.json(c.get('tenant')));
app.get('/public', (c) => c.text('ok'));

const call = (headers: Record<string, string> = {}, bindings: Env = env) => app.request('/v1/whoami', { headers }, bindings);

interface Problem {
  code: string;
  status: number;
  detail: string;
  request_id?: string;
}

async function expectUnauthorized(res: Response, error?: string): Promise<Problem> {
  expect(res.status).toBe(401);
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  expect(res.headers.get('www-authenticate')).toBe(`Bearer realm="imagereward"${error ? `, error="${error}"` : ''}`);
  const p = (await res.json()) as Problem;
  expect(p).toMatchObject({ code: 'unauthorized', status: 401 });
  expect(p.request_id).toMatch(/^[0-9a-f-]{36}$/);
  return p;
}

beforeEach(async () => {
  const page = await env.API_KEYS.list();
  await Promise.all(page.keys.map((k) => env.API_KEYS.delete(k.name)));
});

describe('apiKeyAuth with AUTH=required (wrangler.toml)', () => {
  it('is the configured mode', () => {
    expect(env.AUTH).toBe('required');
  });

  it('asks for a key when there is no Authorization header', async () => {
    const p = await expectUnauthorized(await call());
    expect(p.detail).toMatch(/Bearer <key>/);
    await expectUnauthorized(await call({ authorization: '   ' }));
  });

  it.each([
    ['Basic credentials', 'Basic dXNlcjpwYXNz'],
    ['Bearer without a token', 'Bearer'],
    ['Bearer and spaces', 'Bearer    '],
    ['a token with a space inside', 'Bearer irk_abc def'],
    ['a token with characters outside b64token', 'Bearer irk_ab"c'],
    ['a bare token', 'irk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
  ])('answers invalid_request for %s', async (_what, header) => {
    await expectUnauthorized(await call({ authorization: header }), 'invalid_request');
  });

  it('answers invalid_token for an unknown key and for a token that is not a key', async () => {
    const { key } = await createKey(env.API_KEYS, { tenant: 'acme', name: 'ci', tier: 'standard' });
    const other = `irk_${'A'.repeat(43)}`;
    expect(other).not.toBe(key);
    await expectUnauthorized(await call({ authorization: `Bearer ${other}` }), 'invalid_token');
    await expectUnauthorized(await call({ authorization: 'Bearer test-admin-secret' }), 'invalid_token');
  });

  it('lets a valid key through and sets the tenant from its record', async () => {
    const { key, record } = await createKey(env.API_KEYS, { tenant: 'acme', name: 'ci', tier: 'trial' });
    for (const header of [`Bearer ${key}`, `bearer ${key}`, `Bearer  ${key} `]) {
      const res = await call({ authorization: header });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ tenant: 'acme', keyId: record.id, tier: 'trial' });
    }
  });

  it('refuses a revoked key', async () => {
    const { key, record } = await createKey(env.API_KEYS, { tenant: 'acme', name: 'ci', tier: 'high' });
    expect((await call({ authorization: `Bearer ${key}` })).status).toBe(200);
    await revokeKey(env.API_KEYS, record.id);
    const p = await expectUnauthorized(await call({ authorization: `Bearer ${key}` }), 'invalid_token');
    expect(p.detail).toMatch(/not valid/);
  });

  it('treats an empty AUTH as required (fails closed)', async () => {
    await expectUnauthorized(await call({}, { ...env, AUTH: '' }));
  });

  it('does not guard routes it is not mounted on', async () => {
    expect((await app.request('/public', {}, env)).status).toBe(200);
  });
});

describe('apiKeyAuth with AUTH=off', () => {
  it('lets every request through as the anonymous standard-tier tenant, ignoring any header', async () => {
    for (const headers of [{}, { authorization: 'Bearer nonsense' }, { authorization: 'Basic x' }] as Record<string, string>[]) {
      const res = await call(headers, { ...env, AUTH: 'off' });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ tenant: 'anonymous', keyId: 'anonymous', tier: 'standard' });
    }
    expect((await call({}, { ...env, AUTH: ' OFF ' })).status).toBe(200);
  });
});

describe('apiKeyAuth with a bad AUTH value', () => {
  it('answers 500 internal naming the variable, for every request', async () => {
    const { key } = await createKey(env.API_KEYS, { tenant: 'acme', name: 'ci', tier: 'high' });
    for (const headers of [{}, { authorization: `Bearer ${key}` }] as Record<string, string>[]) {
      const res = await call(headers, { ...env, AUTH: 'optional' });
      expect(res.status).toBe(500);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      const p = (await res.json()) as Problem;
      expect(p.code).toBe('internal');
      expect(p.detail).toMatch(/AUTH must be "required" or "off".*"optional"/);
    }
  });
});
