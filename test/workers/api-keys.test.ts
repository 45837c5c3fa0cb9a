// The API key store (edge/auth/api-keys.ts) against the real KV of workerd:
// keys exist only as SHA-256 hashes, lookups reject malformed/unknown/revoked
// keys, listings need no key material, revocation keeps the record.
import { env } from 'cloudflare:workers';
import { beforeEach, describe, expect, it } from 'vitest';
import { InvalidKeyInput, KEY_PATTERN, createKey, findKey, listKeys, revokeKey, sha256Hex } from '../../edge/auth/api-keys.js';

const kv = env.API_KEYS;

async function clearKv(): Promise<void> {
  for (;;) {
    const page = await kv.list();
    if (page.keys.length === 0) return;
    await Promise.all(page.keys.map((k) => kv.delete(k.name)));
  }
}

/** Every KV key, value and metadata as text (what an operator with KV access would see). */
async function dumpKv(): Promise<string> {
  const parts: string[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page: KVNamespaceListResult<unknown, string> = await kv.list(cursor !== undefined ? { cursor } : {});
    for (const k of page.keys) parts.push(k.name, JSON.stringify(k.metadata), (await kv.get(k.name)) ?? '');
    if (page.list_complete) break;
    cursor = page.cursor;
  }
  return parts.join('\n');
}

beforeEach(clearKv);

describe('createKey', () => {
  it('returns an irk_ key of 32 random bytes and stores only its sha256', async () => {
    const { key, record } = await createKey(kv, { tenant: 'acme', name: 'ci', tier: 'trial' });
    expect(key).toMatch(KEY_PATTERN);
    expect(key).toHaveLength(4 + 43);
    const hash = await sha256Hex(key);
    expect(record).toEqual({ id: hash.slice(0, 16), tenant: 'acme', name: 'ci', tier: 'trial', created_at: expect.any(String) });
    expect(Date.parse(record.created_at)).not.toBeNaN();

    const listed = await kv.list();
    expect(listed.keys.map((k) => k.name)).toEqual([`key:${hash}`]);
    expect(listed.keys[0]?.metadata).toEqual(record); // listing needs no get
    expect(await kv.get(`key:${hash}`, { type: 'json' })).toEqual(record);

    const dump = await dumpKv();
    expect(dump).not.toContain(key);
    expect(dump).not.toContain(key.slice(4)); // not even the random part
  });

  it('makes a different key every time', async () => {
    const keys = await Promise.all(Array.from({ length: 20 }, (_, i) => createKey(kv, { tenant: 't', name: `k${i}`, tier: 'standard' })));
    expect(new Set(keys.map((k) => k.key)).size).toBe(20);
    expect(new Set(keys.map((k) => k.record.id)).size).toBe(20);
    const dump = await dumpKv();
    for (const { key } of keys) expect(dump).not.toContain(key);
  });

  it.each([
    ['an empty tenant', { tenant: '', name: 'n', tier: 'trial' }],
    ['a tenant with a space', { tenant: 'a b', name: 'n', tier: 'trial' }],
    ['a tenant with a slash', { tenant: 'a/b', name: 'n', tier: 'trial' }],
    ['a 65-character tenant', { tenant: 'x'.repeat(65), name: 'n', tier: 'trial' }],
    ['an empty name', { tenant: 't', name: '', tier: 'trial' }],
    ['a 129-character name', { tenant: 't', name: 'n'.repeat(129), tier: 'trial' }],
    ['a name with a newline', { tenant: 't', name: 'a\nb', tier: 'trial' }],
    ['a name with a tab', { tenant: 't', name: 'a\tb', tier: 'trial' }],
    ['a name with non-ASCII', { tenant: 't', name: 'café', tier: 'trial' }],
    ['a name with a bidi override', { tenant: 't', name: 'a\u202eb', tier: 'trial' }],
    ['an unknown tier', { tenant: 't', name: 'n', tier: 'gold' }],
  ])('refuses %s', async (_what, input) => {
    await expect(createKey(kv, input as Parameters<typeof createKey>[1])).rejects.toBeInstanceOf(InvalidKeyInput);
    expect((await kv.list()).keys).toHaveLength(0);
  });

  it('fits the largest record in KV metadata (1024 bytes), revoked too', async () => {
    // Every character of this name doubles when JSON-escaped.
    const name = '"\\'.repeat(64);
    const { key, record } = await createKey(kv, { tenant: 't'.repeat(64), name, tier: 'standard' });
    expect(new TextEncoder().encode(JSON.stringify({ ...record, revoked_at: record.created_at })).length).toBeLessThan(1024);
    expect(await revokeKey(kv, record.id)).toMatchObject({ name });
    expect(await findKey(kv, key)).toBeUndefined();
  });

  it('accepts the edges of the rules', async () => {
    await expect(createKey(kv, { tenant: 'A-z_0.9'.padEnd(64, 'x'), name: ' ~!"#$%&()*+,-./:;<=>?@[\\]^_`{|}'.padEnd(128, '.'), tier: 'high' })).resolves.toBeDefined();
  });
});

describe('findKey', () => {
  it('finds a live key by the full key string', async () => {
    const { key, record } = await createKey(kv, { tenant: 'acme', name: 'ci', tier: 'high' });
    expect(await findKey(kv, key)).toEqual(record);
  });

  it('returns undefined for malformed and unknown keys', async () => {
    const { key } = await createKey(kv, { tenant: 'acme', name: 'ci', tier: 'high' });
    const last = key.at(-1) === 'A' ? 'B' : 'A';
    for (const token of ['', 'irk_', key.slice(0, -1), `${key}A`, key.slice(4), `xrk_${key.slice(4)}`, `irk_${'!'.repeat(43)}`, key.slice(0, -1) + last, key.toUpperCase()]) {
      expect(await findKey(kv, token), token).toBeUndefined();
    }
    // The sha256 or the id are not keys either.
    expect(await findKey(kv, await sha256Hex(key))).toBeUndefined();
  });

  it('ignores a corrupted record', async () => {
    const { key } = await createKey(kv, { tenant: 'acme', name: 'ci', tier: 'high' });
    await kv.put(`key:${await sha256Hex(key)}`, JSON.stringify({ id: 'x', tenant: 'acme', tier: 'platinum' }));
    expect(await findKey(kv, key)).toBeUndefined();
  });
});

describe('revokeKey', () => {
  it('marks the record revoked, keeps it, and the key stops working', async () => {
    const { key, record } = await createKey(kv, { tenant: 'acme', name: 'ci', tier: 'trial' });
    const other = await createKey(kv, { tenant: 'acme', name: 'other', tier: 'trial' });
    const revoked = await revokeKey(kv, record.id);
    expect(revoked).toEqual({ ...record, revoked_at: expect.any(String) });
    expect(Date.parse(revoked?.revoked_at ?? '')).toBeGreaterThanOrEqual(Date.parse(record.created_at));
    expect(await findKey(kv, key)).toBeUndefined();
    expect(await findKey(kv, other.key)).toEqual(other.record);
    // Kept for audit, value and metadata alike.
    const hash = await sha256Hex(key);
    expect(await kv.get(`key:${hash}`, { type: 'json' })).toEqual(revoked);
    expect((await kv.list({ prefix: `key:${hash}` })).keys[0]?.metadata).toEqual(revoked);
  });

  it('keeps the first revoked_at when revoked twice', async () => {
    const { record } = await createKey(kv, { tenant: 'acme', name: 'ci', tier: 'trial' });
    const first = await revokeKey(kv, record.id);
    await new Promise((r) => setTimeout(r, 5));
    expect(await revokeKey(kv, record.id)).toEqual(first);
  });

  it('returns undefined for unknown and malformed ids', async () => {
    const { record } = await createKey(kv, { tenant: 'acme', name: 'ci', tier: 'trial' });
    const unknown = record.id.startsWith('0') ? `1${record.id.slice(1)}` : `0${record.id.slice(1)}`;
    for (const id of [unknown, '', record.id.slice(0, 8), record.id.toUpperCase(), `${record.id}0`, 'zzzzzzzzzzzzzzzz']) {
      expect(await revokeKey(kv, id), id).toBeUndefined();
    }
    expect((await listKeys(kv))[0]?.revoked_at).toBeUndefined();
  });
});

describe('listKeys', () => {
  it('lists live keys oldest first, filters by tenant, revoked ones only on request', async () => {
    const a1 = await createKey(kv, { tenant: 'a', name: 'one', tier: 'trial' });
    await new Promise((r) => setTimeout(r, 2));
    const b1 = await createKey(kv, { tenant: 'b', name: 'one', tier: 'standard' });
    await new Promise((r) => setTimeout(r, 2));
    const a2 = await createKey(kv, { tenant: 'a', name: 'two', tier: 'high' });
    await revokeKey(kv, a1.record.id);

    expect((await listKeys(kv)).map((r) => r.id)).toEqual([b1.record.id, a2.record.id]);
    expect((await listKeys(kv, { tenant: 'a' })).map((r) => r.name)).toEqual(['two']);
    const all = await listKeys(kv, { tenant: 'a', includeRevoked: true });
    expect(all.map((r) => [r.name, r.revoked_at !== undefined])).toEqual([
      ['one', true],
      ['two', false],
    ]);
    expect(await listKeys(kv, { tenant: 'nobody', includeRevoked: true })).toEqual([]);
  });

  it('reads every page of a long listing', async () => {
    // KV lists at most 1000 keys a page.
    const n = 1005;
    for (let i = 0; i < n; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => createKey(kv, { tenant: 'many', name: `k${i + j}`, tier: 'trial' })));
    }
    const keys = await listKeys(kv, { tenant: 'many' });
    expect(keys).toHaveLength(n);
    expect(new Set(keys.map((k) => k.name)).size).toBe(n);
  });

  it('skips entries that are not key records', async () => {
    await createKey(kv, { tenant: 'a', name: 'one', tier: 'trial' });
    await kv.put('key:garbage', 'not json');
    await kv.put('key:other', JSON.stringify({ hello: 'world' }), { metadata: { hello: 'world' } });
    expect(await listKeys(kv, { includeRevoked: true })).toHaveLength(1);
  });
});
