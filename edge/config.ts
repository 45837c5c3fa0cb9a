// Settings the edge reads from its vars (wrangler.toml [vars], `wrangler dev
// --var`, or the dashboard), parsed once per isolate per distinct value. A bad
// value is a deployment error: it answers 500 `internal` with a message naming
// the variable (and logs it), instead of silently running with a default.
import { resolveLimits, type ApiLimits } from '../contracts/api/index.js';
import type { Env } from './env.js';

export class EdgeConfigError extends Error {
  override name = 'EdgeConfigError';
}

let limitsMemo: { raw: string | undefined; limits: ApiLimits } | undefined;

/** The request limits of the edge: DEFAULT_LIMITS with the LIMITS var's JSON overrides. */
export function edgeLimits(env: Env): ApiLimits {
  const raw = env.LIMITS;
  if (limitsMemo && limitsMemo.raw === raw) return limitsMemo.limits;
  let overrides: Partial<ApiLimits> = {};
  if (raw !== undefined && raw.trim() !== '') {
    try {
      overrides = JSON.parse(raw) as Partial<ApiLimits>;
    } catch (err) {
      throw new EdgeConfigError(`LIMITS is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof overrides !== 'object' || overrides === null || Array.isArray(overrides)) throw new EdgeConfigError('LIMITS must be a JSON object');
  }
  let limits: ApiLimits;
  try {
    limits = resolveLimits(overrides);
  } catch (err) {
    throw new EdgeConfigError(`LIMITS: ${(err as Error).message}`);
  }
  limitsMemo = { raw, limits };
  return limits;
}

/** Whether {url} images are fetched by the worker (URL_IMAGES, default on). */
export function urlImagesEnabled(env: Env): boolean {
  const v = (env.URL_IMAGES ?? 'on').trim().toLowerCase();
  if (v === 'on' || v === 'true' || v === '1' || v === '') return true;
  if (v === 'off' || v === 'false' || v === '0') return false;
  throw new EdgeConfigError(`URL_IMAGES must be "on" or "off" (got "${env.URL_IMAGES ?? ''}")`);
}

/** The CORS allow list (CORS_ORIGINS): [] = no CORS, ['*'] = any origin. */
export function corsOrigins(env: Env): string[] {
  return (env.CORS_ORIGINS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** The model id results are labelled and cached under. */
export function modelId(env: Env): string {
  const id = (env.MODEL_ID ?? '').trim();
  if (id === '') throw new EdgeConfigError('MODEL_ID must be set (the model version every cache key includes)');
  return id;
}
