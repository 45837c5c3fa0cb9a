// The edge's one way to answer an error: RFC 9457 problem+json from the shared
// code table (contracts/api/errors.ts), with the request id and, for codes that
// carry it, Retry-After. Used by every middleware and route of the edge.
import type { Context } from 'hono';
import { ApiFailure, DEFAULT_RETRY_AFTER_SECONDS, ERROR_CODES, PROBLEM_CONTENT_TYPE, apiProblem, type ApiProblemOptions } from '../contracts/api/index.js';

export interface EdgeProblemOptions {
  status?: number;
  errors?: ApiProblemOptions['errors'];
  /** Seconds; set for any code whose table entry has retryAfter (default 1 s). */
  retryAfter?: number;
  headers?: Record<string, string>;
}

/** The problem body for `code` (request id from the context). */
export function edgeProblemBody(c: Context, code: string, detail: string, opts: EdgeProblemOptions = {}): ReturnType<typeof apiProblem> {
  const id = c.get('requestId') as string | undefined;
  return apiProblem(code, detail, {
    ...(id !== undefined ? { requestId: id } : {}),
    ...(opts.status !== undefined ? { status: opts.status } : {}),
    ...(opts.errors !== undefined ? { errors: opts.errors } : {}),
  });
}

/** A problem+json Response for `code`. */
export function edgeProblem(c: Context, code: string, detail: string, opts: EdgeProblemOptions = {}): Response {
  const body = edgeProblemBody(c, code, detail, opts);
  const headers: Record<string, string> = { 'content-type': PROBLEM_CONTENT_TYPE, ...opts.headers };
  // A Response returned from a middleware does not carry headers set earlier with c.header().
  const id = c.get('requestId') as string | undefined;
  if (id !== undefined) headers['x-request-id'] = id;
  const info = (ERROR_CODES as Record<string, { retryAfter?: true }>)[code];
  if (opts.retryAfter !== undefined || info?.retryAfter === true) {
    headers['retry-after'] = String(Math.max(1, Math.ceil(opts.retryAfter ?? DEFAULT_RETRY_AFTER_SECONDS)));
  }
  return new Response(JSON.stringify(body), { status: body.status, headers });
}

/**
 * A failure of the edge or the GPU tier behind it (bad origin answer, unknown job,
 * an origin's own problem passed through) — as opposed to a plain ApiFailure, which
 * is the request's own fault. Same shape; the queue consumer retries the former
 * (when 5xx) and records the latter as the item's error.
 */
export class EdgeFailure extends ApiFailure {
  override name = 'EdgeFailure';
}
