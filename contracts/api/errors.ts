// Every stable error code of the scoring API with its HTTP status: ONE table,
// shared by the GPU service and the edge. A request-level failure is an RFC 9457
// application/problem+json body whose `code` is one of these; a per-image
// failure inside a scored request appears in the response's `errors[]` with the
// same codes (and the HTTP status that image alone would have had).
import { problem, type Problem } from '../problem.js';

export interface ErrorCodeInfo {
  status: number;
  /** Whether the response carries Retry-After (the client may simply retry later). */
  retryAfter?: true;
  /** Whether the code can be a per-image error (errors[] of a 200 response). */
  perImage?: true;
  description: string;
}

export const ERROR_CODES = {
  // request shape
  invalid_json: { status: 400, description: 'The body is not valid JSON.' },
  invalid_request: { status: 400, description: 'The body does not match the schema (see errors[] for each field).' },
  invalid_base64: { status: 400, description: 'An image\'s "data" is not valid base64 (standard or URL-safe alphabet, optionally a data: URL).' },
  invalid_multipart: { status: 400, description: 'The multipart/form-data body cannot be parsed, or has no prompt / no image file.' },
  unauthorized: { status: 401, description: 'API keys are configured and the request has no valid "Authorization: Bearer <key>".' },
  not_found: { status: 404, description: 'No such route.' },
  method_not_allowed: { status: 405, description: 'The route exists but not for this method (see the Allow header).' },
  request_timeout: { status: 408, description: 'The client did not send the full request in time.' },
  forbidden: { status: 403, description: 'The credentials are valid but not for this route (e.g. an admin route with a wrong admin secret).' },
  payload_too_large: { status: 413, description: 'The body is larger than maxBodyBytes.' },
  unsupported_media_type: { status: 415, description: 'Content-Type is not application/json (or multipart/form-data where accepted).' },
  too_many_images: { status: 422, description: 'More images than maxImagesPerRequest (or maxBatchImages over a batch).' },
  too_many_requests_in_batch: { status: 422, description: 'More requests than maxBatchRequests in one batch call.' },
  too_many_items: { status: 422, description: 'A job has more items than the job limit (1000).' },
  invalid_webhook_url: { status: 422, description: 'The webhook URL is not https (http only for loopback where the edge allows it), has credentials, or names a private host.' },
  idempotency_key_reused: { status: 422, description: 'This Idempotency-Key was used before with a different body.' },
  idempotency_key_in_progress: { status: 409, retryAfter: true, description: 'A request with this Idempotency-Key is still being processed; retry after Retry-After seconds.' },
  job_finished: { status: 409, description: 'The job is already completed, failed or cancelled.' },
  job_not_finished: { status: 409, description: 'The job has no webhook message yet: it is still running (or was cancelled).' },
  prompt_too_long: { status: 422, description: 'The prompt has more than maxPromptChars code points.' },
  rate_limited: { status: 429, retryAfter: true, description: "The API key (or, without keys, the client address) exceeded its tier's request rate; retry after Retry-After seconds." },
  // one image
  image_empty: { status: 400, perImage: true, description: 'The image has zero bytes.' },
  image_too_large: { status: 413, perImage: true, description: 'The image has more than maxImageBytes bytes or maxImagePixels pixels (checked before decoding).' },
  unsupported_image_format: { status: 415, perImage: true, description: 'Not JPEG, PNG, WebP, GIF, AVIF or TIFF.' },
  image_decode_failed: { status: 422, perImage: true, description: 'A supported format, but corrupt or truncated.' },
  url_scheme: { status: 422, perImage: true, description: 'The image URL is not an absolute http(s) URL.' },
  url_forbidden: { status: 422, perImage: true, description: 'Fetching this URL is refused: URL images are off on this server, or it resolves to a private/loopback/link-local address not on the allow list.' },
  url_fetch_failed: { status: 502, perImage: true, description: 'The URL could not be fetched (DNS, connection, non-2xx answer, too many redirects).' },
  url_timeout: { status: 504, perImage: true, description: 'Fetching the URL took longer than urlFetchTimeoutMs.' },
  url_too_large: { status: 413, perImage: true, description: "The URL's body is larger than maxImageBytes." },
  url_not_image: { status: 415, perImage: true, description: 'The URL answered something that is not an image we decode.' },
  // the service
  queue_full: { status: 503, retryAfter: true, description: 'The scoring queue is full; retry after Retry-After seconds (or on another origin).' },
  not_ready: { status: 503, retryAfter: true, description: 'The model is still loading.' },
  backend_failed: { status: 503, retryAfter: true, description: "Every model backend of this service failed for good (a lost GPU: a sticky CUDA error). It answers this until restarted, and /healthz fails so a supervisor restarts it; retry on another origin." },
  shutting_down: { status: 503, retryAfter: true, description: 'The service is draining for shutdown; retry on another origin.' },
  origin_unavailable: { status: 503, retryAfter: true, description: 'The edge found no healthy GPU origin (all down, failing or circuit-open); retry after Retry-After seconds.' },
  bad_origin_response: { status: 502, description: 'A GPU origin answered something that is not a valid API response.' },
  deadline_exceeded: { status: 504, perImage: true, description: 'The call did not finish within requestTimeoutMs (or its own deadline).' },
  canceled: { status: 499, description: 'The client went away; the work was abandoned (logged only, nobody reads the answer).' },
  internal: { status: 500, perImage: true, description: 'A bug or an unexpected failure; the request id finds it in the logs.' },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

/** The table's status for `code`; 500 for a code not in it. */
export function statusOf(code: string): number {
  return isErrorCode(code) ? ERROR_CODES[code].status : 500;
}

/** Seconds a client should wait on a Retry-After code, unless the service says better. */
export const DEFAULT_RETRY_AFTER_SECONDS = 1;

export interface ItemError {
  index: number;
  code: string;
  message: string;
  /** The HTTP status this image alone would have had. */
  status?: number;
}

export interface ApiProblemOptions {
  requestId?: string;
  /** Overrides the table's status (e.g. a per-image status when every image failed). */
  status?: number;
  errors?: readonly (ItemError | { path: string; message: string; code?: string })[];
  [extension: string]: unknown;
}

/** An RFC 9457 body for `code` with the table's status, the request id (also as `instance`) and optional errors[]. */
export function apiProblem(code: string, detail: string, opts: ApiProblemOptions = {}): Problem {
  const { requestId, status, errors, ...extra } = opts;
  const p = problem(code, status ?? statusOf(code), detail, extra);
  if (requestId !== undefined) {
    p.instance = `urn:request:${requestId}`;
    p.request_id = requestId;
  }
  if (errors !== undefined && errors.length > 0) p.errors = errors;
  return p;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
