// The GPU service's HTTP API (Hono): POST /v1/score (JSON or multipart),
// POST /v1/score:batch, GET /v1/models, /healthz, /readyz, /metrics,
// /openapi.json, /docs. Contracts (schemas, error codes, limits) live in
// contracts/api/ and are shared with the edge.
//
// Every error is RFC 9457 application/problem+json with a stable `code`
// (contracts/api/errors.ts); every response carries X-Request-Id; every
// request is logged as one JSON line. Request limits are checked before any
// work reaches the service's queue, and a client that goes away (or a call
// that runs out of time) aborts its service call.
import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import { timeout } from 'hono/timeout';
import {
  ApiFailure,
  DEFAULT_RETRY_AFTER_SECONDS,
  ERROR_CODES,
  PROBLEM_CONTENT_TYPE,
  apiDocsPage,
  apiProblem,
  isErrorCode,
  isJsonMediaType,
  itemError,
  mediaTypeOf,
  openApiDocument,
  parseBatchJson,
  parseJsonText,
  parseScoreJson,
  parseScoreMultipart,
  resolveLimits,
  statusOf,
  type ApiLimits,
  type Base64Decoder,
  type ItemError,
  type ParsedScoreRequest,
  type PreparedImage,
  type ModelsResponse,
  type ScoreResponse,
} from '../../contracts/api/index.js';
import type { Problem } from '../../contracts/problem.js';
import { packageVersion } from '../package-root.js';
import { HttpMetrics } from './http-metrics.js';

// ---------------------------------------------------------------------------
// What the app needs from the scoring service (gpu-service/service/score-service.ts
// satisfies it; tests may pass a fake for HTTP-only unit tests).

export type ServiceItemResult = { ok: true; reward: number; cached: boolean } | { ok: false; code: string; message: string; status: number };

export interface ServiceScoreRequest {
  prompt: string;
  images: Uint8Array[];
  tenant?: string;
  signal?: AbortSignal;
  /** Absolute deadline (a Date.now() timestamp). */
  deadlineMs?: number;
}

export interface ServiceScoreOutcome {
  results: ServiceItemResult[];
  ranking: (number | null)[];
  timings: { queueMs: number; preprocessMs: number; inferenceMs: number; totalMs: number };
}

export interface ScoringService {
  readonly modelId: string;
  readonly backend: 'ort' | 'native';
  readonly skippedBackends: readonly { name: string; reason: string }[];
  score(req: ServiceScoreRequest): Promise<ServiceScoreOutcome>;
  ready(): boolean;
  /** Why the service can never be ready again (every backend failed for good), or null. */
  failure?(): string | null;
  readonly metrics: { render(): string };
}

/** Fetches one `{url}` image; throws an error with `code` (url_*) and `status` on failure. */
export type FetchImage = (url: string, opts: { maxBytes: number; timeoutMs: number; signal?: AbortSignal }) => Promise<Uint8Array>;

export interface LogEntry {
  ts: string;
  level: 'info' | 'warn' | 'error';
  request_id: string;
  method: string;
  path: string;
  status: number;
  ms: number;
  code?: string;
  error?: string;
  [key: string]: unknown;
}

export interface AppOptions {
  service: ScoringService;
  /**
   * API keys accepted as `Authorization: Bearer <key>`. An entry "sha256:<64 hex>" is
   * the SHA-256 of a key (so the file need not hold the key itself); any other entry
   * is the key. Empty or absent: no authentication.
   */
  apiKeys?: readonly string[];
  /** Whether /metrics stays open when API keys are set (default false: it needs a key too). */
  metricsPublic?: boolean;
  /**
   * Behind the edge every request carries the edge's one origin secret, so the batcher
   * would see one tenant. With this set (and API keys configured), an authenticated
   * request's `X-Imagereward-Tenant` header names its tenant for fair batching. Only for
   * servers whose keys are all held by trusted edges: a key holder can name any tenant.
   */
  trustTenantHeader?: boolean;
  limits?: Partial<ApiLimits>;
  /** Enables `{url}` images. Absent or false: such images fail with url_forbidden. */
  fetchImage?: FetchImage | false;
  /** One JSON object per request (default: a JSON line on stdout). */
  logger?: (entry: LogEntry) => void;
  /** True while the server drains for shutdown: /readyz and new scoring calls answer 503 shutting_down. */
  isDraining?: () => boolean;
}

type Env = {
  Variables: {
    requestId: string;
    /** Stable code of the error answer, for the log line. */
    errorCode: string | undefined;
    errorDetail: string | undefined;
    /** Set once the request body has been read (a timeout before that is the client's: 408). */
    bodyRead: boolean;
    /** Aborted when the call times out; combined with the client's connection signal. */
    abort: AbortController;
    tenant: string | undefined;
  };
};

type Ctx = Context<Env>;

// ---------------------------------------------------------------------------
// Answers

/** A problem+json response; `code`'s status from the table unless `status` overrides. */
function problemReply(c: Ctx, code: string, detail: string, opts: { status?: number; errors?: ItemError[] | { path: string; message: string; code?: string }[]; retryAfter?: number; headers?: Record<string, string> } = {}): Response {
  const body = apiProblem(code, detail, {
    requestId: c.get('requestId'),
    ...(opts.status !== undefined ? { status: opts.status } : {}),
    ...(opts.errors !== undefined ? { errors: opts.errors } : {}),
  });
  c.set('errorCode', code);
  c.set('errorDetail', detail);
  const headers: Record<string, string> = { 'content-type': PROBLEM_CONTENT_TYPE, ...opts.headers };
  const needsRetry = opts.retryAfter !== undefined || (ERROR_CODES as Record<string, { retryAfter?: true }>)[code]?.retryAfter === true;
  if (needsRetry) headers['retry-after'] = String(Math.max(1, Math.ceil(opts.retryAfter ?? DEFAULT_RETRY_AFTER_SECONDS)));
  return c.newResponse(JSON.stringify(body), body.status as 200, headers);
}

function failureReply(c: Ctx, f: ApiFailure): Response {
  return problemReply(c, f.code, f.message, f.opts);
}

function failureBody(c: Ctx, f: ApiFailure): Problem {
  const body = apiProblem(f.code, f.message, {
    requestId: c.get('requestId'),
    ...(f.opts.status !== undefined ? { status: f.opts.status } : {}),
    ...(f.opts.errors !== undefined ? { errors: f.opts.errors } : {}),
  });
  if (f.opts.retryAfter !== undefined) body.retry_after = f.opts.retryAfter;
  return body;
}

// ---------------------------------------------------------------------------
// Inputs

/** Media type of the request, lower-case, without parameters. */
function mediaType(c: Ctx): string {
  return mediaTypeOf(c.req.header('content-type'));
}

async function readJson(c: Ctx): Promise<unknown> {
  const text = await c.req.text();
  c.set('bodyRead', true);
  return parseJsonText(text);
}

/** Node's base64 decoder (several times faster than atob on megabytes); same accepted inputs. */
const bufferBase64: Base64Decoder = (s) => {
  const buf = Buffer.from(s, 'base64');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
};

async function readMultipart(c: Ctx, limits: ApiLimits): Promise<ParsedScoreRequest> {
  let form: FormData;
  try {
    form = await c.req.raw.formData();
  } catch (err) {
    if (c.req.raw.signal.aborted) throw err;
    throw new ApiFailure('invalid_multipart', `the multipart/form-data body cannot be parsed: ${(err as Error).message}`);
  } finally {
    c.set('bodyRead', true);
  }
  return parseScoreMultipart(form, limits);
}

// ---------------------------------------------------------------------------
// Auth

const HASH_PREFIX = 'sha256:';

function keyDigests(keys: readonly string[]): Buffer[] {
  return keys.map((k) => {
    if (k.startsWith(HASH_PREFIX)) {
      const hex = k.slice(HASH_PREFIX.length).toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(hex)) throw new RangeError(`API key entry "${HASH_PREFIX}…" must be followed by 64 hex digits`);
      return Buffer.from(hex, 'hex');
    }
    if (k.length === 0) throw new RangeError('an API key must not be empty');
    return createHash('sha256').update(k, 'utf8').digest();
  });
}

/** Index of the key `token` matches (constant time over every key), or -1. */
function matchKey(digests: readonly Buffer[], token: string): number {
  const d = createHash('sha256').update(token, 'utf8').digest();
  let found = -1;
  digests.forEach((k, i) => {
    if (timingSafeEqual(k, d) && found === -1) found = i;
  });
  return found;
}

const TENANT_HEADER = /^[A-Za-z0-9._:@-]{1,64}$/;

function apiKeyAuth(digests: readonly Buffer[], trustTenantHeader: boolean): MiddlewareHandler<Env> {
  const challenge = (error?: string) => `Bearer realm="imagereward"${error ? `, error="${error}"` : ''}`;
  const unauthorized = (detail: string, error?: string) => (c: Ctx) => problemReply(c, 'unauthorized', detail, { headers: { 'www-authenticate': challenge(error) } });
  const inner: MiddlewareHandler = bearerAuth({
    realm: 'imagereward',
    verifyToken: (token, c) => {
      const i = matchKey(digests, token);
      if (i >= 0) {
        const named = trustTenantHeader ? c.req.header('x-imagereward-tenant') : undefined;
        (c as Ctx).set('tenant', named !== undefined && TENANT_HEADER.test(named) ? `edge:${named}` : `key${i}`);
      }
      return i >= 0;
    },
    noAuthenticationHeader: { message: unauthorized('an API key is required: send "Authorization: Bearer <key>"') },
    invalidAuthenticationHeader: { message: unauthorized('the Authorization header must be "Bearer <key>"', 'invalid_request') },
    invalidToken: { message: unauthorized('the API key is not valid', 'invalid_token') },
  });
  return async function apiKeyAuth(c, next) {
    try {
      await inner(c as unknown as Context, next);
    } catch (err) {
      if (err instanceof HTTPException) {
        c.set('errorCode', 'unauthorized');
        return err.getResponse();
      }
      throw err;
    }
  };
}

// ---------------------------------------------------------------------------
// Middleware

function accessLog(metrics: HttpMetrics, log: (e: LogEntry) => void, routes: ReadonlyMap<string, readonly string[]>): MiddlewareHandler<Env> {
  return async function accessLog(c, next) {
    const t0 = performance.now();
    metrics.start();
    let thrown: unknown;
    try {
      await next();
    } catch (err) {
      thrown = err;
      throw err;
    } finally {
      const ms = performance.now() - t0;
      const path = c.req.path;
      const route = routes.has(path) ? path : 'unmatched';
      // A client that went away never reads its answer: log it as 499 (nginx's "client closed request").
      const gone = c.req.raw.signal.aborted && c.get('errorCode') === 'canceled';
      const status = thrown !== undefined ? 500 : gone ? 499 : c.res.status;
      const requestIdValue = c.get('requestId');
      if (!c.res.headers.has('x-request-id')) {
        try {
          c.res.headers.set('x-request-id', requestIdValue);
        } catch {
          /* immutable headers: already sent by hono's own response */
        }
      }
      metrics.observe(c.req.method, route, status, ms / 1000);
      const code = c.get('errorCode');
      const entry: LogEntry = {
        ts: new Date().toISOString(),
        level: status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info',
        request_id: requestIdValue,
        method: c.req.method,
        path,
        status,
        ms: Math.round(ms * 10) / 10,
        ...(code !== undefined ? { code } : {}),
        ...(c.get('errorDetail') !== undefined && status >= 500 ? { error: c.get('errorDetail') } : {}),
      };
      log(entry);
    }
  };
}

/** Per-call abort controller (aborted on timeout) and the timeout itself (408 before the body is read, else 504). */
function callDeadline(ms: number): MiddlewareHandler<Env> {
  const inner = timeout(ms, (c) => {
    (c as Ctx).get('abort').abort(new Error('deadline exceeded'));
    return new HTTPException((c as Ctx).get('bodyRead') ? 504 : 408, { message: 'timeout' });
  });
  return async function callDeadline(c, next) {
    c.set('abort', new AbortController());
    c.set('bodyRead', false);
    return inner(c, next);
  };
}

function defaultLogger(entry: LogEntry): void {
  process.stdout.write(`${JSON.stringify(entry)}\n`);
}

// ---------------------------------------------------------------------------
// Scoring

function serviceFailure(err: unknown): ApiFailure | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  const name = err.name;
  if (code === 'queue_full' || name === 'QueueFullError') {
    const ra = (err as { retryAfterSeconds?: unknown }).retryAfterSeconds;
    return new ApiFailure('queue_full', 'the scoring queue is full; retry later', { retryAfter: typeof ra === 'number' && ra > 0 ? ra : DEFAULT_RETRY_AFTER_SECONDS });
  }
  if (code === 'deadline_exceeded' || name === 'DeadlineError') return new ApiFailure('deadline_exceeded', 'the call did not finish within its deadline');
  if (code === 'canceled' || name === 'CanceledError' || name === 'AbortError') return new ApiFailure('canceled', 'the client went away');
  if (code === 'service_closed' || code === 'shutting_down' || name === 'ServiceClosedError') return new ApiFailure('shutting_down', 'the service is shutting down; retry on another origin');
  if (code === 'not_ready') return new ApiFailure('not_ready', 'the model is still loading');
  if (code === 'backend_failed') return new ApiFailure('backend_failed', err.message);
  // The service's own request checks (RequestLimitError: too_many_images, prompt_too_long, invalid_request).
  const status = (err as { status?: unknown }).status;
  if (typeof code === 'string' && isErrorCode(code) && typeof status === 'number' && status >= 400 && status < 500) {
    return new ApiFailure(code, err.message, { status });
  }
  return undefined;
}

interface Scorer {
  (c: Ctx, prompt: string, items: PreparedImage[], startedAt: number): Promise<ScoreResponse>;
}

/** 503 while the model loads (not_ready), or for good once every backend failed (backend_failed). */
function notReadyFailure(service: ScoringService): ApiFailure {
  const failed = service.failure?.();
  return failed ? new ApiFailure('backend_failed', failed) : new ApiFailure('not_ready', 'the model is still loading');
}

function makeScorer(opts: AppOptions, limits: ApiLimits): Scorer {
  const { service } = opts;
  const fetchImage = opts.fetchImage;

  async function resolveUrls(items: PreparedImage[], signal: AbortSignal): Promise<PreparedImage[]> {
    return Promise.all(
      items.map(async (item, index): Promise<PreparedImage> => {
        if (item.kind !== 'url') return item;
        if (!fetchImage) return itemError(index, 'url_forbidden', 'this server does not fetch image URLs; send the bytes as {data}');
        try {
          return { kind: 'bytes', bytes: await fetchImage(item.url, { maxBytes: limits.maxImageBytes, timeoutMs: limits.urlFetchTimeoutMs, signal }) };
        } catch (err) {
          if (signal.aborted) throw err;
          const e = err as { code?: unknown; status?: unknown; message?: unknown };
          const code = typeof e.code === 'string' && e.code.startsWith('url_') ? e.code : 'url_fetch_failed';
          const status = typeof e.status === 'number' ? e.status : statusOf(code);
          return itemError(index, code, `image ${index}: ${typeof e.message === 'string' ? e.message : 'fetch failed'}`, status);
        }
      }),
    );
  }

  return async function score(c, prompt, prepared, startedAt) {
    if (!service.ready()) throw notReadyFailure(service);
    const signal = AbortSignal.any([c.req.raw.signal, c.get('abort').signal]);
    const items = await resolveUrls(prepared, signal);
    const n = items.length;
    const rewards: (number | null)[] = new Array<number | null>(n).fill(null);
    const ranking: (number | null)[] = new Array<number | null>(n).fill(null);
    const cached: boolean[] = new Array<boolean>(n).fill(false);
    const errors: ItemError[] = [];
    const sent: number[] = [];
    const bytes: Uint8Array[] = [];
    items.forEach((item, i) => {
      if (item.kind === 'bytes') {
        sent.push(i);
        bytes.push(item.bytes);
      } else if (item.kind === 'error') errors.push(item.error);
    });
    let timings = { queue_ms: 0, preprocess_ms: 0, inference_ms: 0, total_ms: 0 };
    if (sent.length > 0) {
      // The service takes an absolute Date.now() deadline: what is left of this call's budget.
      const remaining = Math.max(1, limits.requestTimeoutMs - (performance.now() - startedAt));
      let outcome: ServiceScoreOutcome;
      try {
        outcome = await service.score({
          prompt,
          images: bytes,
          signal,
          deadlineMs: Date.now() + Math.floor(remaining),
          ...(c.get('tenant') !== undefined ? { tenant: c.get('tenant') } : {}),
        });
      } catch (err) {
        const f = serviceFailure(err);
        if (f) throw f;
        throw err;
      }
      sent.forEach((orig, j) => {
        const r = outcome.results[j];
        if (r === undefined) {
          errors.push({ index: orig, code: 'internal', message: 'no result for this image', status: 500 });
        } else if (r.ok) {
          rewards[orig] = r.reward;
          cached[orig] = r.cached;
          ranking[orig] = outcome.ranking[j] ?? null;
        } else {
          errors.push({ index: orig, code: r.code, message: r.message, status: r.status });
        }
      });
      timings = { queue_ms: outcome.timings.queueMs, preprocess_ms: outcome.timings.preprocessMs, inference_ms: outcome.timings.inferenceMs, total_ms: outcome.timings.totalMs };
    }
    errors.sort((a, b) => a.index - b.index);
    if (errors.length === n) {
      const first = errors[0]!;
      throw new ApiFailure(first.code, n === 1 ? first.message : `no image could be scored; first: ${first.message}`, { status: first.status ?? statusOf(first.code), errors });
    }
    const res: ScoreResponse = { model: service.modelId, rewards, ranking, ...(errors.length > 0 ? { errors } : {}), cached, timings };
    return res;
  };
}

// ---------------------------------------------------------------------------
// The app

/** Routes and their methods (for 405 and metrics labels). */
const ROUTES: ReadonlyMap<string, readonly string[]> = new Map([
  ['/v1/score', ['POST']],
  ['/v1/score:batch', ['POST']],
  ['/v1/models', ['GET', 'HEAD']],
  ['/healthz', ['GET', 'HEAD']],
  ['/readyz', ['GET', 'HEAD']],
  ['/metrics', ['GET', 'HEAD']],
  ['/openapi.json', ['GET', 'HEAD']],
  ['/docs', ['GET', 'HEAD']],
]);

/** The routes this server lists on /docs (HTML list items). */
const DOCS_ROUTES: readonly string[] = [
  '<code>POST /v1/score</code> — JSON <code>{"prompt": "…", "images": [{"data": "&lt;base64&gt;"} | {"url": "https://…"}]}</code>, or multipart/form-data with a <code>prompt</code> field and image file fields → <code>{model, rewards, ranking, errors?, cached, timings}</code>',
  '<code>POST /v1/score:batch</code> — <code>{"requests": [ScoreRequest, …]}</code> → <code>{results: [ScoreResponse | Problem, …]}</code>',
  '<code>GET /v1/models</code> — the model and backend in use',
  '<code>GET /healthz</code> — liveness; <code>GET /readyz</code> — readiness (503 while loading or draining)',
  '<code>GET /metrics</code> — Prometheus metrics',
];

export function createApp(opts: AppOptions): Hono<Env> {
  const limits = resolveLimits(opts.limits);
  const { service } = opts;
  const log = opts.logger ?? defaultLogger;
  const httpMetrics = new HttpMetrics();
  const digests = opts.apiKeys && opts.apiKeys.length > 0 ? keyDigests(opts.apiKeys) : undefined;
  const score = makeScorer(opts, limits);
  let openapi: string | undefined;

  const app = new Hono<Env>();
  app.use('*', requestId());
  app.use('*', accessLog(httpMetrics, log, ROUTES));
  app.use('*', secureHeaders());
  app.use('/v1/*', callDeadline(limits.requestTimeoutMs));
  if (digests) {
    app.use('/v1/*', apiKeyAuth(digests, opts.trustTenantHeader === true));
    if (!opts.metricsPublic) app.use('/metrics', apiKeyAuth(digests, false));
  }
  if (opts.isDraining) {
    const isDraining = opts.isDraining;
    // Checked when a request arrives: one that started before the drain began runs to its end.
    app.use('/v1/*', async function refuseWhileDraining(c, next) {
      if (c.req.method === 'POST' && isDraining()) return problemReply(c, 'shutting_down', 'the service is shutting down; retry on another origin');
      await next();
    });
  }
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: limits.maxBodyBytes,
      onError: (c) => problemReply(c as Ctx, 'payload_too_large', `the body is larger than ${limits.maxBodyBytes} bytes`),
    }),
  );

  const v1 = new Hono<Env>();

  v1.post('/score', async (c) => {
    const startedAt = performance.now();
    const type = mediaType(c);
    let req: ParsedScoreRequest;
    if (isJsonMediaType(type)) req = parseScoreJson(await readJson(c), limits, bufferBase64);
    else if (type === 'multipart/form-data') req = await readMultipart(c, limits);
    else throw new ApiFailure('unsupported_media_type', `Content-Type must be application/json or multipart/form-data (got "${type || 'none'}")`);
    return c.json(await score(c, req.prompt, req.items, startedAt));
  });

  v1.post('/score:batch', async (c) => {
    const startedAt = performance.now();
    const type = mediaType(c);
    if (!isJsonMediaType(type)) throw new ApiFailure('unsupported_media_type', `Content-Type must be application/json (got "${type || 'none'}")`);
    const prepared = parseBatchJson(await readJson(c), limits, bufferBase64);
    const results = await Promise.all(
      prepared.map(async (p) => {
        if (p instanceof ApiFailure) return failureBody(c, p);
        try {
          return await score(c, p.prompt, p.items, startedAt);
        } catch (err) {
          if (err instanceof ApiFailure) {
            // The whole call cannot go on without the service: answer that for the batch.
            if (err.code === 'not_ready' || err.code === 'shutting_down' || err.code === 'canceled') throw err;
            return failureBody(c, err);
          }
          throw err;
        }
      }),
    );
    return c.json({ results });
  });

  v1.get('/models', (c) => {
    const body: ModelsResponse = {
      object: 'list',
      data: [
        {
          id: service.modelId,
          object: 'model',
          backend: service.backend,
          ready: service.ready(),
          skipped_backends: service.skippedBackends.map((s) => ({ name: s.name, reason: s.reason })),
          limits: { ...limits },
        },
      ],
    };
    return c.json(body);
  });

  app.route('/v1', v1);

  // Liveness fails only when the process can never serve again (every backend lost):
  // a supervisor (systemd, Kubernetes) restarts it; loading and draining stay "alive".
  app.get('/healthz', (c) => {
    const failed = service.failure?.();
    if (failed) return problemReply(c, 'backend_failed', failed);
    return c.json({ status: 'ok' as const });
  });

  app.get('/readyz', (c) => {
    if (opts.isDraining?.()) return problemReply(c, 'shutting_down', 'the service is draining for shutdown');
    if (!service.ready()) {
      const f = notReadyFailure(service);
      return problemReply(c, f.code, f.message);
    }
    return c.json({ status: 'ready' as const, model: service.modelId });
  });

  app.get('/metrics', (c) => {
    const text = `${service.metrics.render().trimEnd()}\n${httpMetrics.render()}`;
    return c.body(text.startsWith('\n') ? text.slice(1) : text, 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
  });

  app.get('/openapi.json', (c) => {
    openapi ??= JSON.stringify(openApiDocument({ version: packageVersion() }));
    return c.body(openapi, 200, { 'content-type': 'application/json' });
  });

  app.get('/docs', (c) => c.html(apiDocsPage({ routes: DOCS_ROUTES })));

  app.notFound((c) => {
    const allowed = ROUTES.get(c.req.path);
    if (allowed) {
      return problemReply(c as Ctx, 'method_not_allowed', `${c.req.method} is not allowed on ${c.req.path} (allowed: ${allowed.join(', ')})`, {
        headers: { allow: allowed.join(', ') },
      });
    }
    return problemReply(c as Ctx, 'not_found', `no route for ${c.req.method} ${c.req.path}`);
  });

  app.onError((err, c) => {
    const ctx = c as Ctx;
    if (err instanceof ApiFailure) return failureReply(ctx, err);
    if (err instanceof HTTPException) {
      if (err.status === 408) return problemReply(ctx, 'request_timeout', `the request body did not arrive within ${limits.requestTimeoutMs} ms`, { headers: { connection: 'close' } });
      if (err.status === 504) return problemReply(ctx, 'deadline_exceeded', `the call did not finish within ${limits.requestTimeoutMs} ms`);
      if (err.status === 413) return problemReply(ctx, 'payload_too_large', `the body is larger than ${limits.maxBodyBytes} bytes`);
    }
    const f = serviceFailure(err);
    if (f) return failureReply(ctx, f);
    if (c.req.raw.signal.aborted) return problemReply(ctx, 'canceled', 'the client went away');
    const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
    const res = problemReply(ctx, 'internal', 'internal error; the request id finds it in the logs');
    ctx.set('errorDetail', detail);
    return res;
  });

  return app;
}
