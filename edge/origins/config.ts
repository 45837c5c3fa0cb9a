// The GPU origin pool's settings, read from the worker's vars and secrets.
// ORIGINS is typed by hand (a comma-separated list in wrangler.toml, .dev.vars
// or the dashboard), so it is validated strictly and a bad entry fails loudly
// with its own text in the message, instead of surfacing later as a confusing
// fetch error. Parsing is memoized on the raw strings: env is the same object
// for every request of an isolate, so this runs once per configuration.
//
// Optional vars (positive integers; defaults in parentheses). The last two
// exist so tests and operators can shorten or stretch the circuit breaker
// without a code change:
//   ORIGIN_TIMEOUT_MS         budget of one origin attempt, ms (30000)
//   ORIGIN_FAILURE_THRESHOLD  consecutive failures that open an origin's circuit (3)
//   ORIGIN_OPEN_MS            first open period of a circuit, ms; doubles on each
//                             re-open without a success in between, up to 60000 (5000)
// Fixed: at most min(3, number of origins) attempts per call; a "down" verdict
// of the cron health check is believed for 180 s (three missed cron ticks).
import type { Env } from '../env.js';

/** The bindings the origin pool reads: Env satisfies it; tests pass overrides. */
export type OriginEnv = Pick<Env, 'ORIGINS' | 'ORIGIN_SECRET' | 'ORIGIN_TIMEOUT_MS' | 'ORIGIN_FAILURE_THRESHOLD' | 'ORIGIN_OPEN_MS' | 'ORIGIN_STATE'>;

export interface OriginConfig {
  /** Normalized base URLs (no trailing slash), deduplicated, in configured order. */
  urls: string[];
  secret: string | undefined;
  attemptTimeoutMs: number;
  maxAttempts: number;
  failureThreshold: number;
  openMs: number;
  maxOpenMs: number;
  healthTtlMs: number;
}

/** A deployment mistake in the origin settings; the message names the offending value. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const DEFAULT_ATTEMPT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_ATTEMPTS = 3;
const DEFAULT_FAILURE_THRESHOLD = 3;
const DEFAULT_OPEN_MS = 5_000;
const DEFAULT_MAX_OPEN_MS = 60_000;
const DEFAULT_HEALTH_TTL_MS = 180_000;

// A handful of entries: one per distinct configuration (in production exactly
// one; tests use a few overrides). Bounded so a pathological caller cannot grow it.
const memo = new Map<string, OriginConfig>();
const MEMO_LIMIT = 16;

export function originConfig(env: OriginEnv): OriginConfig {
  const key = JSON.stringify([
    env.ORIGINS,
    env.ORIGIN_SECRET,
    env.ORIGIN_TIMEOUT_MS,
    env.ORIGIN_FAILURE_THRESHOLD,
    env.ORIGIN_OPEN_MS,
  ]);
  const known = memo.get(key);
  if (known !== undefined) return known;

  const urls = parseOrigins(env.ORIGINS ?? '');
  const openMs = positiveInt('ORIGIN_OPEN_MS', env.ORIGIN_OPEN_MS, DEFAULT_OPEN_MS);
  const config: OriginConfig = {
    urls,
    // An empty secret is a mistake of `wrangler secret put`, not a wish to send "Bearer ".
    secret: env.ORIGIN_SECRET !== undefined && env.ORIGIN_SECRET !== '' ? env.ORIGIN_SECRET : undefined,
    attemptTimeoutMs: positiveInt('ORIGIN_TIMEOUT_MS', env.ORIGIN_TIMEOUT_MS, DEFAULT_ATTEMPT_TIMEOUT_MS),
    maxAttempts: Math.max(1, Math.min(DEFAULT_MAX_ATTEMPTS, urls.length)),
    failureThreshold: positiveInt('ORIGIN_FAILURE_THRESHOLD', env.ORIGIN_FAILURE_THRESHOLD, DEFAULT_FAILURE_THRESHOLD),
    openMs,
    // A first period longer than the usual cap raises the cap with it.
    maxOpenMs: Math.max(openMs, DEFAULT_MAX_OPEN_MS),
    healthTtlMs: DEFAULT_HEALTH_TTL_MS,
  };
  if (memo.size >= MEMO_LIMIT) memo.clear();
  memo.set(key, config);
  return config;
}

/** ORIGINS → normalized, deduplicated base URLs; throws ConfigError naming the first bad entry. */
export function parseOrigins(raw: string): string[] {
  const out: string[] = [];
  for (const part of raw.split(',')) {
    const entry = part.trim();
    if (entry === '') continue;
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      throw new ConfigError(`ORIGINS entry "${entry}" is not an absolute URL (expected e.g. http://10.0.0.5:8080)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError(`ORIGINS entry "${entry}" must use http or https, not ${url.protocol}`);
    }
    // Checked on the raw text too: URL drops an empty "?" or "#".
    if (url.search !== '' || url.hash !== '' || entry.includes('?') || entry.includes('#')) {
      throw new ConfigError(`ORIGINS entry "${entry}" must not have a query or fragment`);
    }
    // Credentials in the URL would bypass ORIGIN_SECRET (and end up in logs).
    if (url.username !== '' || url.password !== '') {
      throw new ConfigError(`ORIGINS entry "${entry}" must not contain credentials; use ORIGIN_SECRET`);
    }
    // A path prefix is allowed (an origin behind a reverse proxy); request
    // paths are appended to it, so its trailing slash goes.
    const base = url.origin + url.pathname.replace(/\/+$/, '');
    if (!out.includes(base)) out.push(base);
  }
  return out;
}

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const text = raw.trim();
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(`${name} must be a positive integer, got "${raw}"`);
  }
  return value;
}
