// /admin/keys (edge/admin/keys-routes.ts) mounted as the edge mounts it, inside
// workerd with the real API_KEYS KV: the admin secret's 404/401/403, create →
// list → revoke, and validation problems. ADMIN_SECRET comes from vitest.config.ts.
import { env } from 'cloudflare:workers';
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { beforeEach, describe, expect, it } from 'vitest';
import { adminRoutes } from '../../edge/admin/keys-routes.js';
import { KEY_PATTERN, findKey, sha256Hex, type StoredKey } from '../../edge/auth/api-keys.js';
import type { EdgeEnv, Env } from '../../edge/env.js';

const SECRET = 'test-admin-secret';
const app = new Hono<EdgeEnv>();
app.use('*', requestId());
app.route('/admin', adminRoutes);

interface Problem {
  code: string;
  status: number;
  detail: string;
  errors?: { path: string; message: string }[];
}
interface Created {
  key: string;
  id: string;
  tenant: string;
  name: string;
  tier: string;
  created_at: string;
}

async function admin(method: string, path: string, opts: { body?: unknown; raw?: string; auth?: string | null; type?: string; bindings?: Env } = {}): Promise<Response> {
  const headers: Record<string, string> = {};
  const auth = opts.auth === undefined ? `Bearer ${SECRET}` : opts.auth;
  if (auth !== null) headers.authorization = auth;
  let body: string | undefined;
  if (opts.raw !== undefined || opts.body !== undefined) {
    body = opts.raw ?? JSON.stringify(opts.body);
    headers['content-type'] = opts.type ?? 'application/json';
  }
  return app.request(path, { method, headers, ...(body !== undefined ? { body } : {}) }, opts.bindings ?? env);
}

async function problemOf(res: Response, status: number, code: string): Promise<Problem> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  const p = (await res.json()) as Problem;
  expect(p).toMatchObject({ code, status });
  return p;
}

async function create(body: unknown): Promise<Created> {
  const res = await admin('POST', '/admin/keys', { body });
  expect(res.status).toBe(201);
  return (await res.json()) as Created;
}

beforeEach(async () => {
  const page = await env.API_KEYS.list();
  await Promise.all(page.keys.map((k) => env.API_KEYS.delete(k.name)));
});

describe('the admin secret', () => {
  it('is configured for the tests', () => {
    expect(env.ADMIN_SECRET).toBe(SECRET);
  });

  it('without ADMIN_SECRET the admin API does not exist: 404 for any request, even a "correct" one', async () => {
    for (const bindings of [{ ...env, ADMIN_SECRET: undefined }, { ...env, ADMIN_SECRET: '' }]) {
      for (const auth of [null, 'Bearer ', `Bearer ${SECRET}`]) {
        await problemOf(await admin('GET', '/admin/keys', { auth, bindings }), 404, 'not_found');
        await problemOf(await admin('POST', '/admin/keys', { auth, bindings, body: { tenant: 'x' } }), 404, 'not_found');
      }
    }
    expect((await env.API_KEYS.list()).keys).toHaveLength(0);
  });

  it('missing → 401 with a Bearer challenge, malformed → 401 invalid_request', async () => {
    const res = await admin('GET', '/admin/keys', { auth: null });
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="imagereward-admin"');
    await problemOf(res, 401, 'unauthorized');
    const bad = await admin('GET', '/admin/keys', { auth: `Basic ${btoa(`admin:${SECRET}`)}` });
    expect(bad.headers.get('www-authenticate')).toBe('Bearer realm="imagereward-admin", error="invalid_request"');
    await problemOf(bad, 401, 'unauthorized');
  });

  it('wrong → 403 forbidden (also a prefix, a longer secret, another case)', async () => {
    for (const wrong of ['nope', SECRET.slice(0, -1), `${SECRET}x`, SECRET.toUpperCase()]) {
      const res = await admin('POST', '/admin/keys', { auth: `Bearer ${wrong}`, body: { tenant: 'x' } });
      const p = await problemOf(res, 403, 'forbidden');
      expect(p.detail).not.toContain(SECRET);
      expect(res.headers.get('cache-control')).toBe('no-store');
    }
    expect((await env.API_KEYS.list()).keys).toHaveLength(0);
  });

  it('an API key is not an admin secret', async () => {
    const { key } = await create({ tenant: 'acme' });
    await problemOf(await admin('GET', '/admin/keys', { auth: `Bearer ${key}` }), 403, 'forbidden');
  });
});

describe('POST /admin/keys', () => {
  it('creates a key, shows it once, stores only its hash', async () => {
    const res = await admin('POST', '/admin/keys', { body: { tenant: 'acme', name: 'ci pipeline', tier: 'trial' } });
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const created = (await res.json()) as Created;
    expect(Object.keys(created).sort()).toEqual(['created_at', 'id', 'key', 'name', 'tenant', 'tier']);
    expect(created).toMatchObject({ tenant: 'acme', name: 'ci pipeline', tier: 'trial' });
    expect(created.key).toMatch(KEY_PATTERN);
    expect(created.id).toBe((await sha256Hex(created.key)).slice(0, 16));
    expect(await findKey(env.API_KEYS, created.key)).toMatchObject({ id: created.id, tenant: 'acme' });
    // The listing shows the record, never the key.
    const list = await admin('GET', '/admin/keys');
    const text = await list.text();
    expect(text).not.toContain(created.key);
    expect(JSON.parse(text)).toEqual({ keys: [{ id: created.id, tenant: 'acme', name: 'ci pipeline', tier: 'trial', created_at: created.created_at }] });
  });

  it('defaults: tier standard, name = tenant', async () => {
    expect(await create({ tenant: 'acme' })).toMatchObject({ tenant: 'acme', name: 'acme', tier: 'standard' });
  });

  it('answers invalid_json for a body that is not JSON', async () => {
    await problemOf(await admin('POST', '/admin/keys', { raw: '{"tenant":' }), 400, 'invalid_json');
    await problemOf(await admin('POST', '/admin/keys', { raw: '' }), 400, 'invalid_json');
  });

  it('answers unsupported_media_type for a non-JSON content type', async () => {
    await problemOf(await admin('POST', '/admin/keys', { raw: 'tenant=acme', type: 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type');
  });

  it.each([
    ['no tenant', {}, 'tenant'],
    ['a tenant with a space', { tenant: 'a b' }, 'tenant'],
    ['a 65-character tenant', { tenant: 'x'.repeat(65) }, 'tenant'],
    ['a number as tenant', { tenant: 7 }, 'tenant'],
    ['an empty name', { tenant: 'a', name: '' }, 'name'],
    ['a 129-character name', { tenant: 'a', name: 'n'.repeat(129) }, 'name'],
    ['a name with a control character', { tenant: 'a', name: 'a\u0007' }, 'name'],
    ['a name with non-ASCII', { tenant: 'a', name: 'naïve' }, 'name'],
    ['an unknown tier', { tenant: 'a', tier: 'gold' }, 'tier'],
    ['an unknown field', { tenant: 'a', teir: 'high' }, '(body)'],
    ['an array', [{ tenant: 'a' }], '(body)'],
    ['null', null, '(body)'],
  ])('answers invalid_request with errors[] for %s', async (_what, body, path) => {
    const p = await problemOf(await admin('POST', '/admin/keys', { body }), 400, 'invalid_request');
    expect(p.errors?.length).toBeGreaterThan(0);
    expect(p.errors?.map((e) => e.path)).toContain(path);
    for (const e of p.errors ?? []) expect(typeof e.message).toBe('string');
    expect((await env.API_KEYS.list()).keys).toHaveLength(0);
  });
});

describe('GET /admin/keys', () => {
  it('filters by tenant and shows revoked keys only with include_revoked', async () => {
    const a = await create({ tenant: 'a', tier: 'high' });
    const b = await create({ tenant: 'b' });
    expect((await admin('DELETE', `/admin/keys/${a.id}`)).status).toBe(200);

    const ids = async (query: string) => ((await (await admin('GET', `/admin/keys${query}`)).json()) as { keys: StoredKey[] }).keys.map((k) => k.id);
    expect(await ids('')).toEqual([b.id]);
    expect((await ids('?include_revoked=1')).sort()).toEqual([a.id, b.id].sort());
    expect((await ids('?include_revoked=true')).sort()).toEqual([a.id, b.id].sort());
    expect(await ids('?include_revoked=0')).toEqual([b.id]);
    expect(await ids('?tenant=a')).toEqual([]);
    expect(await ids('?tenant=a&include_revoked=1')).toEqual([a.id]);
    expect(await ids('?tenant=zzz')).toEqual([]);
  });

  it('validates the query', async () => {
    const p = await problemOf(await admin('GET', '/admin/keys?tenant=a%20b'), 400, 'invalid_request');
    expect(p.errors?.[0]?.path).toBe('tenant');
    const q = await problemOf(await admin('GET', '/admin/keys?include_revoked=yes'), 400, 'invalid_request');
    expect(q.errors?.[0]?.path).toBe('include_revoked');
  });
});

describe('DELETE /admin/keys/:id', () => {
  it('revokes: 200 with revoked_at, the key stops working, revoking again keeps the first time', async () => {
    const k = await create({ tenant: 'acme', tier: 'trial' });
    const res = await admin('DELETE', `/admin/keys/${k.id}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const record = (await res.json()) as StoredKey;
    expect(record).toEqual({ id: k.id, tenant: 'acme', name: 'acme', tier: 'trial', created_at: k.created_at, revoked_at: expect.any(String) });
    expect(await findKey(env.API_KEYS, k.key)).toBeUndefined();
    expect(await (await admin('DELETE', `/admin/keys/${k.id}`)).json()).toEqual(record);
  });

  it('answers 404 not_found for an unknown id and 400 for a malformed one', async () => {
    const k = await create({ tenant: 'acme' });
    const unknown = k.id.startsWith('f') ? `e${k.id.slice(1)}` : `f${k.id.slice(1)}`;
    const p = await problemOf(await admin('DELETE', `/admin/keys/${unknown}`), 404, 'not_found');
    expect(p.detail).toContain(unknown);
    await problemOf(await admin('DELETE', '/admin/keys/xyz'), 400, 'invalid_request');
    await problemOf(await admin('DELETE', `/admin/keys/${k.id.slice(0, 8)}`), 400, 'invalid_request');
    // Nothing was revoked by the failed attempts.
    expect(await findKey(env.API_KEYS, k.key)).toBeDefined();
  });

  it('needs the admin secret too', async () => {
    const k = await create({ tenant: 'acme' });
    await problemOf(await admin('DELETE', `/admin/keys/${k.id}`, { auth: 'Bearer wrong' }), 403, 'forbidden');
    await problemOf(await admin('DELETE', `/admin/keys/${k.id}`, { auth: null }), 401, 'unauthorized');
    expect(await findKey(env.API_KEYS, k.key)).toBeDefined();
  });
});
