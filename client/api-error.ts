// The error every typed-client call throws for a non-2xx answer: the RFC 9457
// problem+json body the edge (and the GPU service) send, parsed, with the
// fields a caller branches on lifted to properties. An answer that is not a
// problem body (a proxy's HTML 502, say) still becomes one of these, with
// code "unexpected_response", so callers have one error type to catch.
import type { ProblemBody } from '../contracts/api/schemas.js';

/** The parts of a fetch Response (or of Hono's ClientResponse) an error is read from. */
export interface ErrorResponseLike {
  status: number;
  headers: Headers;
  text(): Promise<string>;
}

/** One entry of a problem's errors[]: a per-image error, or a per-field validation error. */
export type ProblemItemError = NonNullable<ProblemBody['errors']>[number];

/** Code given when the answer is not a problem+json body. */
export const UNEXPECTED_RESPONSE = 'unexpected_response';

export class ImageRewardApiError extends Error {
  override name = 'ImageRewardApiError';
  /** The HTTP status of the answer. */
  readonly status: number;
  /** The stable error code (contracts/api/errors.ts), or "unexpected_response". */
  readonly code: string;
  /** The problem's human-readable detail. */
  readonly detail: string;
  /** X-Request-Id of the answer (or the problem's request_id): what the service logs are searched by. */
  readonly requestId: string | undefined;
  /** Retry-After in seconds, when the answer carries one (429, 503, 409 idempotency_key_in_progress). */
  readonly retryAfterSeconds: number | undefined;
  /** Per-image or per-field errors, when the problem has them. */
  readonly errors: readonly ProblemItemError[];
  /** The parsed problem body; undefined when the answer was not one. */
  readonly problem: ProblemBody | undefined;

  constructor(init: { status: number; code: string; detail: string; requestId?: string | undefined; retryAfterSeconds?: number | undefined; errors?: readonly ProblemItemError[]; problem?: ProblemBody | undefined }) {
    super(`${init.code} (${init.status}): ${init.detail}`);
    this.status = init.status;
    this.code = init.code;
    this.detail = init.detail;
    this.requestId = init.requestId;
    this.retryAfterSeconds = init.retryAfterSeconds;
    this.errors = init.errors ?? [];
    this.problem = init.problem;
  }

  /** Reads the body of a non-2xx answer (consumes it). */
  static async fromResponse(res: ErrorResponseLike): Promise<ImageRewardApiError> {
    const text = await res.text().catch(() => '');
    const problem = parseProblem(text);
    const requestId = res.headers.get('x-request-id') ?? problem?.request_id ?? undefined;
    const retryAfterSeconds = retryAfterOf(res.headers);
    if (!problem) {
      const snippet = text.trim().slice(0, 200);
      return new ImageRewardApiError({ status: res.status, code: UNEXPECTED_RESPONSE, detail: `HTTP ${res.status}${snippet ? `: ${snippet}` : ''}`, requestId, retryAfterSeconds });
    }
    return new ImageRewardApiError({ status: res.status, code: problem.code, detail: problem.detail, requestId, retryAfterSeconds, errors: problem.errors ?? [], problem });
  }
}

/** The problem body in `text`, or undefined when it is not one (checked by shape, not trusted by type). */
function parseProblem(text: string): ProblemBody | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.code !== 'string' || typeof v.status !== 'number') return undefined;
  return {
    ...(v as object),
    type: typeof v.type === 'string' ? v.type : 'about:blank',
    title: typeof v.title === 'string' ? v.title : v.code,
    status: v.status,
    detail: typeof v.detail === 'string' ? v.detail : '',
    code: v.code,
    ...(Array.isArray(v.errors) ? { errors: v.errors as ProblemItemError[] } : {}),
  } as ProblemBody;
}

/** Retry-After as seconds (delta-seconds or an HTTP-date); undefined when absent or unreadable. */
export function retryAfterOf(headers: Headers): number | undefined {
  const raw = headers.get('retry-after');
  if (raw === null || raw.trim() === '') return undefined;
  if (/^\d+$/.test(raw.trim())) return Number(raw.trim());
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}
