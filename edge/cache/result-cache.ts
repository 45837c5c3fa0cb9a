// The edge's result cache: one score per key (contracts/cache-key.ts), in two
// tiers. The Cache API is per location and costs no KV reads, so it is asked
// first; KV is global with a TTL and catches what this location has not seen
// yet (its hits are copied into the Cache API for next time). A score depends
// only on (model, prompt ids, image bytes), so an entry never goes stale: the
// TTL only bounds storage.
//
// The cache is an optimisation and must never fail a request: every error of
// either tier is logged and turns into a miss (reads) or is dropped (writes),
// and an entry that does not parse as a CachedResult is a miss, never a value.
// Rewards are stored as JSON numbers, which round-trip IEEE doubles exactly,
// so a cached score is bit-identical to the fresh one (-0 comes back as 0, as
// it does in the API's own JSON answer, so the two still agree).
//
// The Cache API tier is keyed by synthetic URLs under RESULT_CACHE_URL_PREFIX:
// no request can ever ask for them, and a named cache keeps them apart from
// what fetch() caches.
import type { Env } from '../env.js';

export interface CachedResult {
  reward: number;
  model: string;
  cached_at: string;
}

export interface ResultCacheStats {
  cacheApiHits: number;
  kvHits: number;
  misses: number;
}

/** 30 days, the default of CACHE_TTL_SECONDS. */
export const DEFAULT_RESULT_TTL_SECONDS = 2_592_000;
/** KV refuses an expirationTtl under 60 s. */
export const MIN_RESULT_TTL_SECONDS = 60;
/** The named Cache API cache (kept apart from anything fetch() caches). */
export const RESULT_CACHE_NAME = 'imagereward-results';
/** Cache API entries are keyed by a synthetic URL; `.invalid` can never be a real host. */
export const RESULT_CACHE_URL_PREFIX = 'https://results.imagereward.invalid/v1/';
/** Most keys in one KV bulk get. */
const KV_BULK_MAX = 100;

/** The cached value, or undefined when `value` is not a well-formed CachedResult (only its three fields are kept). */
export function parseCachedResult(value: unknown): CachedResult | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.reward !== 'number' || !Number.isFinite(v.reward)) return undefined;
  if (typeof v.model !== 'string' || v.model === '') return undefined;
  if (typeof v.cached_at !== 'string' || v.cached_at === '') return undefined;
  return { reward: v.reward, model: v.model, cached_at: v.cached_at };
}

function parseJsonResult(text: string | null | undefined): CachedResult | undefined {
  if (text === null || text === undefined) return undefined;
  try {
    return parseCachedResult(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** The TTL from `explicit`, else CACHE_TTL_SECONDS, else 30 days; never under KV's 60 s minimum. */
export function resultTtlSeconds(env: Pick<Env, 'CACHE_TTL_SECONDS'>, explicit?: number): number {
  let ttl = explicit;
  if (ttl === undefined && env.CACHE_TTL_SECONDS !== undefined && env.CACHE_TTL_SECONDS.trim() !== '') ttl = Number(env.CACHE_TTL_SECONDS);
  if (ttl === undefined || !Number.isFinite(ttl)) ttl = DEFAULT_RESULT_TTL_SECONDS;
  return Math.max(MIN_RESULT_TTL_SECONDS, Math.floor(ttl));
}

function logError(op: string, err: unknown, keys: number): void {
  const message = err instanceof Error ? err.message : String(err);
  console.error(JSON.stringify({ level: 'error', event: 'result_cache', op, keys, message }));
}

export class ResultCache {
  readonly ttlSeconds: number;
  private last: ResultCacheStats = { cacheApiHits: 0, kvHits: 0, misses: 0 };
  private cachePromise: Promise<Cache | undefined> | undefined;

  constructor(
    private readonly env: Env,
    private readonly ctx: ExecutionContext | undefined,
    opts: { ttlSeconds?: number } = {},
  ) {
    this.ttlSeconds = resultTtlSeconds(env, opts.ttlSeconds);
  }

  /** Counts of the last getMany (for Server-Timing / X-Cache). */
  get stats(): ResultCacheStats {
    return { ...this.last };
  }

  /** One value per key, in order; undefined for a miss. Never rejects. */
  async getMany(keys: readonly string[]): Promise<(CachedResult | undefined)[]> {
    const out: (CachedResult | undefined)[] = new Array<CachedResult | undefined>(keys.length).fill(undefined);
    const stats: ResultCacheStats = { cacheApiHits: 0, kvHits: 0, misses: 0 };
    this.last = stats;
    if (keys.length === 0) return out;
    const unique = [...new Set(keys)];
    const found = new Map<string, CachedResult>();

    const cache = await this.cache();
    if (cache) {
      const hits = await Promise.all(unique.map((key) => this.matchOne(cache, key)));
      unique.forEach((key, i) => {
        const hit = hits[i];
        if (hit) found.set(key, hit);
      });
    }
    const cacheApiFound = found.size;

    const kvMisses = unique.filter((key) => !found.has(key));
    const fromKv = await this.kvGet(kvMisses);
    for (const [key, value] of fromKv) found.set(key, value);
    if (cache && fromKv.size > 0) {
      // Copy KV hits into this location's cache, off the response path when we can.
      const writeBack = Promise.all([...fromKv].map(([key, value]) => this.cachePut(cache, key, value))).then(() => undefined);
      if (this.ctx) this.ctx.waitUntil(writeBack);
      else await writeBack;
    }

    keys.forEach((key, i) => {
      const hit = found.get(key);
      out[i] = hit === undefined ? undefined : { ...hit };
    });
    // Counted per unique key: a key asked twice is one lookup.
    stats.cacheApiHits = cacheApiFound;
    stats.kvHits = fromKv.size;
    stats.misses = unique.length - found.size;
    return out;
  }

  /**
   * Stores each value under its key in KV (with the TTL) and in the Cache API.
   * With an ExecutionContext the writes run in ctx.waitUntil and this resolves
   * at once; without one it resolves when they are done. Never rejects.
   */
  putMany(entries: readonly { key: string; value: CachedResult }[]): Promise<void> {
    // Last write wins per key, and KV sees each key once (it rate-limits
    // writes to one key).
    const byKey = new Map<string, CachedResult>();
    for (const { key, value } of entries) {
      const v = parseCachedResult(value);
      if (v === undefined || key === '') {
        logError('put_invalid', new TypeError('refusing to cache a malformed result'), 1);
        continue;
      }
      byKey.set(key, v);
    }
    if (byKey.size === 0) return Promise.resolve();
    const work = this.writeAll(byKey);
    if (this.ctx) {
      this.ctx.waitUntil(work);
      return Promise.resolve();
    }
    return work;
  }

  private async writeAll(byKey: Map<string, CachedResult>): Promise<void> {
    const cache = await this.cache();
    const writes: Promise<void>[] = [];
    for (const [key, value] of byKey) {
      writes.push(
        this.env.RESULTS.put(key, JSON.stringify(value), { expirationTtl: this.ttlSeconds }).catch((err: unknown) => logError('kv_put', err, 1)),
      );
      if (cache) writes.push(this.cachePut(cache, key, value));
    }
    await Promise.all(writes);
  }

  /** The named cache, opened once; undefined where the Cache API is missing or failing. */
  private cache(): Promise<Cache | undefined> {
    this.cachePromise ??= (async () => {
      try {
        return await caches.open(RESULT_CACHE_NAME);
      } catch (err) {
        logError('cache_open', err, 0);
        return undefined;
      }
    })();
    return this.cachePromise;
  }

  private async matchOne(cache: Cache, key: string): Promise<CachedResult | undefined> {
    try {
      const res = await cache.match(cacheUrl(key));
      if (!res) return undefined;
      return parseJsonResult(await res.text());
    } catch (err) {
      logError('cache_match', err, 1);
      return undefined;
    }
  }

  private async cachePut(cache: Cache, key: string, value: CachedResult): Promise<void> {
    try {
      const body = JSON.stringify(value);
      await cache.put(
        cacheUrl(key),
        new Response(body, { headers: { 'content-type': 'application/json', 'cache-control': `max-age=${this.ttlSeconds}` } }),
      );
    } catch (err) {
      logError('cache_put', err, 1);
    }
  }

  /** KV values of `keys` that parse, in bulk gets of at most 100 keys; failures and corrupt values are left out. */
  private async kvGet(keys: readonly string[]): Promise<Map<string, CachedResult>> {
    const found = new Map<string, CachedResult>();
    const batches: string[][] = [];
    for (let i = 0; i < keys.length; i += KV_BULK_MAX) batches.push(keys.slice(i, i + KV_BULK_MAX));
    await Promise.all(
      batches.map(async (batch) => {
        try {
          // As text and parsed here: a bulk get as 'json' fails as a whole on one corrupt value.
          const values = await this.env.RESULTS.get(batch, 'text');
          for (const key of batch) {
            const value = parseJsonResult(values.get(key));
            if (value) found.set(key, value);
          }
        } catch (err) {
          logError('kv_get', err, batch.length);
        }
      }),
    );
    return found;
  }
}

function cacheUrl(key: string): string {
  return RESULT_CACHE_URL_PREFIX + encodeURIComponent(key);
}
