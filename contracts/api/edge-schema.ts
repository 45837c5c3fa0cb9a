// The public API of the edge as one Hono `Schema` type, written once from the
// contracts' zod-inferred types, so Hono's `hc` can build a typed client:
//
//   const api = hc<EdgeApp>('https://api.example.com');
//   const res = await api.v1.score.$post({ json: { prompt, images } });
//   if (res.ok) (await res.json()).rewards;   // ScoreResponse
//   else (await res.json()).code;             // ProblemBody
//
// The edge's handlers are plain Hono sub-apps (not method chains), so
// `typeof app` carries no route types; this file is where they are spelled
// out. EDGE_ROUTES lists the same paths with their methods as a value, and
// edge/api-type-check.ts proves at compile time that the two agree.
//
// Every route has a success endpoint and a problem endpoint (status from the
// one error table, contracts/api/errors.ts), so `res.ok` / `res.status`
// narrow what `res.json()` returns.
//
// Only types and one constant: nothing here imports zod or hono at run time.
import type { Hono } from 'hono';
import type { ERROR_CODES } from './errors.js';
import type { Job, JobRequest, WebhookDelivery } from './jobs.js';
import type { BatchScoreRequest, BatchScoreResponse, ModelsResponse, ProblemBody, ScoreRequest, ScoreResponse } from './schemas.js';

/**
 * Every status a problem answer of this API can have (the error table's),
 * less 499 `canceled`: nobody receives that one, and Hono's StatusCode has no 499.
 */
export type ProblemStatus = Exclude<(typeof ERROR_CODES)[keyof typeof ERROR_CODES]['status'], 499>;

/**
 * A JSON answer of `status` (Hono's Endpoint shape). A type literal, not an
 * interface: hc's Client type matches `Record<path, Schema>` against each
 * path's methods, which only object literal types (with their implicit index
 * signature) satisfy.
 */
type JsonEndpoint<I, O, S extends number> = {
  input: I;
  output: O;
  outputFormat: 'json';
  status: S;
};

/** One route's method: its success answer, or a problem+json body with the status of its code. */
type Route<I, O, S extends number = 200> = JsonEndpoint<I, O, S> | JsonEndpoint<I, ProblemBody, ProblemStatus>;

/** `/v1/jobs/:id…` routes: the job id is a path parameter. */
type JobIdParam = {
  param: { id: string };
};

/** What GET /healthz answers at the edge: alive, the model it caches under, and the origin pool as this isolate sees it. */
export interface EdgeHealth {
  status: 'ok';
  model: string;
  origins: { state: 'closed' | 'open' | 'half_open'; healthy: boolean | null }[];
}

/** What GET /readyz answers while some GPU origin can take work (503 origin_unavailable otherwise). */
export interface EdgeReady {
  status: 'ready';
  model: string;
}

/** The answer of POST /v1/jobs/:id/webhook/redeliver. */
export interface RedeliverResponse {
  status: 'scheduled';
}

/** The body of GET /v1/jobs/:id/deliveries. */
export interface JobDeliveries {
  deliveries: WebhookDelivery[];
}

/**
 * The Hono Schema of the edge's public API. Keys are full paths; `:id` is a
 * path parameter. '/v1/score:batch' is one literal segment "score:batch" (the
 * colon is not at a segment start, so it is not a parameter): `hc` reaches it
 * as `client.v1['score:batch']`.
 */
export type EdgeSchema = {
  '/v1/score': { $post: Route<{ json: ScoreRequest }, ScoreResponse> };
  '/v1/score:batch': { $post: Route<{ json: BatchScoreRequest }, BatchScoreResponse> };
  '/v1/models': { $get: Route<{}, ModelsResponse> };
  '/v1/jobs': { $post: Route<{ json: JobRequest; header?: { 'idempotency-key'?: string } }, Job, 202> };
  '/v1/jobs/:id': {
    $get: Route<JobIdParam & { query?: { items?: 'true' | 'false' } }, Job>;
    $delete: Route<JobIdParam, Job>;
  };
  '/v1/jobs/:id/deliveries': { $get: Route<JobIdParam, JobDeliveries> };
  '/v1/jobs/:id/webhook/redeliver': { $post: Route<JobIdParam, RedeliverResponse, 202> };
  '/healthz': { $get: JsonEndpoint<{}, EdgeHealth, 200> };
  '/readyz': { $get: Route<{}, EdgeReady> };
};

/**
 * The edge app's type for `hc<EdgeApp>(url)`. Only the schema parameter is
 * read by `hc`; the env is `any` because `hc`'s own constraint is
 * `Hono<any, any, any>` and a client has no business knowing the bindings.
 */
export type EdgeApp = Hono<any, EdgeSchema, '/'>;

/**
 * The same routes as a value, with their HTTP methods (HEAD where the edge
 * answers it for a GET): one list a test, a router table or docs can iterate.
 * edge/api-type-check.ts fails the edge's type-check when this and EdgeSchema
 * disagree.
 */
export const EDGE_ROUTES = {
  '/v1/score': ['POST'],
  '/v1/score:batch': ['POST'],
  '/v1/models': ['GET', 'HEAD'],
  '/v1/jobs': ['POST'],
  '/v1/jobs/:id': ['GET', 'DELETE'],
  '/v1/jobs/:id/deliveries': ['GET'],
  '/v1/jobs/:id/webhook/redeliver': ['POST'],
  '/healthz': ['GET', 'HEAD'],
  '/readyz': ['GET', 'HEAD'],
} as const satisfies Record<keyof EdgeSchema, readonly string[]>;

export type EdgeRoutePath = keyof typeof EDGE_ROUTES;
