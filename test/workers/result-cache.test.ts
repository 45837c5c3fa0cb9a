// The edge's two-tier result cache (edge/cache/result-cache.ts) against
// workerd's real Cache API and the RESULTS KV namespace of wrangler.toml.
// Every test uses fresh random keys, so no test sees another's entries.
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sha256Hex } from '../../contracts/cache-key.js';
import {
  DEFAULT_RESULT_TTL_SECONDS,
  RESULT_CACHE_NAME,
  RESULT_CACHE_URL_PREFIX,
  ResultCache,
  resultTtlSeconds,
  type CachedResult,
} from '../../edge/cache/result-cache.js';
import type { Env } from '../../edge/env.js';

const newKey = (): Promise<string> => sha256Hex(crypto.randomUUID());
const newKeys = (n: number): Promise<string[]> => Promise.all(Array.from({ length: n }, newKey));
const result = (reward: number): CachedResult => ({ reward, model: 'ImageReward-v1.0', cached_at: '2026-05-01T00:00:00.000Z' });
const dropFromCacheApi = async (key: string): Promise<boolean> => (await caches.open(RESULT_CACHE_NAME)).delete(RESULT_CACHE_URL_PREFIX + key);
const bits = (x: number): bigint => new BigUint64Array(new Float64Array([x]).buffer)[0] ?? -1n;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('ResultCache', () => {
  it('misses, then after putMany hits from the Cache API', async () => {
    const cache = new ResultCache(env, undefined);
    const [key] = (await newKeys(1)) as [string];
    expect(await cache.getMany([key])).toEqual([undefined]);
    expect(cache.stats).toEqual({ cacheApiHits: 0, kvHits: 0, misses: 1 });

    await cache.putMany([{ key, value: result(1.5) }]);
    expect(await cache.getMany([key])).toEqual([result(1.5)]);
    expect(cache.stats).toEqual({ cacheApiHits: 1, kvHits: 0, misses: 0 });
    expect(JSON.parse((await env.RESULTS.get(key)) ?? 'null')).toEqual(result(1.5));
  });

  it('falls back to KV when the Cache API lost the entry, and copies it back', async () => {
    const cache = new ResultCache(env, undefined);
    const [key] = (await newKeys(1)) as [string];
    await cache.putMany([{ key, value: result(-0.25) }]);
    expect(await dropFromCacheApi(key)).toBe(true);

    expect(await cache.getMany([key])).toEqual([result(-0.25)]);
    expect(cache.stats).toEqual({ cacheApiHits: 0, kvHits: 1, misses: 0 });
    // The write-back (awaited without a ctx) makes the next read a Cache API hit.
    expect(await cache.getMany([key])).toEqual([result(-0.25)]);
    expect(cache.stats).toEqual({ cacheApiHits: 1, kvHits: 0, misses: 0 });
  });

  it('writes KV hits back through ctx.waitUntil when given a ctx', async () => {
    const [key] = (await newKeys(1)) as [string];
    await env.RESULTS.put(key, JSON.stringify(result(3)), { expirationTtl: 600 });
    const ctx = createExecutionContext();
    const cache = new ResultCache(env, ctx);
    expect(await cache.getMany([key])).toEqual([result(3)]);
    expect(cache.stats.kvHits).toBe(1);
    await waitOnExecutionContext(ctx);
    expect(await new ResultCache(env, undefined).getMany([key])).toEqual([result(3)]);
    const match = await (await caches.open(RESULT_CACHE_NAME)).match(RESULT_CACHE_URL_PREFIX + key);
    expect(match?.headers.get('cache-control')).toBe(`max-age=${DEFAULT_RESULT_TTL_SECONDS}`);
  });

  it('treats corrupt or malformed KV values as misses', async () => {
    const keys = await newKeys(6);
    const bad = ['{"reward":', 'null', '[1]', JSON.stringify({ reward: 'high', model: 'm', cached_at: 't' }), JSON.stringify({ reward: 1, cached_at: 't' })];
    await Promise.all(bad.map((v, i) => env.RESULTS.put(keys[i] as string, v)));
    await env.RESULTS.put(keys[5] as string, JSON.stringify({ ...result(2), extra: 'dropped' }));
    const cache = new ResultCache(env, undefined);
    expect(await cache.getMany(keys)).toEqual([undefined, undefined, undefined, undefined, undefined, result(2)]);
    expect(cache.stats).toEqual({ cacheApiHits: 0, kvHits: 1, misses: 5 });
  });

  it('skips a corrupt Cache API entry and reads KV instead', async () => {
    const [key] = (await newKeys(1)) as [string];
    await (await caches.open(RESULT_CACHE_NAME)).put(RESULT_CACHE_URL_PREFIX + key, new Response('not json', { headers: { 'cache-control': 'max-age=600' } }));
    await env.RESULTS.put(key, JSON.stringify(result(7)));
    const cache = new ResultCache(env, undefined);
    expect(await cache.getMany([key])).toEqual([result(7)]);
    expect(cache.stats).toEqual({ cacheApiHits: 0, kvHits: 1, misses: 0 });
    // ...and the KV value replaced the corrupt entry.
    expect(await cache.getMany([key])).toEqual([result(7)]);
    expect(cache.stats.cacheApiHits).toBe(1);
  });

  it('stores rewards bit-identically through both tiers', async () => {
    const rewards = [0.1 + 0.2, 1.2345678901234567e-7, -1.9999999999999998, 5e-324, Number.MAX_VALUE, -2.2250738585072014e-308, 0.3];
    const keys = await newKeys(rewards.length);
    const cache = new ResultCache(env, undefined);
    await cache.putMany(keys.map((key, i) => ({ key, value: result(rewards[i] as number) })));
    const fromCacheApi = await cache.getMany(keys);
    expect(cache.stats.cacheApiHits).toBe(rewards.length);
    await Promise.all(keys.map(dropFromCacheApi));
    const fromKv = await cache.getMany(keys);
    expect(cache.stats.kvHits).toBe(rewards.length);
    rewards.forEach((r, i) => {
      expect(bits(fromCacheApi[i]?.reward ?? Number.NaN)).toBe(bits(r));
      expect(bits(fromKv[i]?.reward ?? Number.NaN)).toBe(bits(r));
    });
    expect(bits(0.1 + 0.2)).not.toBe(bits(0.3));
  });

  it('passes the TTL to KV as expirationTtl', async () => {
    const [key] = (await newKeys(1)) as [string];
    const before = Math.floor(Date.now() / 1000);
    await new ResultCache(env, undefined, { ttlSeconds: 3600 }).putMany([{ key, value: result(1) }]);
    const listed = await env.RESULTS.list({ prefix: key });
    expect(listed.keys).toHaveLength(1);
    const expiration = listed.keys[0]?.expiration ?? 0;
    expect(expiration).toBeGreaterThanOrEqual(before + 3600);
    expect(expiration).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 3600);
    const match = await (await caches.open(RESULT_CACHE_NAME)).match(RESULT_CACHE_URL_PREFIX + key);
    expect(match?.headers.get('cache-control')).toBe('max-age=3600');
  });

  it('takes the TTL from CACHE_TTL_SECONDS, with a 60 s floor', () => {
    expect(env.CACHE_TTL_SECONDS).toBe('2592000');
    expect(new ResultCache(env, undefined).ttlSeconds).toBe(DEFAULT_RESULT_TTL_SECONDS);
    expect(resultTtlSeconds({ CACHE_TTL_SECONDS: '7200' })).toBe(7200);
    expect(resultTtlSeconds({ CACHE_TTL_SECONDS: '5' })).toBe(60);
    expect(resultTtlSeconds({ CACHE_TTL_SECONDS: 'soon' })).toBe(DEFAULT_RESULT_TTL_SECONDS);
    expect(resultTtlSeconds({ CACHE_TTL_SECONDS: '' })).toBe(DEFAULT_RESULT_TTL_SECONDS);
    expect(resultTtlSeconds({}, 90.7)).toBe(90);
    expect(resultTtlSeconds({ CACHE_TTL_SECONDS: '7200' }, 10)).toBe(60);
  });

  it('counts hits per tier and answers duplicates and >100 keys in order', async () => {
    const keys = await newKeys(150);
    const cache = new ResultCache(env, undefined);
    // 0..9 in both tiers, 10..119 in KV only, the rest nowhere.
    await cache.putMany(keys.slice(0, 120).map((key, i) => ({ key, value: result(i) })));
    await Promise.all(keys.slice(10, 120).map(dropFromCacheApi));
    const asked = [...keys, keys[0] as string, keys[100] as string, keys[140] as string];
    const got = await cache.getMany(asked);
    expect(cache.stats).toEqual({ cacheApiHits: 10, kvHits: 110, misses: 30 });
    expect(got.map((r) => r?.reward)).toEqual(asked.map((k) => {
      const i = keys.indexOf(k);
      return i < 120 ? i : undefined;
    }));
    expect(await cache.getMany([])).toEqual([]);
    expect(cache.stats).toEqual({ cacheApiHits: 0, kvHits: 0, misses: 0 });
  });

  it('with a ctx, putMany resolves at once and the writes finish in waitUntil', async () => {
    const keys = await newKeys(3);
    const ctx = createExecutionContext();
    const waitUntil = vi.spyOn(ctx, 'waitUntil');
    const cache = new ResultCache(env, ctx);
    await cache.putMany(keys.map((key, i) => ({ key, value: result(i + 0.5) })));
    expect(waitUntil).toHaveBeenCalledTimes(1);
    await waitOnExecutionContext(ctx);
    expect(await new ResultCache(env, undefined).getMany(keys)).toEqual([result(0.5), result(1.5), result(2.5)]);
    expect((await Promise.all(keys.map((k) => env.RESULTS.get(k)))).every((v) => v !== null)).toBe(true);
  });

  it('refuses to store malformed results and logs them', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const [key] = (await newKeys(1)) as [string];
    const cache = new ResultCache(env, undefined);
    await cache.putMany([{ key, value: { reward: Number.NaN, model: 'm', cached_at: 't' } }]);
    expect(await env.RESULTS.get(key)).toBeNull();
    expect(errors).toHaveBeenCalledOnce();
    expect(JSON.parse(String(errors.mock.calls[0]?.[0]))).toMatchObject({ level: 'error', event: 'result_cache', op: 'put_invalid' });
  });

  it('survives a KV outage: reads miss, writes are logged and dropped', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const failing = {
      get: () => Promise.reject(new Error('KV is down')),
      put: () => Promise.reject(new Error('KV is down')),
    } as unknown as KVNamespace;
    const broken: Env = { ...env, RESULTS: failing };
    const [key, cached] = (await newKeys(2)) as [string, string];
    await new ResultCache(env, undefined).putMany([{ key: cached, value: result(4) }]);

    const cache = new ResultCache(broken, undefined);
    expect(await cache.getMany([key, cached])).toEqual([undefined, result(4)]);
    expect(cache.stats).toEqual({ cacheApiHits: 1, kvHits: 0, misses: 1 });
    await expect(cache.putMany([{ key, value: result(5) }])).resolves.toBeUndefined();
    const ops = errors.mock.calls.map((c) => (JSON.parse(String(c[0])) as { op: string }).op);
    expect(ops).toEqual(['kv_get', 'kv_put']);
    // The Cache API tier still took the write.
    expect(await cache.getMany([key])).toEqual([result(5)]);

    const ctx = createExecutionContext();
    await new ResultCache(broken, ctx).putMany([{ key, value: result(6) }]);
    await waitOnExecutionContext(ctx);
  });

  it('survives a Cache API outage: KV answers, failures are logged', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const [key] = (await newKeys(1)) as [string];
    await env.RESULTS.put(key, JSON.stringify(result(8)));
    const failingCache = {
      match: () => Promise.reject(new Error('cache is down')),
      put: () => Promise.reject(new Error('cache is down')),
    } as unknown as Cache;
    vi.spyOn(caches, 'open').mockResolvedValue(failingCache);
    const cache = new ResultCache(env, undefined);
    expect(await cache.getMany([key])).toEqual([result(8)]);
    expect(cache.stats).toEqual({ cacheApiHits: 0, kvHits: 1, misses: 0 });
    await cache.putMany([{ key, value: result(8) }]);
    expect((await env.RESULTS.get(key)) !== null).toBe(true);
    const ops = errors.mock.calls.map((c) => (JSON.parse(String(c[0])) as { op: string }).op);
    expect(ops).toEqual(['cache_match', 'cache_put', 'cache_put']);

    errors.mockClear();
    vi.spyOn(caches, 'open').mockRejectedValue(new Error('no Cache API here'));
    const noCache = new ResultCache(env, undefined);
    expect(await noCache.getMany([key])).toEqual([result(8)]);
    expect(noCache.stats.kvHits).toBe(1);
    expect(errors.mock.calls.map((c) => (JSON.parse(String(c[0])) as { op: string }).op)).toEqual(['cache_open']);
  });
});
