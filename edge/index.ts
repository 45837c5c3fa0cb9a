// The edge worker: the public HTTPS endpoint (see docs/architecture.md).
//
//   requestId · Server-Timing · secure headers · CORS
//   /v1/*     API key (KV, hashed) → rate limit (per key, per tier) → body limit
//             → parse + validate (contracts/api) → cache (Cache API, KV) → origin pool
//   /admin/*  key management behind ADMIN_SECRET
//   cron      active origin health checks
//
// Every error is RFC 9457 problem+json from the shared code table.
import { Hono, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import { timing } from 'hono/timing';
import { ApiFailure, apiDocsPage, openApiDocument, promptTooLong } from '../contracts/api/index.js';
import { EDGE_ROUTES } from '../contracts/api/edge-schema.js';
import { adminRoutes } from './admin/keys-routes.js';
import { apiKeyAuth } from './auth/api-key-auth.js';
import { rateLimit } from './auth/rate-limit.js';
import { EdgeConfigError, corsOrigins, edgeLimits, modelId } from './config.js';
import type { EdgeEnv } from './env.js';
import { readHealth, scheduledHealthCheck } from './origins/health.js';
import { OriginUnavailableError, originSnapshot } from './origins/pool.js';
import { edgeProblem } from './problem-reply.js';
import { modelsRoutes } from './routes/models.js';
import { scoreRoutes } from './routes/score.js';
import { jobRoutes } from './jobs/routes.js';
import { handleJobQueue } from './jobs/queue-consumer.js';
import { promptIds } from './tokenizer.js';

/** CORS from CORS_ORIGINS (read per request: vars can differ between deployments of one bundle). */
function corsFromEnv(): MiddlewareHandler<EdgeEnv> {
  const byValue = new Map<string, MiddlewareHandler>();
  return async function corsFromEnv(c, next) {
    const origins = corsOrigins(c.env);
    if (origins.length === 0) return next();
    const key = origins.join(',');
    let mw = byValue.get(key);
    if (!mw) {
      mw = cors({
        origin: origins.includes('*') ? '*' : origins,
        allowMethods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
        allowHeaders: ['authorization', 'content-type', 'x-request-id', 'idempotency-key'],
        exposeHeaders: ['x-request-id', 'x-cache', 'retry-after', 'server-timing'],
        maxAge: 600,
      });
      byValue.set(key, mw);
    }
    return mw(c, next);
  };
}

/** hono's bodyLimit with the edge's maxBodyBytes (from LIMITS). */
function bodyLimitFromEnv(): MiddlewareHandler<EdgeEnv> {
  const bySize = new Map<number, MiddlewareHandler>();
  return async function bodyLimitFromEnv(c, next) {
    const max = edgeLimits(c.env).maxBodyBytes;
    let mw = bySize.get(max);
    if (!mw) {
      mw = bodyLimit({ maxSize: max, onError: (cc) => edgeProblem(cc, 'payload_too_large', `the body is larger than ${max} bytes`) });
      bySize.set(max, mw);
    }
    return mw(c, next);
  };
}

const DOCS_ROUTES: readonly string[] = [
  '<code>POST /v1/score</code> — JSON <code>{"prompt": "…", "images": [{"data": "&lt;base64&gt;"} | {"url": "https://…"}]}</code>, or multipart/form-data with a <code>prompt</code> field and image file fields → <code>{model, rewards, ranking, errors?, cached, timings}</code>; <code>X-Cache: HIT | MISS | PARTIAL</code>',
  '<code>POST /v1/score:batch</code> — <code>{"requests": [ScoreRequest, …]}</code> → <code>{results: [ScoreResponse | Problem, …]}</code>',
  '<code>GET /v1/models</code> — the model, the GPU tier\'s backend, and this endpoint\'s limits',
  '<code>POST /v1/jobs</code> — <code>{"items": [{id?, prompt, images}, …], "webhook"?: {url, secret?}, "metadata"?}</code> + optional <code>Idempotency-Key</code> → 202 job; <code>GET /v1/jobs/:id</code> status, progress and results; <code>DELETE /v1/jobs/:id</code> cancels; <code>GET /v1/jobs/:id/deliveries</code>, <code>POST /v1/jobs/:id/webhook/redeliver</code> (Standard Webhooks)',
  '<code>GET /healthz</code> — liveness and the origin pool\'s state; <code>GET /readyz</code> — 200 while some GPU origin can take work',
];

const CACHE_NOTE =
  'Results are cached per (model, prompt token ids, image sha256): the model reads only the first 35 tokens of a prompt, so prompts that tokenize alike share results. <code>cached[i]</code> tells which rewards came from the cache; they are identical to fresh ones.';

/** Exact paths and their methods, for 405 + Allow: the public route table (contracts/api/edge-schema.ts, also what the typed client is built from) plus the documents. */
const ROUTES: ReadonlyMap<string, readonly string[]> = new Map<string, readonly string[]>([
  ...Object.entries(EDGE_ROUTES).filter(([path]) => !path.includes('/:')),
  ['/openapi.json', ['GET', 'HEAD']],
  ['/docs', ['GET', 'HEAD']],
  ['/v1/tokenize', ['POST']],
]);

const app = new Hono<EdgeEnv>();

app.use('*', requestId());
app.use('*', timing({ totalDescription: 'edge' }));
app.use('*', secureHeaders());
app.use('*', corsFromEnv());
app.use('/v1/*', apiKeyAuth());
app.use('/v1/*', rateLimit());
app.use('/v1/*', bodyLimitFromEnv());

app.route('/v1', scoreRoutes);
app.route('/v1', modelsRoutes);
app.route('/v1', jobRoutes);
app.route('/admin', adminRoutes);

app.get('/healthz', async (c) => {
  await readHealth(c.env);
  return c.json({ status: 'ok' as const, model: modelId(c.env), origins: originSnapshot(c.env).map((o) => ({ state: o.state, healthy: o.healthy })) });
});

app.get('/readyz', async (c) => {
  await readHealth(c.env);
  const origins = originSnapshot(c.env);
  if (origins.some((o) => o.state !== 'open' && o.healthy !== false)) return c.json({ status: 'ready' as const, model: modelId(c.env) });
  return edgeProblem(c, 'origin_unavailable', origins.length === 0 ? 'no GPU origin is configured (ORIGINS)' : 'no GPU origin is healthy');
});

let openapi: string | undefined;
app.get('/openapi.json', (c) => {
  openapi ??= JSON.stringify(openApiDocument({ title: 'ImageReward scoring API (edge)', routes: 'edge' }));
  return c.body(openapi, 200, { 'content-type': 'application/json' });
});

app.get('/docs', (c) => c.html(apiDocsPage({ title: 'ImageReward scoring API', routes: DOCS_ROUTES, notes: [CACHE_NOTE] })));

// Kept from the first edge: token ids exactly as the model sees the prompt (debugging cache keys).
app.post('/v1/tokenize', async (c) => {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new ApiFailure('invalid_json', 'the body is not valid JSON');
  }
  const prompt = (body as { prompt?: unknown } | null)?.prompt;
  if (typeof prompt !== 'string') throw new ApiFailure('invalid_request', '"prompt" must be a string', { errors: [{ path: 'prompt', message: 'must be a string' }] });
  const max = edgeLimits(c.env).maxPromptChars;
  if (promptTooLong(prompt, max)) throw new ApiFailure('prompt_too_long', `the prompt is longer than ${max} characters`);
  const input_ids = promptIds(prompt);
  return c.json({ input_ids, attention_mask: input_ids.map((id) => (id === 0 ? 0 : 1)) });
});

app.notFound((c) => {
  const allowed = ROUTES.get(c.req.path);
  if (allowed) return edgeProblem(c, 'method_not_allowed', `${c.req.method} is not allowed on ${c.req.path} (allowed: ${allowed.join(', ')})`, { headers: { allow: allowed.join(', ') } });
  return edgeProblem(c, 'not_found', `no route for ${c.req.method} ${c.req.path}`);
});

app.onError((err, c) => {
  if (err instanceof ApiFailure) {
    return edgeProblem(c, err.code, err.message, {
      ...(err.opts.status !== undefined ? { status: err.opts.status } : {}),
      ...(err.opts.errors !== undefined ? { errors: err.opts.errors } : {}),
      ...(err.opts.retryAfter !== undefined ? { retryAfter: err.opts.retryAfter } : {}),
    });
  }
  if (err instanceof OriginUnavailableError) {
    if (err.reason === 'deadline_exceeded') return edgeProblem(c, 'deadline_exceeded', 'the GPU tier did not answer within the request budget (requestTimeoutMs)');
    return edgeProblem(c, 'origin_unavailable', 'no GPU origin can take this request now; retry later', { retryAfter: err.retryAfterSeconds });
  }
  if (err instanceof HTTPException && err.status === 413) return edgeProblem(c, 'payload_too_large', 'the body is too large');
  const requestIdValue = c.get('requestId');
  if (err instanceof EdgeConfigError) {
    console.error(JSON.stringify({ level: 'error', event: 'config', request_id: requestIdValue, message: err.message }));
    return edgeProblem(c, 'internal', `the edge is misconfigured: ${err.message}`);
  }
  if (c.req.raw.signal.aborted) return edgeProblem(c, 'canceled', 'the client went away');
  console.error(JSON.stringify({ level: 'error', request_id: requestIdValue, message: err instanceof Error ? (err.stack ?? err.message) : String(err) }));
  return edgeProblem(c, 'internal', 'internal error; the request id finds it in the logs');
});

export default {
  fetch: app.fetch,
  scheduled: scheduledHealthCheck,
  queue: handleJobQueue,
} satisfies ExportedHandler<EdgeEnv['Bindings']>;

export { JobObject } from './jobs/job-object.js';

export { app };
