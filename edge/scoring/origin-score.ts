// One scoring call to the GPU tier for the pairs the cache could not answer:
// multipart/form-data (raw bytes, no base64 inflation) through the origin pool
// (health-aware choice, retries on another origin, circuit breaking), and a
// strict reading of the answer — the edge caches what it gets, so an answer that
// is not exactly the API's shape, or comes from another model, is refused (502)
// rather than cached and served for a month.
import { ERROR_CODES, ScoreResponseSchema, isErrorCode, statusOf, type ItemError, type Timings } from '../../contracts/api/index.js';
import { EdgeFailure } from '../problem-reply.js';
import { forwardToOrigins } from '../origins/pool.js';
import type { Env } from '../env.js';

export interface OriginScoreInput {
  prompt: string;
  images: Uint8Array[];
  requestId: string;
  signal?: AbortSignal;
  deadlineMs: number;
  /** The model id the edge caches under; the origin must answer with the same. */
  modelId: string;
  tenant?: string;
}

export interface OriginScoreOutput {
  /** rewards[j] for images[j]; null where errors[] has that image. */
  rewards: (number | null)[];
  /** Per-image errors, index = position in `images`. */
  errors: ItemError[];
  timings: Timings;
  origin: string;
  attempts: number;
}

const PER_IMAGE = new Set(Object.entries(ERROR_CODES).filter(([, i]) => 'perImage' in i).map(([c]) => c));

async function readJsonBody(res: Response): Promise<unknown> {
  try {
    return (await res.json()) as unknown;
  } catch {
    return undefined;
  }
}

function badOrigin(origin: string, why: string): EdgeFailure {
  // The origin's URL stays in the logs; the client learns only that the GPU tier misbehaved.
  console.error(JSON.stringify({ level: 'error', event: 'bad_origin_response', origin, why }));
  return new EdgeFailure('bad_origin_response', `the GPU tier answered an invalid response (${why})`);
}

/** Item errors of an origin problem, when it is the "every image failed" kind; else undefined. */
function itemErrorsOf(body: unknown, n: number): ItemError[] | undefined {
  const errors = (body as { errors?: unknown } | undefined)?.errors;
  if (!Array.isArray(errors) || errors.length !== n) return undefined;
  const out: ItemError[] = [];
  for (const e of errors as unknown[]) {
    const { index, code, message, status } = (e ?? {}) as Record<string, unknown>;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= n) return undefined;
    if (typeof code !== 'string' || !PER_IMAGE.has(code)) return undefined;
    out.push({ index, code, message: typeof message === 'string' ? message : code, status: typeof status === 'number' ? status : statusOf(code) });
  }
  return out;
}

export async function scoreAtOrigin(env: Env, input: OriginScoreInput): Promise<OriginScoreOutput> {
  const n = input.images.length;
  const form = new FormData();
  form.append('prompt', input.prompt);
  input.images.forEach((bytes, j) => form.append(`image${j}`, new Blob([bytes]), `image${j}`));
  const body = new Response(form);
  const contentType = body.headers.get('content-type') ?? 'multipart/form-data';
  const payload = await body.arrayBuffer();

  const { response, origin, attempts } = await forwardToOrigins(env, {
    path: '/v1/score',
    method: 'POST',
    body: payload,
    headers: { 'content-type': contentType, ...(input.tenant !== undefined ? { 'x-imagereward-tenant': input.tenant } : {}) },
    requestId: input.requestId,
    deadlineMs: input.deadlineMs,
    ...(input.signal !== undefined ? { signal: input.signal } : {}),
  });
  const json = await readJsonBody(response);

  if (response.status === 200) {
    const parsed = ScoreResponseSchema.safeParse(json);
    if (!parsed.success) throw badOrigin(origin, 'not a ScoreResponse');
    const r = parsed.data;
    if (r.model !== input.modelId) throw badOrigin(origin, `it serves model "${r.model}", the edge is configured for "${input.modelId}" (MODEL_ID)`);
    if (r.rewards.length !== n) throw badOrigin(origin, `${r.rewards.length} rewards for ${n} images`);
    const errors = (r.errors ?? []).filter((e) => e.index >= 0 && e.index < n);
    r.rewards.forEach((v, j) => {
      if (v === null && !errors.some((e) => e.index === j)) errors.push({ index: j, code: 'internal', message: 'the GPU tier gave no reward for this image', status: 500 });
    });
    return { rewards: r.rewards, errors, timings: r.timings, origin, attempts: attempts.length };
  }

  const problem = (json ?? {}) as { code?: unknown; detail?: unknown };
  const code = typeof problem.code === 'string' ? problem.code : undefined;
  const detail = typeof problem.detail === 'string' ? problem.detail : `HTTP ${response.status}`;
  if (response.status === 401 || response.status === 403) {
    throw badOrigin(origin, `it refused the edge's credentials (HTTP ${response.status}: check ORIGIN_SECRET)`);
  }
  // Every image failed on the GPU tier (corrupt files, too many pixels): per-image errors, so
  // cached images of the same request still get their rewards.
  const items = response.status < 500 ? itemErrorsOf(json, n) : undefined;
  if (items) {
    return { rewards: new Array<number | null>(n).fill(null), errors: items, timings: { queue_ms: 0, preprocess_ms: 0, inference_ms: 0, total_ms: 0 }, origin, attempts: attempts.length };
  }
  if (code === undefined || !isErrorCode(code)) throw badOrigin(origin, `HTTP ${response.status} without a known problem code`);
  const retry = Number(response.headers.get('retry-after'));
  throw new EdgeFailure(code, detail, { status: response.status, ...(Number.isFinite(retry) && retry > 0 ? { retryAfter: retry } : {}) });
}
