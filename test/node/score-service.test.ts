// The scoring service end to end on the real parts: tiny224.pt converted with
// convertCheckpoint, ONNX Runtime (1 thread), the worker-thread preprocessing
// pool, the real tokenizer. Expected rewards: test/fixtures/model/tiny224-e2e.json
// (the PyTorch reference over Pillow + torchvision preprocessing).
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { convertCheckpoint } from '../../gpu-service/model/convert.js';
import { normalizeRgb, preprocessImage, preprocessImageDetailed } from '../../gpu-service/preprocess/index.js';
import { OrtBackend } from '../../gpu-service/scorer/ort-backend.js';
import type { Counter, Histogram } from '../../gpu-service/service/metrics.js';
import { PreprocessPool, PreprocessWorkerError } from '../../gpu-service/service/preprocess-pool.js';
import {
  CanceledError,
  DeadlineError,
  QueueFullError,
  RequestLimitError,
  ServiceClosedError,
  createScoreService,
  type ScoreOutcome,
  type ScoreService,
  type ScoreServiceOptions,
} from '../../gpu-service/service/score-service.js';
import { loadTokenizer } from '../../gpu-service/tokenizer.js';

const ROOT = join(import.meta.dirname, '..', '..');
interface E2eFixture {
  config: ImageRewardConfig;
  images: string[];
  cases: { prompt: string; rewards: number[]; ranking: number[] }[];
}
const fixture = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/model/tiny224-e2e.json'), 'utf8')) as E2eFixture;
const TOLERANCE = 1e-4;

let work: string;
let modelDir: string;
let images: Uint8Array[];
const services: ScoreService[] = [];

async function service(opts: Partial<ScoreServiceOptions> = {}): Promise<ScoreService> {
  const s = await createScoreService({ model: modelDir, backend: 'ort', ort: { intraOpNumThreads: 1 }, preprocessWorkers: 1, ...opts });
  services.push(s);
  return s;
}

function rewardsOf(o: ScoreOutcome): number[] {
  return o.results.map((r) => {
    if (!r.ok) throw new Error(`unexpected failure ${r.code}: ${r.message}`);
    return r.reward;
  });
}

function expectReference(rewards: number[], c: { rewards: number[] }, label: string): void {
  expect(rewards).toHaveLength(c.rewards.length);
  rewards.forEach((r, i) => expect(Math.abs(r - (c.rewards[i] as number)), `${label} image ${i}`).toBeLessThanOrEqual(TOLERANCE));
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ir-service-'));
  ({ dir: modelDir } = await convertCheckpoint({ checkpoint: join(ROOT, 'test/fixtures/checkpoint/tiny224.pt'), out: join(work, 'model'), config: fixture.config }));
  images = await Promise.all(fixture.images.map(async (p) => new Uint8Array(await readFile(join(ROOT, p)))));
});

afterAll(async () => {
  await Promise.all(services.map((s) => s.close({ drainMs: 1000 })));
  await rm(work, { recursive: true, force: true });
});

describe('ORT graphs: a row’s result does not depend on the rest of its batch', () => {
  it('vision and text halves give bit-identical rows alone, in any batch composition and order', async () => {
    const backend = await OrtBackend.load(modelDir, { intraOpNumThreads: 1 });
    try {
      const tok = await loadTokenizer(join(modelDir, 'vocab.txt'));
      const L = backend.textLength;
      const per = backend.embedTokens * backend.embedWidth;
      const px = await Promise.all(images.map((b) => preprocessImage(b)));
      const P = 3 * 224 * 224;
      const batchPixels = (idx: number[]): Float32Array => {
        const out = new Float32Array(idx.length * P);
        idx.forEach((i, k) => out.set(px[i]!, k * P));
        return out;
      };
      // Vision: every image alone, then all five in one batch, then a reordered subset.
      const alone = await Promise.all(px.map((_, i) => backend.encodeImages(batchPixels([i]), 1)));
      const all = await backend.encodeImages(batchPixels([0, 1, 2, 3, 4]), 5);
      const sub = await backend.encodeImages(batchPixels([3, 0, 4]), 3);
      for (let i = 0; i < 5; i++) expect(Buffer.from(all.buffer, i * per * 4, per * 4).equals(Buffer.from(alone[i]!.buffer)), `vision row ${i}`).toBe(true);
      [3, 0, 4].forEach((i, k) => expect(Buffer.from(sub.buffer, k * per * 4, per * 4).equals(Buffer.from(alone[i]!.buffer)), `vision row ${i} at ${k}`).toBe(true));

      // Text: rows (prompt p, image i) with different prompts (different padding) mixed in one batch.
      const enc = fixture.cases.map((c) => tok.encode(c.prompt, L));
      const textRun = async (rows: [number, number][]): Promise<Float32Array> => {
        const ids = new BigInt64Array(rows.length * L);
        const mask = new BigInt64Array(rows.length * L);
        const emb = new Float32Array(rows.length * per);
        rows.forEach(([p, i], k) => {
          for (let j = 0; j < L; j++) {
            ids[k * L + j] = BigInt(enc[p]!.input_ids[j]!);
            mask[k * L + j] = BigInt(enc[p]!.attention_mask[j]!);
          }
          emb.set(alone[i]!, k * per);
        });
        return (await backend.scoreText(ids, mask, emb, rows.length)).reward;
      };
      const rows: [number, number][] = [];
      for (let p = 0; p < fixture.cases.length; p++) for (let i = 0; i < 5; i++) rows.push([p, i]);
      const single = await Promise.all(rows.map((r) => textRun([r])));
      const batched = await textRun(rows);
      const shuffled = rows.map((r, k) => [r, k] as const).sort((a, b) => ((a[1] * 7) % 15) - ((b[1] * 7) % 15));
      const mixed = await textRun(shuffled.map(([r]) => r));
      rows.forEach((_, k) => expect(batched[k], `text row ${k} in the full batch`).toBe(single[k]![0]));
      shuffled.forEach(([, k], at) => expect(mixed[at], `text row ${k} at ${at}`).toBe(single[k]![0]));
      rows.forEach(([p, i], k) => expect(Math.abs(single[k]![0]! - fixture.cases[p]!.rewards[i]!)).toBeLessThanOrEqual(TOLERANCE));
    } finally {
      await backend.dispose();
    }
  });
});

describe('createScoreService (tiny224, ORT)', () => {
  it('scores image bytes as the reference does, with ranking, timings and model info', async () => {
    const s = await service({ maxBatch: 8 });
    expect(s.modelId).toBe('tiny224');
    expect(s.backend).toBe('ort');
    expect(s.ready()).toBe(true);
    expect(s.limits.maxImagesPerRequest).toBeGreaterThan(0);
    for (const c of fixture.cases) {
      const out = await s.score({ prompt: c.prompt, images });
      expectReference(rewardsOf(out), c, c.prompt);
      expect(out.ranking).toEqual(c.ranking);
      expect(out.timings.totalMs).toBeGreaterThan(0);
      expect(out.timings.inferenceMs).toBeGreaterThan(0);
      // Stages overlap across a request's images (its first batch runs while later images are preprocessed).
      for (const k of ['queueMs', 'preprocessMs', 'inferenceMs'] as const) expect(out.timings[k]).toBeLessThanOrEqual(out.timings.totalMs + 1e-6);
      if (c === fixture.cases[0]) {
        expect(out.timings.preprocessMs).toBeGreaterThan(0);
        expect(out.results.some((r) => r.ok && r.cached)).toBe(false);
      } else {
        // Same images, new prompt: every embed comes from the cache, nothing is preprocessed.
        expect(out.results.every((r) => r.ok && r.cached)).toBe(true);
        expect(out.timings.preprocessMs).toBe(0);
      }
    }
  });

  it('batched, unbatched and cached results are identical bit for bit', async () => {
    const unbatched = await service({ maxBatch: 1, cacheBytes: 0 });
    const batched = await service({ maxBatch: 8, maxWaitMs: 50 });
    const plain: number[][] = [];
    for (const c of fixture.cases) {
      const out = await unbatched.score({ prompt: c.prompt, images });
      expect(out.results.every((r) => r.ok && !r.cached)).toBe(true);
      plain.push(rewardsOf(out));
      expectReference(plain.at(-1)!, c, c.prompt);
    }
    // All prompts at once: batches mix prompts; the first sight of each image fills the cache.
    const first = await Promise.all(fixture.cases.map((c) => batched.score({ prompt: c.prompt, images })));
    const firstCached = first.flatMap((o) => o.results.map((r) => r.ok && r.cached));
    expect(firstCached.some((x) => !x)).toBe(true);
    first.forEach((o, p) => expect(rewardsOf(o), `first pass, prompt ${p}`).toEqual(plain[p]));
    // Again: every image's embeds come from the cache (vision encoder skipped).
    const hitsBefore = batched.cache.hits;
    const again = await Promise.all(fixture.cases.map((c) => batched.score({ prompt: c.prompt, images: [...images].reverse() })));
    again.forEach((o, p) => {
      expect(o.results.every((r) => r.ok && r.cached)).toBe(true);
      expect(rewardsOf(o).reverse(), `cached, prompt ${p}`).toEqual(plain[p]);
    });
    expect(batched.cache.hits - hitsBefore).toBe(fixture.cases.length * images.length);
    // A new prompt on known images: cached, and equal to an uncached service's answer.
    const prompt = 'a watercolor of a lighthouse in a storm';
    const viaCache = await batched.score({ prompt, images });
    const fresh = await unbatched.score({ prompt, images });
    expect(viaCache.results.every((r) => r.ok && r.cached)).toBe(true);
    expect(rewardsOf(viaCache)).toEqual(rewardsOf(fresh));
    const m = batched.metrics.render();
    expect(m).toMatch(/^imagereward_embed_cache_hits_total [1-9]\d*$/m);
    expect(m).toMatch(/^imagereward_embed_cache_misses_total [1-9]\d*$/m);
    expect(m).toMatch(/^imagereward_embed_cache_bytes [1-9]\d*$/m);
  });

  it("keeps one request's images in one forward even when they finish preprocessing far apart", async () => {
    // One preprocessing worker and a 1 ms batch wait: without holding for siblings the
    // first image would go alone (and on a GPU a split request costs a whole extra pass).
    // A long sibling wait makes the test independent of how fast this machine decodes.
    const s = await service({ maxBatch: 8, maxWaitMs: 1, maxSiblingWaitMs: 60_000, cacheBytes: 0, preprocessWorkers: 1 });
    const batches = s.metrics.get('imagereward_batches_total') as Counter;
    for (const c of fixture.cases) {
      const before = batches.get();
      const out = await s.score({ prompt: c.prompt, images });
      expectReference(rewardsOf(out), c, c.prompt);
      expect(batches.get() - before, c.prompt).toBe(1);
    }
    // More images than a batch holds: split by maxBatch only.
    const small = await service({ maxBatch: 2, maxWaitMs: 1, maxSiblingWaitMs: 60_000, cacheBytes: 0, preprocessWorkers: 1 });
    const b2 = small.metrics.get('imagereward_batches_total') as Counter;
    await small.score({ prompt: fixture.cases[0]!.prompt, images });
    expect(b2.get()).toBe(Math.ceil(images.length / 2));
  });

  it('runs batches on several backends side by side (ORT replicas here; one engine per GPU with CUDA)', async () => {
    const s = await service({ replicas: 2, maxBatch: 1, maxWaitMs: 0, cacheBytes: 0, preprocessWorkers: 2 });
    expect(s.metrics.render()).toMatch(/^imagereward_backends 2$/m);
    expect(s.metrics.render()).toMatch(/^imagereward_process_resident_memory_bytes [1-9]\d+$/m);
    const c = fixture.cases[1]!;
    const outs = await Promise.all(images.map((img) => s.score({ prompt: c.prompt, images: [img] })));
    outs.forEach((o, i) => expect(Math.abs(rewardsOf(o)[0]! - c.rewards[i]!)).toBeLessThanOrEqual(TOLERANCE));
    expect(s.metrics.render()).toMatch(/^imagereward_batches_in_flight_peak 2$/m);
    await expect(service({ replicas: 0 })).rejects.toThrow(/replicas/);
  });

  it('serves many concurrent requests from several tenants in shared batches, each answer right', async () => {
    const s = await service({ maxBatch: 8, maxWaitMs: 30, cacheBytes: 0, preprocessWorkers: 2 });
    const jobs = Array.from({ length: 24 }, (_, k) => {
      const c = k % fixture.cases.length;
      const pick = [k % 5, (k + 2) % 5].filter((v, i, a) => a.indexOf(v) === i);
      return { c, pick, tenant: `t${k % 3}` };
    });
    const outs = await Promise.all(jobs.map((j) => s.score({ prompt: fixture.cases[j.c]!.prompt, images: j.pick.map((i) => images[i]!), tenant: j.tenant })));
    outs.forEach((o, k) => {
      const j = jobs[k]!;
      const ref = fixture.cases[j.c]!;
      rewardsOf(o).forEach((r, n) => expect(Math.abs(r - ref.rewards[j.pick[n]!]!)).toBeLessThanOrEqual(TOLERANCE));
    });
    const h = s.metrics.get('imagereward_batch_size') as Histogram;
    const { count, sum } = h.get();
    expect(sum).toBe(jobs.reduce((a, j) => a + j.pick.length, 0));
    expect(count).toBeLessThan(sum); // some forward held more than one image
    expect(h.get().buckets.find((b) => b.le === 1)!.count).toBeLessThan(count);
    expect(s.queuedImages()).toBe(0);
    const text = s.metrics.render();
    expect(text).toMatch(/^imagereward_score_requests_total\{outcome="ok"\} 24$/m);
    expect(text).toMatch(/^imagereward_stage_duration_seconds_count\{stage="preprocess"\} \d+$/m);
    expect(text).toMatch(/^imagereward_stage_duration_seconds_count\{stage="inference"\} \d+$/m);
    expect(text).toMatch(/^imagereward_queue_depth_images 0$/m);
  });

  it('is fair across tenants: a one-image request is not stuck behind another tenant’s big one', async () => {
    const s = await service({ maxBatch: 1, cacheBytes: 0 });
    const order: string[] = [];
    const big = s.score({ prompt: 'big', tenant: 'a', images: Array.from({ length: 16 }, (_, i) => images[i % 5]!) }).then(() => order.push('a-big'));
    const a2 = s.score({ prompt: 'a again', tenant: 'a', images: [images[0]!] }).then(() => order.push('a-small'));
    const b = s.score({ prompt: 'small', tenant: 'b', images: [images[1]!] }).then(() => order.push('b'));
    await Promise.all([big, a2, b]);
    // b is served in turn with a's images; a's second request waits for a's first (FIFO within a tenant).
    expect(order).toEqual(['b', 'a-big', 'a-small']);
  });

  it('a bad image fails only itself, with its code and status', async () => {
    const s = await service({ limits: { maxImageBytes: 200_000 } });
    const truncated = images[2]!.subarray(0, 200);
    const text = new TextEncoder().encode('definitely not an image, just some text that is long enough');
    const big = new Uint8Array(200_001);
    big.set(images[1]!.subarray(0, 100));
    const c = fixture.cases[0]!;
    const out = await s.score({ prompt: c.prompt, images: [images[0]!, truncated, images[1]!, text, new Uint8Array(0), big, images[4]!] });
    const r = out.results;
    expect(r[0]).toMatchObject({ ok: true });
    expect(r[1]).toMatchObject({ ok: false, code: 'image_decode_failed', status: 422 });
    expect(r[2]).toMatchObject({ ok: true });
    expect(r[3]).toMatchObject({ ok: false, code: 'unsupported_image_format', status: 415 });
    expect(r[4]).toMatchObject({ ok: false, code: 'image_empty', status: 400 });
    expect(r[5]).toMatchObject({ ok: false, code: 'image_too_large', status: 413 });
    expect(r[6]).toMatchObject({ ok: true });
    const good = [0, 2, 6].map((i) => (r[i] as { reward: number }).reward);
    [0, 1, 4].forEach((ref, k) => expect(Math.abs(good[k]! - c.rewards[ref]!)).toBeLessThanOrEqual(TOLERANCE));
    // Ranking among the ok images only (reference order of images 0, 1, 4: 2, 1, 3).
    expect(out.ranking).toEqual([2, null, 1, null, null, null, 3]);
    expect(s.metrics.render()).toMatch(/^imagereward_image_errors_total\{code="image_decode_failed"\} 1$/m);
  });

  it('refuses images over the pixel limit from the header, before decoding', async () => {
    const s = await service({ limits: { maxImagePixels: 250 * 250 } });
    const out = await s.score({ prompt: 'x', images: [images[1]!, images[3]!] }); // 900x700, 230x240
    expect(out.results[0]).toMatchObject({ ok: false, code: 'image_too_large', status: 413 });
    expect(out.results[1]).toMatchObject({ ok: true });
    expect(out.ranking).toEqual([null, 1]);
  });

  it('enforces request limits', async () => {
    const s = services[0]!;
    await expect(s.score({ prompt: 'x', images: new Array(s.limits.maxImagesPerRequest + 1).fill(images[0]!) })).rejects.toMatchObject({ code: 'too_many_images', status: 422 });
    await expect(s.score({ prompt: 'é'.repeat(s.limits.maxPromptChars + 1), images: [images[0]!] })).rejects.toBeInstanceOf(RequestLimitError);
    await expect(s.score({ prompt: 'x', images: [] })).rejects.toMatchObject({ code: 'invalid_request' });
  });

  it('a full queue refuses new work with QueueFullError and a Retry-After estimate, then recovers', async () => {
    const s = await service({ maxQueuedImages: 3, maxBatch: 1 });
    await s.score({ prompt: 'warm up the throughput estimate', images: [images[0]!, images[1]!, images[2]!] });
    const first = s.score({ prompt: 'a', images: [images[0]!, images[1]!, images[3]!] });
    let err: unknown;
    try {
      await s.score({ prompt: 'b', images: [images[4]!] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(QueueFullError);
    expect((err as QueueFullError).code).toBe('queue_full');
    expect((err as QueueFullError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(Number.isInteger((err as QueueFullError).retryAfterSeconds)).toBe(true);
    await expect(s.score({ prompt: 'c', images: [images[0]!, images[1]!, images[2]!, images[3]!] })).rejects.toBeInstanceOf(QueueFullError);
    expect(rewardsOf(await first)).toHaveLength(3);
    expect(s.queuedImages()).toBe(0);
    expect(rewardsOf(await s.score({ prompt: 'b', images: [images[4]!] }))).toHaveLength(1);
    expect(s.metrics.render()).toMatch(/^imagereward_score_requests_total\{outcome="queue_full"\} 2$/m);
  });

  it('cancellation rejects with CanceledError and drops the request’s queued images', async () => {
    const s = await service({ maxBatch: 1, cacheBytes: 0 });
    const scored = s.metrics.get('imagereward_images_scored_total') as Counter;
    const ac = new AbortController();
    const many = Array.from({ length: 12 }, (_, i) => images[i % 5]!);
    const p = s.score({ prompt: 'cancel me', images: many, signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(CanceledError);
    // Queued images are dropped at once; the few already being preprocessed (1 worker, 2 in flight) finish and are thrown away.
    expect(s.queuedImages()).toBeLessThanOrEqual(2);
    await expect.poll(() => s.queuedImages(), { timeout: 10_000 }).toBe(0);
    expect((s.metrics.get('imagereward_stage_duration_seconds') as Histogram).get({ stage: 'preprocess' }).count).toBeLessThanOrEqual(2);
    // Nothing reached the model.
    expect(scored.get()).toBe(0);
    expect((s.metrics.get('imagereward_batches_total') as Counter).get()).toBe(0);
    const pre = new AbortController();
    pre.abort();
    await expect(s.score({ prompt: 'x', images: [images[0]!], signal: pre.signal })).rejects.toMatchObject({ code: 'canceled' });
    // The service is still fine.
    expectReference(rewardsOf(await s.score({ prompt: fixture.cases[0]!.prompt, images })), fixture.cases[0]!, 'after cancel');
    expect(s.metrics.render()).toMatch(/^imagereward_score_requests_total\{outcome="canceled"\} 2$/m);
  });

  it('a request past its deadline rejects with DeadlineError; its images are dropped', async () => {
    const s = await service({ maxBatch: 1, cacheBytes: 0 });
    const many = Array.from({ length: 16 }, (_, i) => images[i % 5]!);
    await expect(s.score({ prompt: 'late', images: many, deadlineMs: Date.now() + 15 })).rejects.toBeInstanceOf(DeadlineError);
    await expect(s.score({ prompt: 'late', images: [images[0]!], deadlineMs: Date.now() - 1 })).rejects.toMatchObject({ code: 'deadline_exceeded' });
    await expect.poll(() => s.queuedImages(), { timeout: 10_000 }).toBe(0);
    expect((s.metrics.get('imagereward_images_scored_total') as Counter).get()).toBeLessThan(16);
    const ok = await s.score({ prompt: fixture.cases[1]!.prompt, images, deadlineMs: Date.now() + 30_000 });
    expectReference(rewardsOf(ok), fixture.cases[1]!, 'with a generous deadline');
  });

  it('close() finishes queued and in-flight work, then refuses new requests', async () => {
    const s = await service({ maxBatch: 2, cacheBytes: 0 });
    const pending = fixture.cases.map((c) => s.score({ prompt: c.prompt, images }));
    const closed = s.close({ drainMs: 30_000 });
    expect(s.ready()).toBe(false);
    await expect(s.score({ prompt: 'x', images: [images[0]!] })).rejects.toBeInstanceOf(ServiceClosedError);
    const outs = await Promise.all(pending);
    outs.forEach((o, p) => expectReference(rewardsOf(o), fixture.cases[p]!, `drained ${p}`));
    await closed;
    await s.close();
  });

  it('close() with a short drain fails what is left with ServiceClosedError', async () => {
    const s = await service({ maxBatch: 1, cacheBytes: 0 });
    const many = Array.from({ length: 16 }, (_, i) => images[i % 5]!);
    const p = expect(s.score({ prompt: 'too much', images: many })).rejects.toBeInstanceOf(ServiceClosedError);
    await s.close({ drainMs: 1 });
    await p;
    expect(s.queuedImages()).toBe(0);
  });
});

describe('PreprocessPool', () => {
  it('gives the RGB crop of preprocessImage bit for bit (normalized: its tensor), leaves the input intact, and replaces a crashed worker', async () => {
    const pool = new PreprocessPool({ size: 1 });
    try {
      const input = images[0]!;
      const copy = input.slice();
      const t = await pool.run(input);
      expect(input).toEqual(copy);
      expect(t).toHaveLength(224 * 224 * 3);
      const ref = await preprocessImageDetailed(copy);
      expect(Buffer.from(t.buffer).equals(Buffer.from(ref.rgb.buffer, ref.rgb.byteOffset, ref.rgb.byteLength))).toBe(true);
      // ToTensor + Normalize where the model runs gives preprocessImage's tensor exactly
      const tensor = await preprocessImage(copy);
      for (const backend of ['native', 'reference'] as const) {
        if (backend === 'native' && ref.backend !== 'native') continue;
        const n = normalizeRgb(t, 1, 224, backend);
        expect(Buffer.from(n.buffer).equals(Buffer.from(tensor.buffer, tensor.byteOffset, tensor.byteLength)), backend).toBe(true);
      }
      await expect(pool.crashOneForTest()).rejects.toThrow(PreprocessWorkerError);
      await expect(pool.crashOneForTest()).rejects.toThrow(/exited \(code 1\).*replaced/);
      expect(pool.crashCount).toBe(2);
      const again = await pool.run(input);
      expect(Buffer.from(again.buffer).equals(Buffer.from(t.buffer))).toBe(true);
      await expect(pool.run(input.subarray(0, 50))).rejects.toMatchObject({ name: 'ImageError', code: 'image_decode_failed' });
    } finally {
      await pool.close();
    }
    await expect(pool.run(images[0]!)).rejects.toMatchObject({ code: 'pool_closed' });
  });
});
