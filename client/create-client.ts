// createClient: the edge's API as plain async functions over Hono's `hc`
// client (typed by EdgeSchema, contracts/api/edge-schema.ts). Each call
// returns the success body, or throws ImageRewardApiError for any non-2xx
// answer; `raw` is the hc client itself, for callers who want the Response.
//
// No node: imports — runs in Node 20, browsers and Workers.
import { hc, type ClientResponse } from 'hono/client';
import type { EdgeApp, JobDeliveries, RedeliverResponse } from '../contracts/api/edge-schema.js';
import type { Job, JobItemInput, JobRequest, JobStatus } from '../contracts/api/jobs.js';
import type { BatchScoreResponse, ModelsResponse, ScoreResponse } from '../contracts/api/schemas.js';
import { ImageRewardApiError } from './api-error.js';
import { encodeImage, type ClientImage } from './encode-image.js';
import { retryingFetch, sleep, type FetchLike, type RetryOptions } from './retrying-fetch.js';

export interface ClientOptions {
  /** Sent as `Authorization: Bearer <apiKey>` (the edge's `irk_…` keys). */
  apiKey?: string;
  /** Default: the global fetch. */
  fetch?: FetchLike;
  /** Sent with every request (before Authorization, which wins). */
  headers?: Record<string, string>;
  /** Retry answers whose code says "retry after Retry-After" (429, 503, 409 in progress). Default off. */
  retry?: RetryOptions;
}

/** Per-call options. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** X-Cache of a score call: every reward from the cache, none, or some. */
export type CacheStatus = 'HIT' | 'MISS' | 'PARTIAL';

/** What the answer's headers add to a body. */
export interface AnswerMeta {
  /** X-Cache (the edge's result cache); absent when nothing was scored. */
  cache?: CacheStatus;
  /** X-Request-Id: what the service logs are searched by. */
  requestId?: string;
}

export type ScoreResult = ScoreResponse & AnswerMeta;
export type BatchScoreResult = BatchScoreResponse & AnswerMeta;

/** One request of scoreBatch: images as bytes or ImageInput. */
export interface ClientScoreRequest {
  prompt: string;
  images: ClientImage[];
}

/** A job request whose images may be bytes (base64-encoded for you). */
export type ClientJobRequest = Omit<JobRequest, 'items'> & { items: (Omit<JobItemInput, 'images'> & { images: ClientImage[] })[] };

/** The 202 answer of POST /v1/jobs: the job, and whether it is an earlier job replayed for the same Idempotency-Key. */
export type CreatedJob = Job & { replayed: boolean; requestId?: string };

export interface CreateJobOptions extends CallOptions {
  /** Same key + same body → the same job (per tenant); 1–255 printable ASCII characters. */
  idempotencyKey?: string;
}

export interface GetJobOptions extends CallOptions {
  /** false: leave out items[] (status and progress only). Default true. */
  items?: boolean;
}

export interface WaitForJobOptions extends GetJobOptions {
  /** Between polls (default 1000 ms). */
  intervalMs?: number;
  /** Give up after this long (default 10 minutes) with JobWaitTimeoutError. */
  timeoutMs?: number;
}

/** waitForJob gave up; `job` is the last state seen. */
export class JobWaitTimeoutError extends Error {
  override name = 'JobWaitTimeoutError';
  constructor(readonly job: Job) {
    super(`job ${job.id} is still ${job.status} (${job.progress.done}/${job.progress.total} items done)`);
  }
}

/** The hc client of the edge (typed routes, Response answers). */
export type RawClient = ReturnType<typeof hc<EdgeApp>>;

export interface ImageRewardClient {
  /** Hono's typed client: `raw.v1.score.$post({ json })`, `raw.v1['score:batch'].$post(…)`, `raw.v1.jobs[':id'].$get({ param: { id } })`. */
  raw: RawClient;
  score(prompt: string, images: ClientImage[], opts?: CallOptions): Promise<ScoreResult>;
  scoreBatch(requests: ClientScoreRequest[], opts?: CallOptions): Promise<BatchScoreResult>;
  models(opts?: CallOptions): Promise<ModelsResponse>;
  createJob(req: ClientJobRequest, opts?: CreateJobOptions): Promise<CreatedJob>;
  getJob(id: string, opts?: GetJobOptions): Promise<Job>;
  cancelJob(id: string, opts?: CallOptions): Promise<Job>;
  deliveries(id: string, opts?: CallOptions): Promise<JobDeliveries>;
  redeliver(id: string, opts?: CallOptions): Promise<RedeliverResponse>;
  /** Polls GET /v1/jobs/:id (without items) until the job is completed, failed or cancelled, then returns it (with items unless items: false). */
  waitForJob(id: string, opts?: WaitForJobOptions): Promise<Job>;
}

/**
 * The body type of the 2xx member(s) of an hc response union. `any` in the
 * status and format positions: inference needs a slot there, and only the body is read.
 */
type OkBody<R> = R extends ClientResponse<infer T, any, any> & { ok: true } ? T : never;

interface Answer<T> {
  body: T;
  headers: Headers;
}

/** The success body and headers, or ImageRewardApiError. (`any`: ClientResponse's status and format parameters are the endpoint's own.) */
async function unwrap<R extends ClientResponse<unknown, any, any>>(pending: Promise<R>): Promise<Answer<OkBody<R>>> {
  const res = await pending;
  if (!res.ok) throw await ImageRewardApiError.fromResponse(res);
  return { body: (await res.json()) as OkBody<R>, headers: res.headers };
}

// Not jobs.ts's isFinalJobStatus: importing that module's values would pull zod into every client bundle.
const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set<JobStatus>(['completed', 'failed', 'cancelled']);

const CACHE_VALUES: readonly string[] = ['HIT', 'MISS', 'PARTIAL'] satisfies CacheStatus[];

function metaOf(headers: Headers): AnswerMeta {
  const cache = headers.get('x-cache')?.toUpperCase();
  const requestId = headers.get('x-request-id');
  return {
    ...(cache !== undefined && CACHE_VALUES.includes(cache) ? { cache: cache as CacheStatus } : {}),
    ...(requestId !== null ? { requestId } : {}),
  };
}

const init = (opts: CallOptions | undefined) => (opts?.signal !== undefined ? { init: { signal: opts.signal } } : undefined);

export function createClient(baseUrl: string, opts: ClientOptions = {}): ImageRewardClient {
  // Bound late: a fetch patched after createClient (tests, polyfills) is still the one used.
  const base: FetchLike = opts.fetch ?? ((input, reqInit) => fetch(input, reqInit));
  const headers: Record<string, string> = { ...opts.headers, ...(opts.apiKey !== undefined ? { authorization: `Bearer ${opts.apiKey}` } : {}) };
  const raw = hc<EdgeApp>(baseUrl, { fetch: retryingFetch(base, opts.retry), headers });

  const job = (id: string) => raw.v1.jobs[':id'];
  // hc puts params into the path as they are: encode, so an odd id cannot reach another route.
  const param = (id: string) => ({ id: encodeURIComponent(id) });

  const client: ImageRewardClient = {
    raw,

    async score(prompt, images, callOpts) {
      const { body, headers: h } = await unwrap(raw.v1.score.$post({ json: { prompt, images: images.map(encodeImage) } }, init(callOpts)));
      return { ...body, ...metaOf(h) };
    },

    async scoreBatch(requests, callOpts) {
      const json = { requests: requests.map((r) => ({ prompt: r.prompt, images: r.images.map(encodeImage) })) };
      const { body, headers: h } = await unwrap(raw.v1['score:batch'].$post({ json }, init(callOpts)));
      return { ...body, ...metaOf(h) };
    },

    async models(callOpts) {
      return (await unwrap(raw.v1.models.$get(undefined, init(callOpts)))).body;
    },

    async createJob(req, callOpts) {
      const json: JobRequest = { ...req, items: req.items.map((item) => ({ ...item, images: item.images.map(encodeImage) })) };
      const header = callOpts?.idempotencyKey !== undefined ? { 'idempotency-key': callOpts.idempotencyKey } : undefined;
      const { body, headers: h } = await unwrap(raw.v1.jobs.$post({ json, ...(header ? { header } : {}) }, init(callOpts)));
      const { requestId } = metaOf(h);
      return { ...body, replayed: h.get('idempotent-replayed') === 'true', ...(requestId !== undefined ? { requestId } : {}) };
    },

    async getJob(id, callOpts) {
      const query = callOpts?.items === false ? { items: 'false' as const } : undefined;
      return (await unwrap(job(id).$get({ param: param(id), ...(query ? { query } : {}) }, init(callOpts)))).body;
    },

    async cancelJob(id, callOpts) {
      return (await unwrap(job(id).$delete({ param: param(id) }, init(callOpts)))).body;
    },

    async deliveries(id, callOpts) {
      return (await unwrap(job(id).deliveries.$get({ param: param(id) }, init(callOpts)))).body;
    },

    async redeliver(id, callOpts) {
      return (await unwrap(job(id).webhook.redeliver.$post({ param: param(id) }, init(callOpts)))).body;
    },

    async waitForJob(id, waitOpts = {}) {
      const intervalMs = waitOpts.intervalMs ?? 1000;
      const deadline = Date.now() + (waitOpts.timeoutMs ?? 600_000);
      const signal = waitOpts.signal;
      for (;;) {
        // Polls leave items out: a 1000-item job's results are read once, at the end.
        const seen = await client.getJob(id, { items: false, ...(signal ? { signal } : {}) });
        if (FINAL_STATUSES.has(seen.status)) {
          return waitOpts.items === false ? seen : client.getJob(id, signal ? { signal } : {});
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new JobWaitTimeoutError(seen);
        await sleep(Math.min(intervalMs, left), signal);
      }
    },
  };
  return client;
}
