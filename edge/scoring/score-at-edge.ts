// The edge's answer to one score request, after parsing:
//
//   {url} images → fetched by the worker (caps, timeout, sniffing)
//   every image  → magic-byte check, sha256 of its bytes
//   prompt       → token ids (contracts/tokenizer)
//   pair         → cache key sha256(model, token ids, image sha256) (contracts/cache-key.ts)
//   cache        → Cache API, then KV; hits are answered from there
//   misses       → ONE origin call with only the distinct missing images
//   merge        → rewards in input order, ranking over every scored image
//                  (upstream's inference_rank), errors[] by input index
//   fresh results → written to both cache tiers after the answer (waitUntil)
//
// Cached and fresh rewards are the same float64 (JSON round-trips doubles
// exactly), so a hit is indistinguishable from a miss except for cached[].
import { ApiFailure, checkImageBytes, itemError, rankRewards, statusOf, type ItemError, type PreparedImage, type ScoreResponse, type Timings } from '../../contracts/api/index.js';
import { promptImageKeys, sha256Hex } from '../../contracts/cache-key.js';
import { ResultCache, type CachedResult } from '../cache/result-cache.js';
import { ImageFetchError, fetchImage, urlFetchAllowList } from '../images/fetch-image.js';
import { modelId as configuredModel, urlImagesEnabled } from '../config.js';
import { promptIds } from '../tokenizer.js';
import { scoreAtOrigin } from './origin-score.js';
import type { ApiLimits } from '../../contracts/api/index.js';
import type { Env } from '../env.js';

export type CacheOutcome = 'HIT' | 'MISS' | 'PARTIAL';

export interface EdgeScoreContext {
  env: Env;
  ctx: ExecutionContext | undefined;
  limits: ApiLimits;
  requestId: string;
  tenant?: string;
  signal?: AbortSignal;
  /** performance.now() when the request arrived. */
  startedAt: number;
  /** Server-Timing metrics (name → ms) are added here. */
  timing?: (name: string, ms: number, description?: string) => void;
}

export interface EdgeScoreResult {
  body: ScoreResponse;
  /** Undefined when no image was scored (then `body` is never sent: a problem is thrown). */
  cache: CacheOutcome | undefined;
}

async function resolveUrls(sc: EdgeScoreContext, items: PreparedImage[]): Promise<PreparedImage[]> {
  if (!items.some((i) => i.kind === 'url')) return items;
  const enabled = urlImagesEnabled(sc.env);
  const allowHosts = urlFetchAllowList(sc.env);
  return Promise.all(
    items.map(async (item, index): Promise<PreparedImage> => {
      if (item.kind !== 'url') return item;
      if (!enabled) return itemError(index, 'url_forbidden', 'this endpoint does not fetch image URLs; send the bytes as {data}');
      try {
        return {
          kind: 'bytes',
          bytes: await fetchImage(item.url, {
            maxBytes: sc.limits.maxImageBytes,
            timeoutMs: sc.limits.urlFetchTimeoutMs,
            allowHosts,
            ...(sc.signal !== undefined ? { signal: sc.signal } : {}),
          }),
        };
      } catch (err) {
        if (sc.signal?.aborted) throw err;
        if (err instanceof ImageFetchError) return itemError(index, err.code, `image ${index}: ${err.message}`, err.status);
        return itemError(index, 'url_fetch_failed', `image ${index}: the URL could not be fetched`);
      }
    }),
  );
}

export async function scoreAtEdge(sc: EdgeScoreContext, prompt: string, prepared: PreparedImage[]): Promise<EdgeScoreResult> {
  const model = configuredModel(sc.env);
  const t0 = performance.now();
  const items = (await resolveUrls(sc, prepared)).map((item, index) => (item.kind === 'bytes' ? checkImageBytes(index, item.bytes) : item));
  if (prepared.some((i) => i.kind === 'url')) sc.timing?.('fetch', performance.now() - t0, 'image URLs');

  const n = items.length;
  const rewards: (number | null)[] = new Array<number | null>(n).fill(null);
  const cached: boolean[] = new Array<boolean>(n).fill(false);
  const errors: ItemError[] = [];
  const scorable: { index: number; bytes: Uint8Array }[] = [];
  items.forEach((item, index) => {
    if (item.kind === 'bytes') scorable.push({ index, bytes: item.bytes });
    else if (item.kind === 'error') errors.push(item.error);
  });

  let timings: Timings = { queue_ms: 0, preprocess_ms: 0, inference_ms: 0, total_ms: 0 };
  let cacheOutcome: CacheOutcome | undefined;
  if (scorable.length > 0) {
    const t1 = performance.now();
    const ids = promptIds(prompt);
    const shas = await Promise.all(scorable.map((s) => sha256Hex(s.bytes)));
    const keys = await promptImageKeys(model, ids, shas);
    sc.timing?.('key', performance.now() - t1, 'tokenize + hash');

    const t2 = performance.now();
    const cache = new ResultCache(sc.env, sc.ctx);
    const hits = await cache.getMany(keys);
    sc.timing?.('cache', performance.now() - t2, `${hits.filter((h) => h !== undefined).length}/${keys.length} hits`);

    // Distinct missing pairs, each sent once even when the request repeats an image.
    const missing = new Map<string, { bytes: Uint8Array; indices: number[] }>();
    scorable.forEach((s, j) => {
      const hit = hits[j];
      const key = keys[j]!;
      if (hit !== undefined && hit.model === model) {
        rewards[s.index] = hit.reward;
        cached[s.index] = true;
        return;
      }
      const m = missing.get(key);
      if (m) m.indices.push(s.index);
      else missing.set(key, { bytes: s.bytes, indices: [s.index] });
    });

    if (missing.size > 0) {
      const t3 = performance.now();
      const sent = [...missing.entries()];
      const deadlineMs = Date.now() + Math.max(1, Math.floor(sc.limits.requestTimeoutMs - (performance.now() - sc.startedAt)));
      const out = await scoreAtOrigin(sc.env, {
        prompt,
        images: sent.map(([, m]) => m.bytes),
        requestId: sc.requestId,
        deadlineMs,
        modelId: model,
        ...(sc.signal !== undefined ? { signal: sc.signal } : {}),
        ...(sc.tenant !== undefined ? { tenant: sc.tenant } : {}),
      });
      sc.timing?.('origin', performance.now() - t3, `${sent.length} images, ${out.attempts} attempt(s)`);
      timings = out.timings;
      const fresh: { key: string; value: CachedResult }[] = [];
      const failed = new Map(out.errors.map((e) => [e.index, e]));
      const now = new Date().toISOString();
      sent.forEach(([key, m], j) => {
        const err = failed.get(j);
        const reward = out.rewards[j];
        if (err !== undefined || reward === null || reward === undefined) {
          const e = err ?? { index: j, code: 'internal', message: 'no reward for this image', status: 500 };
          for (const index of m.indices) errors.push({ ...e, index, message: e.message.replace(/\bimage \d+\b/, `image ${index}`) });
          return;
        }
        for (const index of m.indices) rewards[index] = reward;
        fresh.push({ key, value: { reward, model, cached_at: now } });
      });
      if (fresh.length > 0) await cache.putMany(fresh);
    }
    const hitCount = cached.filter(Boolean).length;
    cacheOutcome = missing.size === 0 ? 'HIT' : hitCount === 0 ? 'MISS' : 'PARTIAL';
  }

  errors.sort((a, b) => a.index - b.index);
  if (errors.length === n) {
    const first = errors[0]!;
    throw new ApiFailure(first.code, n === 1 ? first.message : `no image could be scored; first: ${first.message}`, { status: first.status ?? statusOf(first.code), errors });
  }
  const okIdx: number[] = [];
  const okRewards: number[] = [];
  rewards.forEach((r, i) => {
    if (r !== null) {
      okIdx.push(i);
      okRewards.push(r);
    }
  });
  const ranks = rankRewards(okRewards);
  const ranking: (number | null)[] = new Array<number | null>(n).fill(null);
  okIdx.forEach((i, j) => (ranking[i] = ranks[j] ?? null));
  timings = { ...timings, total_ms: Math.round((performance.now() - sc.startedAt) * 1000) / 1000 };
  const body: ScoreResponse = { model, rewards, ranking, ...(errors.length > 0 ? { errors } : {}), cached, timings };
  return { body, cache: cacheOutcome };
}
