// Default request limits of the scoring API: the one place they are written
// down. The GPU service enforces them before any work is queued (the HTTP layer
// checks bodies, counts, prompt lengths and image bytes; the service checks
// pixels from the image header, before decoding); the edge applies the same
// numbers. Every value can be lowered or raised per deployment (createApp's
// `limits`, `imagereward serve` flags).

export interface ApiLimits {
  /** Largest request body, in bytes (JSON or multipart). Bigger → 413 payload_too_large. */
  maxBodyBytes: number;
  /** Most images in one score request. More → 422 too_many_images. */
  maxImagesPerRequest: number;
  /** Largest image, in bytes after base64 decoding (or as uploaded / fetched). Bigger → that item fails with image_too_large (413). */
  maxImageBytes: number;
  /** Most pixels (width × height, from the header) in one image. More → that item fails with image_too_large (413). */
  maxImagePixels: number;
  /** Longest prompt, in Unicode code points. Longer → 422 prompt_too_long. (The model reads only the first 35 tokens.) */
  maxPromptChars: number;
  /** Most score requests in one `POST /v1/score:batch`. More → 422 too_many_requests_in_batch. */
  maxBatchRequests: number;
  /** Most images over all requests of one batch call. More → 422 too_many_images. */
  maxBatchImages: number;
  /** Wall-clock budget of one API call, body upload included. Over → 504 deadline_exceeded. */
  requestTimeoutMs: number;
  /** Budget for fetching one `{url}` image. Over → that item fails with url_timeout (504). */
  urlFetchTimeoutMs: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_LIMITS: Readonly<ApiLimits> = Object.freeze({
  maxBodyBytes: 32 * MiB,
  maxImagesPerRequest: 16,
  maxImageBytes: 8 * MiB,
  maxImagePixels: 40_000_000,
  maxPromptChars: 2_048,
  maxBatchRequests: 16,
  maxBatchImages: 64,
  requestTimeoutMs: 60_000,
  urlFetchTimeoutMs: 10_000,
});

/** DEFAULT_LIMITS with `overrides` applied; throws RangeError on a non-positive or non-integer value. */
export function resolveLimits(overrides: Partial<ApiLimits> = {}): ApiLimits {
  const out: ApiLimits = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(overrides) as [keyof ApiLimits, number | undefined][]) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_LIMITS)) throw new RangeError(`unknown limit "${key}"`);
    if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`limit ${key} must be a positive integer (got ${String(value)})`);
    out[key] = value;
  }
  return out;
}

/** Whether `prompt` has more than `max` Unicode code points (stops counting at max + 1). */
export function promptTooLong(prompt: string, max: number): boolean {
  if (prompt.length <= max) return false; // code points ≤ UTF-16 units
  let n = 0;
  for (const _ of prompt) if (++n > max) return true;
  return false;
}
