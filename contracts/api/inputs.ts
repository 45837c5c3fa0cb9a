// Turning a score request's body into work items — shared by the GPU service
// and the edge, so both accept exactly the same inputs and answer bad ones with
// the same codes. Pure TypeScript (FormData, atob): runs in Node and workerd.
//
// A request-level problem (bad JSON, schema, limits, bad base64) throws an
// ApiFailure; a problem with one image (too large, bad URL, empty, not an image)
// becomes that item's error, and the other images are still scored.
import { sniff } from '../image/sniff.js';
import { statusOf, type ItemError } from './errors.js';
import { promptTooLong, type ApiLimits } from './limits.js';
import { BatchScoreRequestSchema, ScoreRequestSchema, type ImageInput } from './schemas.js';

export interface ApiFailureOptions {
  status?: number;
  errors?: ItemError[] | { path: string; message: string; code?: string }[];
  retryAfter?: number;
}

/** A failure of the whole request with a code of contracts/api/errors.ts; the HTTP layer turns it into problem+json. */
export class ApiFailure extends Error {
  override name = 'ApiFailure';
  constructor(
    readonly code: string,
    message: string,
    readonly opts: ApiFailureOptions = {},
  ) {
    super(message);
  }
}

/** One image of a request after parsing: bytes to score, a URL still to fetch, or its error. */
export type PreparedImage = { kind: 'bytes'; bytes: Uint8Array } | { kind: 'url'; url: string } | { kind: 'error'; error: ItemError };

export interface ParsedScoreRequest {
  prompt: string;
  items: PreparedImage[];
}

export function itemError(index: number, code: string, message: string, status = statusOf(code)): PreparedImage {
  return { kind: 'error', error: { index, code, message, status } };
}

/** invalid_request with one errors[] entry per schema issue (at most 20). */
export function zodFailure(issues: readonly { path: readonly PropertyKey[]; message: string; code: string }[]): ApiFailure {
  const errors = issues.slice(0, 20).map((i) => ({ path: i.path.map(String).join('.') || '(body)', message: i.message, code: i.code }));
  const first = errors[0];
  return new ApiFailure('invalid_request', first ? `${first.path}: ${first.message}` : 'the body does not match the schema', { errors });
}

/** Media type of a Content-Type header, lower-case, without parameters. */
export function mediaTypeOf(contentType: string | null | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

export const isJsonMediaType = (t: string): boolean => t === 'application/json' || (t.startsWith('application/') && t.endsWith('+json'));

export function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ApiFailure('invalid_json', `the body is not valid JSON: ${(err as Error).message}`);
  }
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
const DATA_URL = /^data:[^,]*;base64,/i;

/** Decoded size of a base64 string whose alphabet is already checked, or -1 when its length is impossible. */
export function base64Size(s: string): number {
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  if (pad > 0 && s.length % 4 !== 0) return -1;
  const n = s.length - pad;
  if (n % 4 === 1) return -1;
  return Math.floor((n * 3) / 4);
}

/** Decodes standard or URL-safe base64, padding optional (alphabet and length already checked). */
export type Base64Decoder = (s: string) => Uint8Array;

export const decodeBase64: Base64Decoder = (s) => {
  const std = s.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  const bin = atob(std + '='.repeat((4 - (std.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
};

/** Standard base64 of bytes (chunked so large images do not overflow the argument list). */
export function encodeBase64(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

export function checkRequestLimits(prompt: string, count: number, limits: ApiLimits, where = ''): void {
  if (count > limits.maxImagesPerRequest) {
    throw new ApiFailure('too_many_images', `${where}${count} images (limit ${limits.maxImagesPerRequest} per request)`);
  }
  if (promptTooLong(prompt, limits.maxPromptChars)) {
    throw new ApiFailure('prompt_too_long', `${where}the prompt is longer than ${limits.maxPromptChars} characters`);
  }
}

/** JSON image inputs → bytes / URLs / per-image errors; bad base64 fails the whole request (it is a client bug, not a bad image). */
export function prepareJsonImages(images: readonly ImageInput[], limits: ApiLimits, decode: Base64Decoder = decodeBase64): PreparedImage[] {
  return images.map((img, index): PreparedImage => {
    if ('url' in img) {
      let u: URL;
      try {
        u = new URL(img.url);
      } catch {
        return itemError(index, 'url_scheme', `images[${index}].url is not an absolute URL`);
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return itemError(index, 'url_scheme', `images[${index}].url must be http(s) (got ${u.protocol})`);
      return { kind: 'url', url: img.url };
    }
    const data = img.data.replace(DATA_URL, '');
    const size = BASE64.test(data) ? base64Size(data) : -1;
    if (size < 0) throw new ApiFailure('invalid_base64', `images[${index}].data is not valid base64`, { errors: [{ index, code: 'invalid_base64', message: 'not valid base64', status: 400 }] });
    if (size > limits.maxImageBytes) return itemError(index, 'image_too_large', `image ${index} has ${size} bytes (limit ${limits.maxImageBytes})`);
    return { kind: 'bytes', bytes: decode(data) };
  });
}

/** A parsed JSON body of POST /v1/score → prompt and items (shape, then limits, then images). */
export function parseScoreJson(body: unknown, limits: ApiLimits, decode?: Base64Decoder): ParsedScoreRequest {
  const parsed = ScoreRequestSchema.safeParse(body);
  if (!parsed.success) throw zodFailure(parsed.error.issues);
  checkRequestLimits(parsed.data.prompt, parsed.data.images.length, limits);
  return { prompt: parsed.data.prompt, items: prepareJsonImages(parsed.data.images, limits, decode) };
}

/**
 * A parsed JSON body of POST /v1/score:batch → one entry per request: its items, or
 * the ApiFailure of that request alone. Batch-wide limits throw.
 */
export function parseBatchJson(body: unknown, limits: ApiLimits, decode?: Base64Decoder): (ParsedScoreRequest | ApiFailure)[] {
  const parsed = BatchScoreRequestSchema.safeParse(body);
  if (!parsed.success) throw zodFailure(parsed.error.issues);
  const { requests } = parsed.data;
  if (requests.length > limits.maxBatchRequests) throw new ApiFailure('too_many_requests_in_batch', `${requests.length} requests (limit ${limits.maxBatchRequests} per batch)`);
  const total = requests.reduce((s, r) => s + r.images.length, 0);
  if (total > limits.maxBatchImages) throw new ApiFailure('too_many_images', `${total} images over the batch (limit ${limits.maxBatchImages})`);
  // Shape and limits of every request first: nothing is queued for a batch that cannot run.
  return requests.map((r, i) => {
    try {
      checkRequestLimits(r.prompt, r.images.length, limits, `requests[${i}]: `);
      return { prompt: r.prompt, items: prepareJsonImages(r.images, limits, decode) };
    } catch (err) {
      if (err instanceof ApiFailure) return err;
      throw err;
    }
  });
}

/** A parsed multipart/form-data body: a "prompt" text field and image file fields (any other name), in field order. */
export async function parseScoreMultipart(form: FormData, limits: ApiLimits): Promise<ParsedScoreRequest> {
  let prompt: string | undefined;
  const files: Blob[] = [];
  for (const [name, value] of form.entries()) {
    if (name === 'prompt') {
      if (typeof value !== 'string') throw new ApiFailure('invalid_request', '"prompt" must be a text field', { errors: [{ path: 'prompt', message: 'must be a text field' }] });
      if (prompt !== undefined) throw new ApiFailure('invalid_request', '"prompt" given more than once', { errors: [{ path: 'prompt', message: 'given more than once' }] });
      prompt = value;
    } else if (typeof value === 'string') {
      throw new ApiFailure('invalid_request', `field "${name}" must be an image file`, { errors: [{ path: name, message: 'must be a file' }] });
    } else {
      files.push(value);
    }
  }
  if (prompt === undefined) throw new ApiFailure('invalid_request', 'the "prompt" field is required', { errors: [{ path: 'prompt', message: 'Required' }] });
  if (files.length === 0) throw new ApiFailure('invalid_request', 'give at least one image file field', { errors: [{ path: 'images', message: 'at least one file' }] });
  checkRequestLimits(prompt, files.length, limits);
  const items = await Promise.all(
    files.map(async (f, index): Promise<PreparedImage> => {
      if (f.size > limits.maxImageBytes) return itemError(index, 'image_too_large', `image ${index} has ${f.size} bytes (limit ${limits.maxImageBytes})`);
      return { kind: 'bytes', bytes: new Uint8Array(await f.arrayBuffer()) };
    }),
  );
  return { prompt, items };
}

/**
 * The magic-byte check of one image (the GPU service does the same while decoding;
 * the edge does it before any upstream work): empty → image_empty, a format we do
 * not decode → unsupported_image_format.
 */
export function checkImageBytes(index: number, bytes: Uint8Array): PreparedImage {
  if (bytes.length === 0) return itemError(index, 'image_empty', `image ${index} has zero bytes`);
  const s = sniff(bytes);
  if (!s.supported) {
    return itemError(index, 'unsupported_image_format', `image ${index} is ${s.format ?? 'not a recognised image format'}; send JPEG, PNG, WebP, GIF, AVIF or TIFF`);
  }
  return { kind: 'bytes', bytes };
}
