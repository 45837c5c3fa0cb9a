// imagereward-serve/client: a typed TypeScript client of the edge's public
// API (also fine against a GPU service for /v1/score, /v1/score:batch and
// /v1/models, which have the same shapes). Runs in Node 20, browsers and
// Workers.
//
//   import { createClient } from 'imagereward-serve/client';
//   const ir = createClient('https://imagereward.example.com', { apiKey: process.env.IMAGEREWARD_API_KEY });
//   const { rewards, ranking, cache } = await ir.score('a red fox', [pngBytes, { url: 'https://…/2.webp' }]);
//
// Non-2xx answers throw ImageRewardApiError (status, code, detail, requestId,
// retryAfterSeconds, errors, problem). `ir.raw` is Hono's hc client typed by
// EdgeSchema, for callers who want the Response itself.
export { createClient, JobWaitTimeoutError } from './create-client.js';
export type {
  AnswerMeta,
  BatchScoreResult,
  CacheStatus,
  CallOptions,
  ClientJobRequest,
  ClientOptions,
  ClientScoreRequest,
  CreatedJob,
  CreateJobOptions,
  GetJobOptions,
  ImageRewardClient,
  RawClient,
  ScoreResult,
  WaitForJobOptions,
} from './create-client.js';
export { ImageRewardApiError, UNEXPECTED_RESPONSE, type ErrorResponseLike, type ProblemItemError } from './api-error.js';
export { encodeImage, toBase64, type ClientImage } from './encode-image.js';
export type { FetchLike, RetryOptions } from './retrying-fetch.js';
export type { EdgeApp, EdgeHealth, EdgeReady, EdgeSchema, JobDeliveries, ProblemStatus, RedeliverResponse } from '../contracts/api/edge-schema.js';
export type { BatchScoreRequest, BatchScoreResponse, ImageInput, ModelsResponse, ProblemBody, ScoreRequest, ScoreResponse } from '../contracts/api/schemas.js';
export type { Job, JobItem, JobItemInput, JobItemResult, JobRequest, JobStatus, WebhookDelivery } from '../contracts/api/jobs.js';
