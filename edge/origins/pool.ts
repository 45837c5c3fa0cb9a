// Sends one scoring call to the GPU origin pool. Scoring is idempotent, so a
// call that meets a dead, hung or overloaded origin is simply replayed on
// another one; what the client sees is either an origin's real answer or, when
// no origin can take it, a prompt 503 with Retry-After — never a hang.
//
// Choice is health-aware: a per-isolate circuit breaker (passive: it counts
// this isolate's own failures) keeps traffic off an origin that keeps failing
// and lets one probe through once its open period ends; the cron health check
// (health.ts) additionally rules out origins it found down, unless this isolate
// has seen that origin succeed since. Among the candidates the least busy one
// (fewest calls in flight from this isolate) wins, ties rotating round-robin.
import type { OriginConfig, OriginEnv } from './config.js';
import { originConfig } from './config.js';
import type { HealthReport } from './health.js';
import { peekHealth, readHealth, resetHealthCache } from './health.js';

/** One try on one origin, in the order made. */
export interface Attempt {
  origin: string;
  outcome: 'ok' | 'http_error' | 'network_error' | 'timeout';
  /** The HTTP status, when the origin answered. */
  status?: number;
  ms: number;
}

export interface ForwardRequest {
  /** Path (with query, if any) appended to the origin's base URL, e.g. "/v1/score". */
  path: string;
  method?: 'GET' | 'POST';
  body?: string | ArrayBuffer | Uint8Array;
  /** Extra headers; any Authorization among them is dropped (the origin secret replaces it). */
  headers?: Record<string, string>;
  requestId: string;
  /** The client's abort: stops everything and rethrows; never counted against an origin. */
  signal?: AbortSignal;
  /** absolute Date.now() deadline for the whole forward, attempts included */
  deadlineMs?: number;
}

export interface ForwardResult {
  /** The origin's answer, body unread. */
  response: Response;
  origin: string;
  attempts: Attempt[];
}

/** Why no origin answered: none eligible, every attempt failed without an HTTP answer, or time ran out. */
export type UnavailableReason = 'no_eligible_origin' | 'all_attempts_failed' | 'deadline_exceeded';

export class OriginUnavailableError extends Error {
  override name = 'OriginUnavailableError';
  readonly code = 'origin_unavailable';
  constructor(
    message: string,
    /** Seconds until an origin may take calls again (1…30): the Retry-After to send. */
    public retryAfterSeconds: number,
    public attempts: Attempt[],
    readonly reason: UnavailableReason,
  ) {
    super(message);
  }
}

type Circuit = 'closed' | 'open' | 'half_open';

interface OriginState {
  circuit: Circuit;
  consecutiveFailures: number;
  /** While open: when the next probe may go. */
  openUntil: number;
  /** How many times the circuit opened since it last closed (drives the doubling). */
  opens: number;
  inFlight: number;
  lastSuccessAt: number | null;
  lastFailureAt: number | null;
}

// Per isolate: every request of this isolate shares what it learned.
const states = new Map<string, OriginState>();
let roundRobin = 0;

function stateOf(url: string): OriginState {
  let s = states.get(url);
  if (s === undefined) {
    s = { circuit: 'closed', consecutiveFailures: 0, openUntil: 0, opens: 0, inFlight: 0, lastSuccessAt: null, lastFailureAt: null };
    states.set(url, s);
  }
  return s;
}

const RETRYABLE_STATUSES = new Set([500, 502, 503, 504]);
const MAX_RETRY_AFTER_SECONDS = 30;

export async function forwardToOrigins(env: OriginEnv, req: ForwardRequest): Promise<ForwardResult> {
  const config = originConfig(env);
  req.signal?.throwIfAborted();
  const health = await healthOrNull(env);
  req.signal?.throwIfAborted();

  const attempts: Attempt[] = [];
  const tried = new Set<string>();
  const start = roundRobin++;
  let lastFailedResponse: Response | undefined;

  while (attempts.length < config.maxAttempts) {
    const remaining = req.deadlineMs === undefined ? Infinity : req.deadlineMs - Date.now();
    if (remaining <= 0) {
      throw unavailable(config, health, attempts, lastFailedResponse, 'deadline_exceeded', 'The deadline passed before an origin answered');
    }
    const origin = choose(config, health, tried, start);
    if (origin === undefined) break;
    tried.add(origin);
    const outcome = await attempt(config, origin, req, Math.min(config.attemptTimeoutMs, remaining));
    attempts.push(outcome.record);
    if (outcome.response !== undefined && !outcome.retryable) {
      return { response: outcome.response, origin, attempts };
    }
    // A retryable HTTP answer is kept only as the latest failure: an earlier
    // one's body is released so its connection can be reused.
    if (lastFailedResponse !== undefined) discard(lastFailedResponse);
    lastFailedResponse = outcome.response;
  }

  if (lastFailedResponse !== undefined) {
    // The last word was an origin's own 5xx problem: the caller passes it through.
    const last = attempts[attempts.length - 1];
    return { response: lastFailedResponse, origin: last?.origin ?? '', attempts };
  }
  if (attempts.length === 0) {
    throw unavailable(config, health, attempts, undefined, 'no_eligible_origin', config.urls.length === 0 ? 'No origin is configured (ORIGINS is empty)' : 'No origin is healthy');
  }
  throw unavailable(config, health, attempts, undefined, 'all_attempts_failed', `All ${attempts.length} origin attempt(s) failed`);
}

async function healthOrNull(env: OriginEnv): Promise<HealthReport | null> {
  try {
    return await readHealth(env);
  } catch {
    return null;
  }
}

function unavailable(
  config: OriginConfig,
  health: HealthReport | null,
  attempts: Attempt[],
  pending: Response | undefined,
  reason: UnavailableReason,
  message: string,
): OriginUnavailableError {
  if (pending !== undefined) discard(pending);
  return new OriginUnavailableError(message, retryAfterSeconds(config, health), attempts, reason);
}

/** Seconds until the soonest origin may take a call again, clamped to 1…30. */
function retryAfterSeconds(config: OriginConfig, health: HealthReport | null): number {
  const now = Date.now();
  let soonestMs = Infinity;
  for (const url of config.urls) {
    const s = stateOf(url);
    let waitMs = s.circuit === 'open' ? Math.max(0, s.openUntil - now) : 0;
    // A health "down" verdict holds until the next cron check, at most a minute away.
    if (markedDown(config, health, url, s, now)) waitMs = Math.max(waitMs, MAX_RETRY_AFTER_SECONDS * 1000);
    soonestMs = Math.min(soonestMs, waitMs);
  }
  if (!Number.isFinite(soonestMs)) soonestMs = MAX_RETRY_AFTER_SECONDS * 1000;
  return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(soonestMs / 1000)));
}

/** The cron check found `url` down recently, and this isolate has not seen it succeed since. */
function markedDown(config: OriginConfig, health: HealthReport | null, url: string, s: OriginState, now: number): boolean {
  const verdict = health?.origins[url];
  if (health === null || verdict === undefined || verdict.healthy) return false;
  const checkedAt = Date.parse(health.checked_at);
  if (!(now - checkedAt < config.healthTtlMs)) return false;
  return s.lastSuccessAt === null || s.lastSuccessAt <= checkedAt;
}

/** Whether the circuit lets a call through now (an open one: only as the single half-open probe). */
function circuitAdmits(s: OriginState, now: number): boolean {
  if (s.circuit === 'closed') return true;
  if (s.circuit === 'half_open') return false; // its probe is in flight
  return now >= s.openUntil;
}

/** The best untried eligible origin, or undefined when none is left. */
function choose(config: OriginConfig, health: HealthReport | null, tried: Set<string>, start: number): string | undefined {
  const now = Date.now();
  const n = config.urls.length;
  let best: { url: string; s: OriginState } | undefined;
  // Visiting in rotated order and replacing only on strictly fewer in-flight
  // calls makes ties go round-robin.
  for (let k = 0; k < n; k++) {
    const url = config.urls[(start + k) % n];
    if (url === undefined || tried.has(url)) continue;
    const s = stateOf(url);
    if (!circuitAdmits(s, now) || markedDown(config, health, url, s, now)) continue;
    if (best === undefined || s.inFlight < best.s.inFlight) best = { url, s };
  }
  if (best !== undefined && best.s.circuit === 'open') best.s.circuit = 'half_open';
  return best?.url;
}

interface AttemptOutcome {
  record: Attempt;
  response?: Response;
  retryable: boolean;
}

async function attempt(config: OriginConfig, origin: string, req: ForwardRequest, budgetMs: number): Promise<AttemptOutcome> {
  const s = stateOf(origin);
  const started = Date.now();
  // Our own timer rather than AbortSignal.timeout: once the headers are in, the
  // budget is re-armed for reading the body, so a response that arrived just
  // before its deadline can still be read, yet a body that stalls cannot hang.
  const timer = new AbortController();
  let timedOut = false;
  const arm = (ms: number): ReturnType<typeof setTimeout> =>
    setTimeout(() => {
      timedOut = true;
      timer.abort(new DOMException(`origin attempt exceeded ${ms} ms`, 'TimeoutError'));
    }, ms);
  const pending = arm(budgetMs);
  const signal = req.signal === undefined ? timer.signal : AbortSignal.any([req.signal, timer.signal]);
  const init: RequestInit = { method: req.method ?? 'POST', headers: originHeaders(config, req), signal };
  if (req.body !== undefined) init.body = req.body;

  s.inFlight++;
  let response: Response;
  try {
    response = await fetch(`${origin}${req.path}`, init);
  } catch (err) {
    clearTimeout(pending);
    s.inFlight--;
    if (req.signal?.aborted === true) {
      // The client left: not the origin's fault. An interrupted probe leaves
      // the circuit open with its period over, so the next call probes again.
      if (s.circuit === 'half_open') s.circuit = 'open';
      throw req.signal.reason ?? err;
    }
    recordFailure(config, s);
    return { record: { origin, outcome: timedOut ? 'timeout' : 'network_error', ms: Date.now() - started }, retryable: true };
  }
  clearTimeout(pending);
  s.inFlight--;
  const ms = Date.now() - started;
  if (RETRYABLE_STATUSES.has(response.status)) {
    recordFailure(config, s);
    arm(config.attemptTimeoutMs); // the caller may still read this body (the last failure is passed through)
    return { record: { origin, outcome: 'http_error', status: response.status, ms }, response, retryable: true };
  }
  // Any other answer (2xx, 4xx…) proves the origin alive and is the answer.
  recordSuccess(s);
  const bodyBudget = req.deadlineMs === undefined ? config.attemptTimeoutMs : Math.max(1, Math.min(config.attemptTimeoutMs, req.deadlineMs - Date.now()));
  arm(bodyBudget);
  return { record: { origin, outcome: response.ok ? 'ok' : 'http_error', status: response.status, ms }, response, retryable: false };
}

function originHeaders(config: OriginConfig, req: ForwardRequest): Headers {
  const headers = new Headers(req.headers);
  // The client's credentials are for the edge; origins only ever see the pool's secret.
  headers.delete('authorization');
  if (config.secret !== undefined) headers.set('authorization', `Bearer ${config.secret}`);
  headers.set('x-request-id', req.requestId);
  return headers;
}

function recordSuccess(s: OriginState): void {
  s.circuit = 'closed';
  s.consecutiveFailures = 0;
  s.opens = 0;
  s.lastSuccessAt = Date.now();
}

function recordFailure(config: OriginConfig, s: OriginState): void {
  const now = Date.now();
  s.consecutiveFailures++;
  s.lastFailureAt = now;
  if (s.circuit === 'half_open' || (s.circuit === 'closed' && s.consecutiveFailures >= config.failureThreshold)) {
    // Each re-open without a success in between waits twice as long, up to the cap.
    s.circuit = 'open';
    s.openUntil = now + Math.min(config.maxOpenMs, config.openMs * 2 ** s.opens);
    s.opens++;
  }
}

function discard(res: Response): void {
  res.body?.cancel().catch(() => {});
}

/** Each configured origin as this isolate sees it (for /healthz); health from this isolate's last-read report. */
export function originSnapshot(env: OriginEnv): {
  url: string;
  state: 'closed' | 'open' | 'half_open';
  healthy: boolean | null;
  consecutiveFailures: number;
  inFlight: number;
}[] {
  const config = originConfig(env);
  const health = peekHealth();
  const now = Date.now();
  return config.urls.map((url) => {
    const s = stateOf(url);
    const state = s.circuit === 'open' && now >= s.openUntil ? 'half_open' : s.circuit;
    const verdict = health?.origins[url];
    let healthy: boolean | null = null;
    if (health !== null && verdict !== undefined && now - Date.parse(health.checked_at) < config.healthTtlMs) {
      healthy = !markedDown(config, health, url, s, now);
    }
    return { url, state, healthy, consecutiveFailures: s.consecutiveFailures, inFlight: s.inFlight };
  });
}

/** Forgets everything this isolate learned about the origins (tests). */
export function resetOriginState(): void {
  states.clear();
  roundRobin = 0;
  resetHealthCache();
}
