// The fetch every client call goes through: optional retries of answers the
// API marks as "retry after Retry-After" (rate_limited 429, queue_full /
// not_ready / shutting_down / origin_unavailable 503,
// idempotency_key_in_progress 409 — the table's `retryAfter` codes), waiting
// what the answer asks, capped. Off unless asked for: a caller that retries
// itself should not get retries squared. Only requests whose body is a string
// or absent are retried (what hc sends), since a stream cannot be sent twice.
import { DEFAULT_RETRY_AFTER_SECONDS, ERROR_CODES, isErrorCode } from '../contracts/api/errors.js';
import { retryAfterOf } from './api-error.js';

export interface RetryOptions {
  /** Retries after the first try (0 = none). */
  attempts: number;
  /** Longest wait between tries, whatever Retry-After says (default 30 s). */
  maxDelayMs?: number;
}

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

const DEFAULT_MAX_DELAY_MS = 30_000;
/** Statuses a retryAfter code can have; anything else is answered as is without reading the body. */
const RETRY_STATUSES = new Set<number>(Object.values(ERROR_CODES).flatMap((info) => ('retryAfter' in info ? [info.status] : [])));

/** Whether `res` is a problem whose code the error table marks as retryable after Retry-After. */
async function retryable(res: Response): Promise<boolean> {
  if (!RETRY_STATUSES.has(res.status)) return false;
  try {
    const body = (await res.clone().json()) as { code?: unknown } | null;
    const code = body?.code;
    return typeof code === 'string' && isErrorCode(code) && 'retryAfter' in ERROR_CODES[code];
  } catch {
    return false;
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal | null): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function retryingFetch(base: FetchLike, retry: RetryOptions | undefined): FetchLike {
  const attempts = Math.max(0, Math.floor(retry?.attempts ?? 0));
  if (attempts === 0) return base;
  const maxDelayMs = retry?.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
  return async function fetchWithRetry(input, init) {
    const resendable = !(input instanceof Request) && (init?.body === undefined || init.body === null || typeof init.body === 'string');
    for (let attempt = 0; ; attempt++) {
      const res = await base(input, init);
      if (!resendable || attempt >= attempts || !(await retryable(res))) return res;
      const waitMs = Math.min(maxDelayMs, (retryAfterOf(res.headers) ?? DEFAULT_RETRY_AFTER_SECONDS) * 1000);
      await res.body?.cancel().catch(() => undefined);
      await sleep(waitMs, init?.signal);
    }
  };
}
