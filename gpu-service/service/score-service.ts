// The scoring service's engine room: requests of (prompt, image bytes) from many
// callers become batched forwards on one backend (the CUDA engine or ONNX
// Runtime, chosen by selectBackend).
//
//   score(req) ── limits, queue bound ──▶ per image: sha256 → embed cache?
//        hit ──────────────────────────────────────────────┐
//        miss ─▶ prep queue (fair) ─▶ PreprocessPool (workers) ─▶ ready queue (fair)
//                                                          │
//   batcher: one batch at a time, ≤ maxBatch items, waits ≤ maxWaitMs for more;
//            vision half for the misses (embeds go to the cache), text half for all.
//
// Fairness: both queues serve tenants round-robin, one image per turn, and the
// requests of one tenant first-in first-out. A bad image fails only itself (its
// ImageError code and status); a request that is canceled (AbortSignal) or runs
// past its deadline rejects at once and its queued images are dropped. The queue
// is bounded in images (maxQueuedImages): a request that does not fit is refused
// with QueueFullError, whose retryAfterSeconds comes from the measured throughput.
//
// Scores do not depend on batching or on the cache: a row's result is a function
// of that row alone on the ORT backend (tested in test/node/score-service.test.ts),
// and a cached embed is the very array the vision half produced.
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_LIMITS } from '../../contracts/api/limits.js';
import type { ImageRewardConfig } from '../model/architecture.js';
import { convertCheckpoint } from '../model/convert.js';
import { CONFIG_FILE, VOCAB_FILE, readModelDirConfig } from '../model/model-dir.js';
import { IMAGE_ERROR_STATUS, IMAGE_SIZE, ImageError } from '../preprocess/index.js';
import type { ScoringBackend } from '../scorer/backend.js';
import { NativeBackend, type NativeBackendOptions } from '../scorer/native-backend.js';
import { OrtBackend, type OrtBackendOptions } from '../scorer/ort-backend.js';
import { rankRewards } from '../../contracts/api/ranking.js';
import { modelDirFor } from '../scorer/scorer.js';
import { selectBackend } from '../scorer/select-backend.js';
import { loadTokenizer } from '../tokenizer.js';
import { EmbedCache } from './embed-cache.js';
import { MetricsRegistry, type Counter, type Histogram, type Metrics } from './metrics.js';
import { PreprocessPool } from './preprocess-pool.js';

export type { Metrics } from './metrics.js';

export type ItemResult = { ok: true; reward: number; cached: boolean } | { ok: false; code: string; message: string; status: number };

export interface ScoreRequest {
  prompt: string;
  images: Uint8Array[];
  tenant?: string;
  signal?: AbortSignal;
  /**
   * Absolute deadline, a Date.now() timestamp. (A value below 1e11, i.e. before
   * 1973, is taken as a duration in ms from now instead.)
   */
  deadlineMs?: number;
}

export interface ScoreOutcome {
  results: ItemResult[];
  /** 1 = best among ok items, ties by index; null for failed items. */
  ranking: (number | null)[];
  /**
   * preprocessMs: from the first of its images entering preprocessing to the last leaving it;
   * inferenceMs: the forwards its images ran in, summed; queueMs: the rest of totalMs (waiting),
   * at least 0. The stages of different images overlap, so the three may add up to more than totalMs.
   */
  timings: { queueMs: number; preprocessMs: number; inferenceMs: number; totalMs: number };
}

export interface ServiceLimits {
  /** Most images in one request; more → RequestLimitError too_many_images (422). */
  maxImagesPerRequest: number;
  /** Largest image in bytes; bigger → that item fails with image_too_large (413). */
  maxImageBytes: number;
  /** Most pixels (from the header, before decoding); more → that item fails with image_too_large (413). */
  maxImagePixels: number;
  /** Longest prompt in code points; longer → RequestLimitError prompt_too_long (422). */
  maxPromptChars: number;
}

export const DEFAULT_SERVICE_LIMITS: Readonly<ServiceLimits> = Object.freeze({
  maxImagesPerRequest: DEFAULT_LIMITS.maxImagesPerRequest,
  maxImageBytes: DEFAULT_LIMITS.maxImageBytes,
  maxImagePixels: DEFAULT_LIMITS.maxImagePixels,
  maxPromptChars: DEFAULT_LIMITS.maxPromptChars,
});

export interface ScoreServiceOptions {
  /** A converted model directory, or an ImageReward.pt checkpoint (converted once, see modelDirFor). */
  model: string;
  /** Architecture of a checkpoint given as `model` (tests). */
  config?: ImageRewardConfig;
  backend?: 'auto' | 'ort' | 'native';
  ort?: OrtBackendOptions;
  native?: NativeBackendOptions;
  /** Most images in one forward (default 8 on ort, 64 on native). */
  maxBatch?: number;
  /** How long a ready image may wait for others to fill its batch (default 5 ms). */
  maxWaitMs?: number;
  /**
   * Backends running batches side by side: with the CUDA engine, one per GPU (`devices`,
   * default [the native options' device]); with ONNX Runtime, `replicas` independent
   * sessions (each holds its own copy of the weights). Default: one.
   */
  devices?: number[];
  replicas?: number;
  /**
   * How long a ready image may wait for images of the same request that are still
   * being decoded, so one request goes through in one forward (default 100 ms).
   */
  maxSiblingWaitMs?: number;
  /** Most images admitted and not yet answered (default 256); beyond → QueueFullError. */
  maxQueuedImages?: number;
  /** Byte budget of the image-embedding cache (default 512 MiB; 0 disables it). */
  cacheBytes?: number;
  /** Preprocessing worker threads (default min(4, cores)). */
  preprocessWorkers?: number;
  limits?: Partial<ServiceLimits>;
  /** A registry to record into (default: a new one); the HTTP layer may share it. */
  metrics?: MetricsRegistry;
}

export interface ScoreService {
  readonly modelId: string;
  readonly backend: 'ort' | 'native';
  readonly skippedBackends: readonly { name: string; reason: string }[];
  readonly limits: ServiceLimits;
  /** The model directory in use. */
  readonly modelDir: string;
  readonly maxBatch: number;
  readonly maxQueuedImages: number;
  /** Throws QueueFullError / DeadlineError / CanceledError / ServiceClosedError / RequestLimitError. */
  score(req: ScoreRequest): Promise<ScoreOutcome>;
  /** Model loaded, backend healthy, not closing. */
  ready(): boolean;
  /** Why the service can never be ready again — every backend failed for good (a lost
   *  GPU, a crashed ONNX Runtime worker) — or null. */
  failure(): string | null;
  readonly metrics: Metrics;
  /** Images admitted and not yet answered (the number bounded by maxQueuedImages). */
  queuedImages(): number;
  readonly cache: EmbedCache;
  /** Stops accepting, finishes queued and in-flight work (up to drainMs, default 30 s; then fails the rest with ServiceClosedError), disposes the backend. Idempotent. */
  close(opts?: { drainMs?: number }): Promise<void>;
}

export class QueueFullError extends Error {
  override name = 'QueueFullError';
  readonly code = 'queue_full';
  readonly status = 503;
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

export class DeadlineError extends Error {
  override name = 'DeadlineError';
  readonly code = 'deadline_exceeded';
  readonly status = 504;
}

export class CanceledError extends Error {
  override name = 'CanceledError';
  readonly code = 'canceled';
  readonly status = 499;
}

export class ServiceClosedError extends Error {
  override name = 'ServiceClosedError';
  readonly code = 'shutting_down';
  readonly status = 503;
}

export class RequestLimitError extends Error {
  override name = 'RequestLimitError';
  constructor(
    readonly code: 'too_many_images' | 'prompt_too_long' | 'invalid_request',
    message: string,
    readonly status = code === 'invalid_request' ? 400 : 422,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------

/** Default longest wait of a ready image for its own request's images still in preprocessing. */
const SIBLING_WAIT_MS = 100;

interface Req {
  seq: number;
  tenant: string;
  ids: BigInt64Array;
  mask: BigInt64Array;
  results: (ItemResult | undefined)[];
  remaining: number;
  /** Images of this request still queued for or in preprocessing. */
  unprepared: number;
  done: boolean;
  t0: number;
  prepStart: number;
  prepEnd: number;
  batches: Set<number>;
  inferenceMs: number;
  resolve: (o: ScoreOutcome) => void;
  reject: (e: Error) => void;
  cleanup: () => void;
}

interface Item {
  req: Req;
  index: number;
  bytes: Uint8Array | undefined;
  hash: string;
  admittedAt: number;
  prepMs: number;
  readyAt: number;
  /** The 224×224×3 RGB crop from the preprocessing pool (normalized by the backend). */
  pixels: Uint8Array | undefined;
  embed: Float32Array | undefined;
  cached: boolean;
}

/** Items by tenant, served round-robin (one item per turn); FIFO by request then index within a tenant. */
class FairQueue {
  private readonly byTenant = new Map<string, Item[]>();
  private ring: string[] = [];
  private cursor = 0;
  size = 0;

  push(item: Item): void {
    const t = item.req.tenant;
    let q = this.byTenant.get(t);
    if (!q) {
      q = [];
      this.byTenant.set(t, q);
      this.ring.push(t);
    }
    let at = q.length;
    while (at > 0) {
      const prev = q[at - 1]!;
      if (prev.req.seq < item.req.seq || (prev.req.seq === item.req.seq && prev.index < item.index)) break;
      at--;
    }
    q.splice(at, 0, item);
    this.size++;
  }

  take(): Item | undefined {
    const n = this.ring.length;
    for (let k = 0; k < n; k++) {
      const i = (this.cursor + k) % n;
      const t = this.ring[i]!;
      const q = this.byTenant.get(t)!;
      const item = q.shift();
      if (!item) continue;
      this.size--;
      if (q.length === 0) {
        this.byTenant.delete(t);
        this.ring.splice(i, 1);
        this.cursor = this.ring.length ? i % this.ring.length : 0;
      } else {
        this.cursor = (i + 1) % n;
      }
      return item;
    }
    return undefined;
  }

  /** Removes (and returns) the items of `req`. */
  removeRequest(req: Req): Item[] {
    const q = this.byTenant.get(req.tenant);
    if (!q) return [];
    const gone = q.filter((it) => it.req === req);
    if (gone.length === 0) return gone;
    const keep = q.filter((it) => it.req !== req);
    this.size -= gone.length;
    if (keep.length) this.byTenant.set(req.tenant, keep);
    else {
      this.byTenant.delete(req.tenant);
      const i = this.ring.indexOf(req.tenant);
      this.ring.splice(i, 1);
      if (i < this.cursor) this.cursor--;
      if (this.cursor >= this.ring.length) this.cursor = 0;
    }
    return gone;
  }

  /** The item that has been ready longest. */
  oldest(): Item | undefined {
    let best: Item | undefined;
    for (const q of this.byTenant.values()) for (const it of q) if (!best || it.readyAt < best.readyAt) best = it;
    return best;
  }
}

function positiveInt(name: string, v: number | undefined, dflt: number, allowZero = false): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < (allowZero ? 0 : 1)) throw new RangeError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer (got ${String(v)})`);
  return v;
}

function codePointsOver(s: string, max: number): boolean {
  if (s.length <= max) return false;
  let n = 0;
  for (const _ of s) if (++n > max) return true;
  return false;
}

async function resolveModelDir(model: string, config: ImageRewardConfig | undefined): Promise<string> {
  let isDir: boolean;
  try {
    isDir = statSync(model).isDirectory();
  } catch {
    throw new Error(`no model at ${model}: run \`imagereward fetch-model\`, then \`imagereward convert\` (or pass the .pt)`);
  }
  if (isDir) {
    if (!existsSync(join(model, CONFIG_FILE))) throw new Error(`${model} is not a model directory (no ${CONFIG_FILE}); create one with \`imagereward convert\``);
    return model;
  }
  const { dir } = await convertCheckpoint({ checkpoint: model, out: modelDirFor(model), force: true, ...(config ? { config } : {}) });
  return dir;
}

const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128];
const MiB = 1024 * 1024;

export async function createScoreService(opts: ScoreServiceOptions): Promise<ScoreService> {
  if (opts.backend !== undefined && !['auto', 'ort', 'native'].includes(opts.backend)) throw new TypeError(`unknown backend "${String(opts.backend)}"`);
  const limits: ServiceLimits = { ...DEFAULT_SERVICE_LIMITS };
  for (const [k, v] of Object.entries(opts.limits ?? {}) as [keyof ServiceLimits, number | undefined][]) {
    if (v === undefined) continue;
    if (!(k in DEFAULT_SERVICE_LIMITS)) throw new RangeError(`unknown limit "${k}"`);
    limits[k] = positiveInt(`limits.${k}`, v, 0);
  }
  Object.freeze(limits);
  const maxWaitMs = opts.maxWaitMs ?? 5;
  if (!(maxWaitMs >= 0) || !Number.isFinite(maxWaitMs)) throw new RangeError(`maxWaitMs must be a non-negative number (got ${String(maxWaitMs)})`);
  const maxQueuedImages = positiveInt('maxQueuedImages', opts.maxQueuedImages, 256);
  const cacheBytes = positiveInt('cacheBytes', opts.cacheBytes, 512 * MiB, true);
  const workers = positiveInt('preprocessWorkers', opts.preprocessWorkers, Math.min(4, availableParallelism()));
  if (opts.maxBatch !== undefined) positiveInt('maxBatch', opts.maxBatch, 1);

  const modelDir = await resolveModelDir(opts.model, opts.config);
  const { model_id: modelId } = await readModelDirConfig(modelDir);
  const tokenizer = await loadTokenizer(join(modelDir, VOCAB_FILE));
  const devices = opts.devices ?? [];
  if (devices.some((d) => !Number.isSafeInteger(d) || d < 0) || new Set(devices).size !== devices.length) throw new RangeError(`devices must be distinct GPU indices (got ${JSON.stringify(devices)})`);
  const replicas = positiveInt('replicas', opts.replicas, 1);
  const siblingWaitMs = positiveInt('maxSiblingWaitMs', opts.maxSiblingWaitMs, SIBLING_WAIT_MS, true);
  const firstNative = devices.length > 0 ? { ...opts.native, device: devices[0]! } : opts.native;
  const { backend, skipped } = await selectBackend(modelDir, { backend: opts.backend, ort: opts.ort, native: firstNative });
  const backends: ScoringBackend[] = [backend];
  let pool: PreprocessPool;
  try {
    // One engine per further GPU, or further ORT sessions: same kind as the first.
    if (backend.name === 'native') {
      for (const device of devices.slice(1)) backends.push(await NativeBackend.load(modelDir, { ...opts.native, device }));
    } else {
      for (let i = 1; i < replicas; i++) backends.push(await OrtBackend.load(modelDir, opts.ort));
    }
    if (backend.imageSize !== IMAGE_SIZE) {
      throw new Error(`${modelDir} takes ${backend.imageSize}x${backend.imageSize} images; the service preprocesses image files to ${IMAGE_SIZE}x${IMAGE_SIZE} only`);
    }
    pool = new PreprocessPool({ size: workers, preprocess: { maxBytes: limits.maxImageBytes, maxPixels: limits.maxImagePixels } });
    await pool.whenReady();
  } catch (err) {
    await Promise.all(backends.map((b) => b.dispose()));
    throw err;
  }
  const maxBatch = opts.maxBatch ?? (backend.name === 'native' ? 64 : 8);
  return new Engine(modelDir, modelId, backends, skipped, limits, maxBatch, maxWaitMs, maxQueuedImages, new EmbedCache(cacheBytes), pool, opts.metrics ?? new MetricsRegistry(), (p) => {
    const enc = tokenizer.encode(p, backend.textLength);
    const L = backend.textLength;
    const ids = new BigInt64Array(L);
    const mask = new BigInt64Array(L);
    for (let j = 0; j < L; j++) {
      ids[j] = BigInt(enc.input_ids[j] ?? 0);
      mask[j] = BigInt(enc.attention_mask[j] ?? 0);
    }
    return { ids, mask };
  }, siblingWaitMs);
}

/** Rows [at, at + n) of a [total, per] array: the array itself when that is all of it, else
 *  a copy (a backend may transfer what it is given to a worker). */
function rows<A extends Float32Array | BigInt64Array | Uint8Array>(a: A, at: number, n: number, total: number, per: number): A {
  return (at === 0 && n === total ? a : a.slice(at * per, (at + n) * per)) as A;
}

function concatF32(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts.reduce((k, p) => k + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

class Engine implements ScoreService {
  readonly backend: 'ort' | 'native';
  private closing = false;
  private closed: Promise<void> | undefined;
  private healthy = true;
  private failedBecause: string | null = null;
  private live = 0;
  private seq = 0;
  private batchSeq = 0;
  private readonly prepQueue = new FairQueue();
  private readonly readyQueue = new FairQueue();
  private prepInFlight = 0;
  /** Ready items holding a pixel tensor (bounded with prepInFlight). */
  private readyPixels = 0;
  /** Batches in flight (at most one per backend). */
  private running = 0;
  private peakRunning = 0;
  private readonly maxSiblingWaitMs: number;
  private idle: ScoringBackend[];
  private readonly dead = new Set<ScoringBackend>();
  private readonly engine: ScoringBackend;
  private batchTimer: NodeJS.Timeout | undefined;
  private readonly openRequests = new Set<Req>();
  private idleWaiters: (() => void)[] = [];
  /** Completion times of recent images, for the Retry-After estimate. */
  private readonly completions: number[] = [];

  private readonly m: {
    batchSize: Histogram;
    stage: Histogram;
    itemErrors: Counter;
    cacheHits: Counter;
    cacheMisses: Counter;
    requests: Counter;
    requestSeconds: Histogram;
    images: Counter;
    batches: Counter;
    oomBackoffs: Counter;
  };
  /** Per backend: the largest batch since its last ENGINE_OOM (absent: maxBatch). */
  private readonly batchCap = new Map<ScoringBackend, number>();

  constructor(
    readonly modelDir: string,
    readonly modelId: string,
    private readonly engines: ScoringBackend[],
    readonly skippedBackends: readonly { name: string; reason: string }[],
    readonly limits: ServiceLimits,
    readonly maxBatch: number,
    private readonly maxWaitMs: number,
    readonly maxQueuedImages: number,
    readonly cache: EmbedCache,
    private readonly pool: PreprocessPool,
    readonly metrics: MetricsRegistry,
    private readonly tokenize: (prompt: string) => { ids: BigInt64Array; mask: BigInt64Array },
    siblingWaitMs: number,
  ) {
    this.maxSiblingWaitMs = siblingWaitMs;
    this.engine = engines[0]!;
    // A backend that runs several batches at once (the CUDA engine's streams) is idle
    // that many times over.
    this.idle = engines.flatMap((e) => Array.from({ length: Math.max(1, e.concurrency ?? 1) }, () => e));
    this.backend = this.engine.name;
    const r = metrics;
    r.gauge('imagereward_backends', 'Backends (GPUs, or ONNX Runtime replicas) in the rotation.').collect(() => this.engines.length - this.dead.size);
    r.gauge('imagereward_batches_in_flight', 'Batches running now (at most one per backend, or one per CUDA stream).').collect(() => this.running);
    r.gauge('imagereward_batches_in_flight_peak', 'Most batches that ran at once since start.').collect(() => this.peakRunning);
    r.gauge('imagereward_process_resident_memory_bytes', 'Resident memory of the service process (host side; ONNX Runtime weights live here).').collect(() => process.memoryUsage.rss());
    // Device memory of the CUDA engine(s), summed over GPUs.
    const natives = engines.filter((e): e is NativeBackend => e instanceof NativeBackend);
    if (natives.length > 0) {
      const sum = (f: (i: ReturnType<NativeBackend['deviceInfo']>) => number) => () => natives.reduce((a, e) => a + (this.dead.has(e) ? 0 : f(e.deviceInfo())), 0);
      r.gauge('imagereward_device_memory_total_bytes', 'GPU memory, all devices in use.').collect(sum((i) => i.totalMemory));
      r.gauge('imagereward_device_memory_free_bytes', 'Free GPU memory, all devices in use.').collect(sum((i) => i.freeMemory));
      r.gauge('imagereward_device_weight_bytes', 'GPU memory held by the model weights, all devices.').collect(sum((i) => i.weightBytes));
    }
    r.gauge('imagereward_queue_depth_images', 'Images admitted and not yet answered (queued, preprocessing, ready or in a forward).').collect(() => this.live);
    r.gauge('imagereward_queue_capacity_images', 'maxQueuedImages: the bound on imagereward_queue_depth_images.').collect(() => this.maxQueuedImages);
    r.gauge('imagereward_preprocess_queue_images', 'Images waiting for or in preprocessing.').collect(() => this.prepQueue.size + this.prepInFlight);
    r.gauge('imagereward_ready_queue_images', 'Images ready for the model, waiting for a batch.').collect(() => this.readyQueue.size);
    r.gauge('imagereward_ready', '1 when the model is loaded, the backend healthy and the service not closing.').collect(() => (this.ready() ? 1 : 0));
    r.gauge('imagereward_max_batch', 'Most images in one forward.').collect(() => this.maxBatch);
    r.gauge('imagereward_embed_cache_bytes', 'Bytes held by the image-embedding cache.').collect(() => this.cache.bytes);
    r.gauge('imagereward_embed_cache_max_bytes', 'Byte budget of the image-embedding cache.').collect(() => this.cache.maxBytes);
    r.gauge('imagereward_embed_cache_entries', 'Images in the image-embedding cache.').collect(() => this.cache.size);
    r.counter('imagereward_embed_cache_evictions_total', 'Entries evicted from the image-embedding cache.').collect(() => this.cache.evictions);
    r.counter('imagereward_preprocess_worker_restarts_total', 'Preprocessing workers replaced after a crash.').collect(() => this.pool.crashCount);
    this.m = {
      batchSize: r.histogram('imagereward_batch_size', 'Images per forward.', [], BATCH_BUCKETS),
      stage: r.histogram('imagereward_stage_duration_seconds', 'Time per stage: queue (per image, waiting), preprocess (per image), inference (per batch).', ['stage']),
      itemErrors: r.counter('imagereward_image_errors_total', 'Images that failed, by error code.', ['code']),
      cacheHits: r.counter('imagereward_embed_cache_hits_total', 'Images whose embeds came from the cache (vision encoder skipped).'),
      cacheMisses: r.counter('imagereward_embed_cache_misses_total', 'Images that needed the vision encoder.'),
      requests: r.counter('imagereward_score_requests_total', 'Score requests by outcome (ok, partial, failed, canceled, deadline_exceeded, queue_full, shutting_down, rejected).', ['outcome']),
      requestSeconds: r.histogram('imagereward_score_request_duration_seconds', 'Time from admission to answer of answered score requests.'),
      images: r.counter('imagereward_images_scored_total', 'Images scored (ok results).'),
      batches: r.counter('imagereward_batches_total', 'Forwards run.'),
      oomBackoffs: r.counter('imagereward_oom_backoffs_total', 'Times a backend ran out of device memory (ENGINE_OOM) and its batch cap was halved.'),
    };
    r.gauge('imagereward_batch_cap', 'Most images one forward may take now, over all backends: maxBatch until a backend runs out of device memory.').collect(() =>
      Math.max(...this.engines.map((e) => this.batchCap.get(e) ?? this.maxBatch)),
    );
    r.gauge('imagereward_model_info', 'The model and backend in use (value 1).', ['model', 'backend']).set(1, { model: modelId, backend: this.backend });
  }

  ready(): boolean {
    return this.healthy && !this.closing;
  }

  failure(): string | null {
    return this.healthy ? null : this.failedBecause;
  }

  queuedImages(): number {
    return this.live;
  }

  score(req: ScoreRequest): Promise<ScoreOutcome> {
    try {
      return this.admit(req);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  private reject(outcome: string, err: Error): never {
    this.m.requests.inc({ outcome });
    throw err;
  }

  private admit(r: ScoreRequest): Promise<ScoreOutcome> {
    if (this.closing) this.reject('shutting_down', new ServiceClosedError('the scoring service is shutting down'));
    if (!this.healthy) this.reject('shutting_down', new ServiceClosedError('the scoring backend failed; the service cannot score'));
    if (typeof r.prompt !== 'string') this.reject('rejected', new RequestLimitError('invalid_request', 'prompt must be a string'));
    if (!Array.isArray(r.images) || r.images.some((b) => !(b instanceof Uint8Array))) {
      this.reject('rejected', new RequestLimitError('invalid_request', 'images must be an array of Uint8Array'));
    }
    const n = r.images.length;
    if (n === 0) this.reject('rejected', new RequestLimitError('invalid_request', 'no images to score'));
    if (n > this.limits.maxImagesPerRequest) {
      this.reject('rejected', new RequestLimitError('too_many_images', `${n} images, over the limit of ${this.limits.maxImagesPerRequest} per request`));
    }
    if (codePointsOver(r.prompt, this.limits.maxPromptChars)) {
      this.reject('rejected', new RequestLimitError('prompt_too_long', `the prompt is longer than ${this.limits.maxPromptChars} characters`));
    }
    if (r.signal?.aborted) this.reject('canceled', new CanceledError('the request was canceled before it was queued'));
    let deadline: number | undefined;
    if (r.deadlineMs !== undefined) {
      if (typeof r.deadlineMs !== 'number' || Number.isNaN(r.deadlineMs)) this.reject('rejected', new RequestLimitError('invalid_request', 'deadlineMs must be a number'));
      deadline = r.deadlineMs < 1e11 ? Date.now() + r.deadlineMs : r.deadlineMs;
      if (deadline <= Date.now()) this.reject('deadline_exceeded', new DeadlineError('the request reached its deadline before it was queued'));
    }
    if (this.live + n > this.maxQueuedImages) {
      const ra = this.retryAfter(this.live + n - this.maxQueuedImages);
      this.reject('queue_full', new QueueFullError(`the scoring queue is full (${this.live} of ${this.maxQueuedImages} images queued; this request has ${n})`, ra));
    }

    const { ids, mask } = this.tokenize(r.prompt);
    const t0 = performance.now();
    return new Promise<ScoreOutcome>((resolve, reject) => {
      const req: Req = {
        seq: this.seq++,
        tenant: r.tenant ?? '',
        ids,
        mask,
        results: new Array<ItemResult | undefined>(n).fill(undefined),
        remaining: n,
        unprepared: 0,
        done: false,
        t0,
        prepStart: Infinity,
        prepEnd: -Infinity,
        batches: new Set(),
        inferenceMs: 0,
        resolve,
        reject,
        cleanup: () => undefined,
      };
      this.openRequests.add(req);
      const cleanups: (() => void)[] = [];
      if (r.signal) {
        const signal = r.signal;
        const onAbort = (): void => this.abandon(req, 'canceled', new CanceledError('the request was canceled'));
        signal.addEventListener('abort', onAbort, { once: true });
        cleanups.push(() => signal.removeEventListener('abort', onAbort));
      }
      if (deadline !== undefined) {
        const timer = setTimeout(() => this.abandon(req, 'deadline_exceeded', new DeadlineError(`the request did not finish by its deadline`)), Math.max(0, deadline - Date.now()));
        cleanups.push(() => clearTimeout(timer));
      }
      req.cleanup = () => cleanups.forEach((f) => f());

      const now = performance.now();
      for (let i = 0; i < n; i++) {
        const bytes = r.images[i]!;
        this.live++;
        const item: Item = { req, index: i, bytes, hash: '', admittedAt: now, prepMs: 0, readyAt: 0, pixels: undefined, embed: undefined, cached: false };
        if (bytes.length === 0) {
          this.finishItem(item, this.imageFailure(new ImageError('image_empty', 'the image is empty (0 bytes)')));
          continue;
        }
        if (bytes.length > this.limits.maxImageBytes) {
          this.finishItem(item, this.imageFailure(new ImageError('image_too_large', `the image is ${bytes.length} bytes, over the limit of ${this.limits.maxImageBytes}`)));
          continue;
        }
        item.hash = createHash('sha256').update(bytes).digest('hex');
        const embed = this.cache.get(item.hash);
        if (embed) {
          this.m.cacheHits.inc();
          item.embed = embed;
          item.cached = true;
          item.bytes = undefined;
          item.readyAt = now;
          this.readyQueue.push(item);
        } else {
          this.m.cacheMisses.inc();
          item.req.unprepared++;
          this.prepQueue.push(item);
        }
      }
      this.pump();
    });
  }

  private imageFailure(err: unknown): ItemResult & { ok: false } {
    if (err instanceof ImageError) return { ok: false, code: err.code, message: err.message, status: IMAGE_ERROR_STATUS[err.code] };
    const e = err as Error;
    return { ok: false, code: 'internal', message: `preprocessing failed: ${e?.message ?? String(err)}`, status: 500 };
  }

  /** Seconds until `needed` more images have been answered, from the throughput of the last 30 s. */
  private retryAfter(needed: number): number {
    const now = performance.now();
    while (this.completions.length && (this.completions[0] as number) < now - 30_000) this.completions.shift();
    const c = this.completions;
    if (c.length < 2) return 1;
    const span = Math.max(1, now - (c[0] as number)) / 1000;
    const rate = c.length / span;
    return Math.min(300, Math.max(1, Math.ceil(needed / rate)));
  }

  private abandon(req: Req, outcome: string, err: Error): void {
    if (req.done) return;
    req.done = true;
    req.cleanup();
    this.openRequests.delete(req);
    for (const q of [this.prepQueue, this.readyQueue]) {
      for (const it of q.removeRequest(req)) {
        if (it.pixels) this.readyPixels--;
        it.pixels = undefined;
        this.live--;
      }
    }
    this.m.requests.inc({ outcome });
    req.reject(err);
    this.checkIdle();
    this.pump();
  }

  private finishItem(item: Item, result: ItemResult): void {
    this.live--;
    if (!result.ok) this.m.itemErrors.inc({ code: result.code });
    else {
      this.m.images.inc();
      this.completions.push(performance.now());
      if (this.completions.length > 4096) this.completions.splice(0, this.completions.length - 4096);
    }
    const req = item.req;
    if (!req.done) {
      req.results[item.index] = result;
      if (--req.remaining === 0) this.complete(req);
    }
    this.checkIdle();
  }

  private complete(req: Req): void {
    req.done = true;
    req.cleanup();
    this.openRequests.delete(req);
    const results = req.results as ItemResult[];
    const okIdx: number[] = [];
    const rewards: number[] = [];
    results.forEach((r, i) => {
      if (r.ok) {
        okIdx.push(i);
        rewards.push(r.reward);
      }
    });
    const ranks = rankRewards(rewards);
    const ranking: (number | null)[] = results.map(() => null);
    okIdx.forEach((i, j) => (ranking[i] = ranks[j] ?? null));
    const totalMs = performance.now() - req.t0;
    const preprocessMs = req.prepEnd > req.prepStart ? req.prepEnd - req.prepStart : 0;
    const inferenceMs = req.inferenceMs;
    const queueMs = Math.max(0, totalMs - preprocessMs - inferenceMs);
    this.m.requests.inc({ outcome: okIdx.length === results.length ? 'ok' : okIdx.length === 0 ? 'failed' : 'partial' });
    this.m.requestSeconds.observe(totalMs / 1000);
    req.resolve({ results, ranking, timings: { queueMs, preprocessMs, inferenceMs, totalMs } });
  }

  private checkIdle(): void {
    if (this.live === 0 && this.running === 0 && this.prepInFlight === 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      w.forEach((f) => f());
    }
  }

  // ---- scheduling ---------------------------------------------------------

  private pump(): void {
    this.pumpPrep();
    this.pumpBatch();
  }

  private pumpPrep(): void {
    const maxInFlight = this.pool.size * 2;
    const maxPixels = this.maxBatch * 2 + this.pool.size;
    while (this.prepQueue.size > 0 && this.prepInFlight < maxInFlight && this.readyPixels + this.prepInFlight < maxPixels) {
      const item = this.prepQueue.take()!;
      this.startPrep(item);
    }
  }

  private startPrep(item: Item): void {
    this.prepInFlight++;
    const bytes = item.bytes!;
    item.bytes = undefined;
    const t = performance.now();
    const req = item.req;
    if (t < req.prepStart) req.prepStart = t;
    this.pool.run(bytes).then(
      (pixels) => this.prepDone(item, t, pixels, undefined),
      (err: unknown) => this.prepDone(item, t, undefined, err),
    );
  }

  private prepDone(item: Item, t: number, pixels: Uint8Array | undefined, err: unknown): void {
    this.prepInFlight--;
    const now = performance.now();
    item.prepMs = now - t;
    item.req.unprepared--;
    this.m.stage.observe(item.prepMs / 1000, { stage: 'preprocess' });
    const req = item.req;
    if (now > req.prepEnd) req.prepEnd = now;
    if (req.done) {
      // Canceled or past its deadline meanwhile: nobody wants this image any more.
      this.live--;
      this.checkIdle();
    } else if (pixels) {
      const embed = this.cache.peek(item.hash);
      if (embed) {
        item.embed = embed;
        item.cached = true;
      } else {
        item.pixels = pixels;
        this.readyPixels++;
      }
      item.readyAt = now;
      this.readyQueue.push(item);
    } else {
      this.finishItem(item, this.imageFailure(err));
    }
    this.pump();
  }

  private pumpBatch(): void {
    if (this.idle.length === 0 || this.readyQueue.size === 0) return;
    const now = performance.now();
    const full = this.readyQueue.size >= this.maxBatch;
    const oldest = this.readyQueue.oldest()!;
    // Keep one request's images together: while the batch is not full, images of the
    // oldest request still in preprocessing extend its wait (up to maxSiblingWaitMs), so
    // a request is not split just because its images finish decoding a few ms apart (on
    // a GPU one batch of 4 costs about what one image does).
    const r = oldest.req;
    const siblings = !r.done && r.unprepared > 0;
    const limit = siblings ? Math.max(this.maxWaitMs, this.maxSiblingWaitMs) : this.maxWaitMs;
    const waited = now - oldest.readyAt >= limit;
    const nothingComing = this.prepQueue.size === 0 && this.prepInFlight === 0;
    if (!(full || waited || nothingComing || this.closing)) {
      if (!this.batchTimer) {
        const wait = Math.max(0, oldest.readyAt + limit - now);
        this.batchTimer = setTimeout(() => {
          this.batchTimer = undefined;
          this.pumpBatch();
        }, Math.ceil(wait));
      }
      return;
    }
    if (this.batchTimer) {
      clearTimeout(this.batchTimer);
      this.batchTimer = undefined;
    }
    const items: Item[] = [];
    while (items.length < this.maxBatch) {
      const it = this.readyQueue.take();
      if (!it) break;
      items.push(it);
    }
    if (items.length === 0) return;
    const engine = this.idle.shift()!;
    this.running++;
    if (this.running > this.peakRunning) this.peakRunning = this.running;
    void this.runBatch(items, engine).finally(() => {
      this.running--;
      if (!this.dead.has(engine)) this.idle.push(engine);
      this.checkIdle();
      this.pump();
    });
    // Another backend may take the next batch now.
    if (this.idle.length > 0 && this.readyQueue.size > 0) this.pumpBatch();
  }

  /**
   * Runs `n` images through `run` in chunks of at most the backend's batch cap. The CUDA
   * engine answers ENGINE_OOM (typed, not sticky) when a batch's device buffers do not
   * fit: the cap is halved and the chunk retried, down to one image; the lower cap stays
   * for later batches (imagereward_batch_cap, imagereward_oom_backoffs_total).
   */
  private async inChunks<T>(engine: ScoringBackend, n: number, run: (at: number, count: number) => Promise<T>): Promise<T[]> {
    const out: T[] = [];
    let at = 0;
    while (at < n) {
      const count = Math.min(this.batchCap.get(engine) ?? this.maxBatch, n - at);
      try {
        out.push(await run(at, count));
        at += count;
      } catch (err) {
        if ((err as { code?: unknown })?.code !== 'ENGINE_OOM' || count === 1) throw err;
        const cap = Math.max(1, count >> 1);
        this.batchCap.set(engine, cap);
        this.m.oomBackoffs.inc();
        console.warn(`[imagereward] ${engine.name} backend out of device memory at batch ${count}: batch cap now ${cap} (${(err as Error).message})`);
      }
    }
    return out;
  }

  private async runBatch(items: Item[], engine: ScoringBackend): Promise<void> {
    const id = this.batchSeq++;
    const t0 = performance.now();
    for (const it of items) {
      if (it.pixels) this.readyPixels--;
      this.m.stage.observe(Math.max(0, t0 - it.admittedAt - it.prepMs) / 1000, { stage: 'queue' });
    }
    this.pumpPrep();
    this.m.batchSize.observe(items.length);
    this.m.batches.inc();
    const B = items.length;
    const L = this.engine.textLength;
    const per = this.engine.embedTokens * this.engine.embedWidth;
    const S = this.engine.imageSize;
    const pixelsPer = 3 * S * S;
    try {
      const misses = items.filter((it) => it.pixels);
      if (misses.length) {
        const pixels = new Uint8Array(misses.length * pixelsPer);
        misses.forEach((it, k) => {
          pixels.set(it.pixels!, k * pixelsPer);
          it.pixels = undefined;
        });
        const m = misses.length;
        const embeds = concatF32(await this.inChunks(engine, m, (at, n) => engine.encodeImagesRgb(rows(pixels, at, n, m, pixelsPer), n)));
        misses.forEach((it, k) => {
          it.embed = embeds.slice(k * per, (k + 1) * per);
          this.cache.set(it.hash, it.embed);
        });
      }
      const ids = new BigInt64Array(B * L);
      const mask = new BigInt64Array(B * L);
      const embeds = new Float32Array(B * per);
      items.forEach((it, k) => {
        ids.set(it.req.ids, k * L);
        mask.set(it.req.mask, k * L);
        embeds.set(it.embed!, k * per);
      });
      const reward = concatF32(
        await this.inChunks(engine, B, async (at, n) => (await engine.scoreText(rows(ids, at, n, B, L), rows(mask, at, n, B, L), rows(embeds, at, n, B, per), n)).reward),
      );
      const ms = performance.now() - t0;
      this.m.stage.observe(ms / 1000, { stage: 'inference' });
      for (const it of items) {
        if (!it.req.batches.has(id)) {
          it.req.batches.add(id);
          it.req.inferenceMs += ms;
        }
      }
      items.forEach((it, k) => {
        const r = reward[k] as number;
        it.embed = undefined;
        this.finishItem(it, { ok: true, reward: r, cached: it.cached });
      });
    } catch (err) {
      const e = err as Error;
      // A backend that died (worker crashed, sticky device error) leaves the rotation;
      // the service is unhealthy only when none is left.
      const code = (e as Error & { code?: string })?.code;
      if ((e?.name === 'OrtBackendError' && /crashed|exited|disposed/.test(e.message)) || code === 'ENGINE_DEVICE_LOST') {
        this.dead.add(engine);
        this.idle = this.idle.filter((e) => e !== engine);
        console.error(`[imagereward] ${engine.name} backend removed from the rotation: ${code ?? e.name}: ${e.message}`);
        if (this.dead.size === this.engines.length) {
          this.healthy = false;
          this.failedBecause = `every model backend failed (${code ?? e.name}: ${e.message}); restart the service`;
        }
      }
      for (const it of items) {
        it.pixels = undefined;
        it.embed = undefined;
        this.finishItem(it, { ok: false, code: 'internal', message: `the model failed on this batch: ${e?.message ?? String(err)}`, status: 500 });
      }
    }
  }

  close(opts: { drainMs?: number } = {}): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      const drainMs = opts.drainMs ?? 30_000;
      this.pump();
      if (this.live > 0 || this.running > 0 || this.prepInFlight > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs))),
        ]);
        clearTimeout(timer);
      }
      for (const req of [...this.openRequests]) this.abandon(req, 'shutting_down', new ServiceClosedError('the scoring service shut down before this request finished'));
      if (this.running > 0 || this.prepInFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      if (this.batchTimer) clearTimeout(this.batchTimer);
      this.cache.clear();
      await this.pool.close();
      await Promise.all(this.engines.map((e) => e.dispose()));
    })();
    return this.closed;
  }
}
