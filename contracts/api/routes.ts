// The routes of the scoring API as OpenAPI route definitions, and the OpenAPI
// 3.1 document built from them (served at GET /openapi.json by the GPU service;
// the edge serves the same document).
import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { ERROR_CODES, PROBLEM_CONTENT_TYPE } from './errors.js';
import { DEFAULT_LIMITS } from './limits.js';
import { JobDeliveriesSchema, JobRequestSchema, JobSchema } from './jobs.js';
import {
  BatchScoreRequestSchema,
  BatchScoreResponseSchema,
  HealthResponseSchema,
  ModelsResponseSchema,
  ProblemSchema,
  ReadyResponseSchema,
  ScoreResponseSchema,
  ScoreRequestSchema,
} from './schemas.js';

const problemContent = { [PROBLEM_CONTENT_TYPE]: { schema: ProblemSchema } };
const problemResponse = (description: string) => ({ description, content: problemContent });
const retryAfter = { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer' as const } } };

const errorsFor = (codes: (keyof typeof ERROR_CODES)[]) => {
  const byStatus = new Map<number, string[]>();
  for (const code of codes) {
    const s = ERROR_CODES[code].status;
    byStatus.set(s, [...(byStatus.get(s) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, cs]) => [
      status,
      { ...problemResponse(cs.join(', ')), ...(cs.some((c) => 'retryAfter' in ERROR_CODES[c as keyof typeof ERROR_CODES]) ? { headers: retryAfter } : {}) },
    ]),
  );
};

const SCORE_ERRORS = errorsFor([
  'invalid_json',
  'invalid_request',
  'invalid_base64',
  'invalid_multipart',
  'unauthorized',
  'request_timeout',
  'payload_too_large',
  'unsupported_media_type',
  'too_many_images',
  'prompt_too_long',
  'queue_full',
  'not_ready',
  'shutting_down',
  'deadline_exceeded',
  'internal',
]);

export const MultipartScoreRequestSchema = z
  .object({
    prompt: z.string(),
    image: z.array(z.string().openapi({ type: 'string', format: 'binary' })).openapi({ description: 'One or more image files (any field name other than "prompt"; scored in field order)' }),
  })
  .openapi('MultipartScoreRequest');

const security = [{ bearer: [] as string[] }];

export const scoreRoute = createRoute({
  method: 'post',
  path: '/v1/score',
  summary: 'Score images against a prompt',
  description: `JSON ({prompt, images: [{data}|{url}]}) or multipart/form-data (a "prompt" field and image file fields). Defaults: at most ${DEFAULT_LIMITS.maxImagesPerRequest} images, ${DEFAULT_LIMITS.maxImageBytes} bytes each, ${DEFAULT_LIMITS.maxBodyBytes} bytes of body, ${DEFAULT_LIMITS.maxPromptChars} prompt characters. An image that fails (corrupt, too large, unreachable URL) is reported in errors[] and the others are scored; when every image fails the answer is that problem.`,
  security,
  request: {
    body: {
      required: true,
      content: {
        'application/json': { schema: ScoreRequestSchema },
        'multipart/form-data': { schema: MultipartScoreRequestSchema },
      },
    },
  },
  responses: { 200: { description: 'Rewards and ranking', content: { 'application/json': { schema: ScoreResponseSchema } } }, ...SCORE_ERRORS },
});

export const batchScoreRoute = createRoute({
  method: 'post',
  path: '/v1/score:batch',
  summary: 'Score several independent requests in one call',
  description: `At most ${DEFAULT_LIMITS.maxBatchRequests} requests and ${DEFAULT_LIMITS.maxBatchImages} images in all (defaults). Each result is a ScoreResponse or that request's Problem.`,
  security,
  request: { body: { required: true, content: { 'application/json': { schema: BatchScoreRequestSchema } } } },
  responses: {
    200: { description: 'One result per request, in order', content: { 'application/json': { schema: BatchScoreResponseSchema } } },
    ...errorsFor(['invalid_json', 'invalid_request', 'unauthorized', 'payload_too_large', 'unsupported_media_type', 'too_many_images', 'too_many_requests_in_batch', 'queue_full', 'not_ready', 'shutting_down', 'deadline_exceeded', 'internal']),
  },
});

export const modelsRoute = createRoute({
  method: 'get',
  path: '/v1/models',
  summary: 'The model this server scores with',
  security,
  responses: { 200: { description: 'Models', content: { 'application/json': { schema: ModelsResponseSchema } } }, ...errorsFor(['unauthorized']) },
});

export const healthRoute = createRoute({
  method: 'get',
  path: '/healthz',
  summary: 'Liveness: 200 while the process serves',
  responses: { 200: { description: 'Alive', content: { 'application/json': { schema: HealthResponseSchema } } } },
});

export const readyRoute = createRoute({
  method: 'get',
  path: '/readyz',
  summary: 'Readiness: 200 once the model is loaded, 503 while loading or draining',
  responses: {
    200: { description: 'Ready', content: { 'application/json': { schema: ReadyResponseSchema } } },
    503: { description: 'not_ready, shutting_down', content: problemContent, headers: retryAfter },
  },
});

export const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics (text exposition format 0.0.4)',
  responses: { 200: { description: 'Metrics', content: { 'text/plain': { schema: z.string() } } }, ...errorsFor(['unauthorized']) },
});

const jobId = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' }, description: 'The job id (64 hex digits)' }) });
const jobErrors = (codes: (keyof typeof ERROR_CODES)[]) => errorsFor(['unauthorized', 'rate_limited', ...codes]);

export const createJobRoute = createRoute({
  method: 'post',
  path: '/v1/jobs',
  summary: 'Submit a batch job (edge only); results by polling or a signed webhook',
  description:
    'Up to 1,000 items, each scored like one POST /v1/score. Optional Idempotency-Key: the same key with the same body returns the same job (Idempotent-Replayed: true), another body 422 idempotency_key_reused, still being created 409. Webhooks follow Standard Webhooks (job.completed / job.failed).',
  security,
  request: {
    headers: z.object({ 'idempotency-key': z.string().max(255).optional().openapi({ description: 'Makes the submission safe to retry' }) }),
    body: { required: true, content: { 'application/json': { schema: JobRequestSchema } } },
  },
  responses: {
    202: { description: 'Accepted: the job (and the generated webhook secret, once)', content: { 'application/json': { schema: JobSchema } } },
    ...jobErrors(['invalid_json', 'invalid_request', 'invalid_base64', 'payload_too_large', 'unsupported_media_type', 'too_many_items', 'too_many_images', 'prompt_too_long', 'invalid_webhook_url', 'idempotency_key_reused', 'idempotency_key_in_progress']),
  },
});

export const getJobRoute = createRoute({
  method: 'get',
  path: '/v1/jobs/{id}',
  summary: 'A job: status, progress, per-item results and errors',
  security,
  request: { params: jobId, query: z.object({ items: z.enum(['true', 'false']).optional().openapi({ description: 'false: leave the per-item results out' }) }) },
  responses: { 200: { description: 'The job', content: { 'application/json': { schema: JobSchema } } }, ...jobErrors(['not_found']) },
});

export const cancelJobRoute = createRoute({
  method: 'delete',
  path: '/v1/jobs/{id}',
  summary: 'Cancel a job (its pending items)',
  security,
  request: { params: jobId },
  responses: { 200: { description: 'The cancelled job', content: { 'application/json': { schema: JobSchema } } }, ...jobErrors(['not_found', 'job_finished']) },
});

export const jobDeliveriesRoute = createRoute({
  method: 'get',
  path: '/v1/jobs/{id}/deliveries',
  summary: "The job's webhook delivery log",
  security,
  request: { params: jobId },
  responses: { 200: { description: 'Attempts, oldest first', content: { 'application/json': { schema: JobDeliveriesSchema } } }, ...jobErrors(['not_found']) },
});

export const redeliverRoute = createRoute({
  method: 'post',
  path: '/v1/jobs/{id}/webhook/redeliver',
  summary: "Send the job's webhook message again (same webhook-id)",
  security,
  request: { params: jobId },
  responses: { 202: { description: 'Scheduled', content: { 'application/json': { schema: z.object({ status: z.literal('scheduled') }) } } }, ...jobErrors(['not_found', 'invalid_request', 'job_not_finished']) },
});

/** The GPU service's routes. */
export const API_ROUTES = [scoreRoute, batchScoreRoute, modelsRoute, healthRoute, readyRoute, metricsRoute] as const;
/** The edge's routes: scoring (no /metrics) and jobs. */
export const EDGE_API_ROUTES = [scoreRoute, batchScoreRoute, modelsRoute, healthRoute, readyRoute, createJobRoute, getJobRoute, cancelJobRoute, jobDeliveriesRoute, redeliverRoute] as const;

export interface OpenApiDocumentOptions {
  version?: string;
  /** Which server's routes: the GPU service's (default) or the edge's. */
  routes?: 'gpu-service' | 'edge';
  serverUrl?: string;
  title?: string;
}

/** The OpenAPI 3.1 document of the API (built from the route definitions above). */
export function openApiDocument(opts: OpenApiDocumentOptions = {}): ReturnType<OpenAPIHono['getOpenAPI31Document']> {
  const registry = new OpenAPIHono();
  registry.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'Only when the server is started with API keys',
  });
  for (const route of opts.routes === 'edge' ? EDGE_API_ROUTES : API_ROUTES) registry.openAPIRegistry.registerPath(route);
  const table = Object.entries(ERROR_CODES)
    .map(([code, info]) => `| \`${code}\` | ${info.status} | ${info.description} |`)
    .join('\n');
  return registry.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title: opts.title ?? 'ImageReward scoring API',
      version: opts.version ?? '1',
      description: `Scores how much people would like an image generated from a prompt (ImageReward).\n\nErrors are RFC 9457 application/problem+json with a stable \`code\`:\n\n| code | status | meaning |\n| --- | --- | --- |\n${table}`,
    },
    ...(opts.serverUrl !== undefined ? { servers: [{ url: opts.serverUrl }] } : {}),
  });
}
