// Active health checks of the GPU origins. Passive failure tracking (pool.ts)
// only learns about an origin by sending it real traffic, and only in the
// isolate that sent it; a cron trigger instead asks every origin's /readyz once
// a minute and publishes the verdict in KV, so every isolate everywhere can
// steer away from a dead or loading origin before a user request pays for it.
// Each isolate reads that verdict at most every 10 s (KV reads cost time).
import type { OriginEnv } from './config.js';
import { originConfig } from './config.js';

/** One origin's verdict in a health report. */
export interface OriginHealth {
  /** true iff /readyz answered 200. */
  healthy: boolean;
  /** The HTTP status, when the origin answered at all. */
  status?: number;
  /** Why it is unhealthy without a status: "timeout" or the network error. */
  error?: string;
  /** The model id /readyz reported, when it did. */
  model?: string;
  ms: number;
}

/** What the cron check writes to KV (ORIGIN_STATE, key "health"). */
export interface HealthReport {
  /** ISO 8601 time the check started. */
  checked_at: string;
  /** By normalized origin URL (as in OriginConfig.urls). */
  origins: Record<string, OriginHealth>;
}

export interface CheckOptions {
  /** Budget of one /readyz call (default 5000 ms). */
  timeoutMs?: number;
}

export const HEALTH_KEY = 'health';
/** Longer than several cron periods, so a stalled cron lets the verdict vanish rather than linger. */
const HEALTH_KV_TTL_SECONDS = 600;
const CHECK_TIMEOUT_MS = 5_000;
/** How long an isolate trusts its copy of the KV report before reading it again. */
const READ_CACHE_MS = 10_000;

interface View {
  report: HealthReport | null;
  loadedAt: number;
}
let view: View | undefined;
let loading: Promise<HealthReport | null> | undefined;

/** Checks every configured origin in parallel, publishes the report in KV and in this isolate's view. */
export async function checkOrigins(env: OriginEnv, opts: CheckOptions = {}): Promise<HealthReport> {
  const config = originConfig(env);
  const timeoutMs = opts.timeoutMs ?? CHECK_TIMEOUT_MS;
  const checkedAt = Date.now();
  const entries = await Promise.all(config.urls.map(async (url) => [url, await checkOne(url, config.secret, timeoutMs)] as const));
  const report: HealthReport = { checked_at: new Date(checkedAt).toISOString(), origins: Object.fromEntries(entries) };
  // Memory first: the KV write may fail, and this isolate's verdict is good either way.
  adopt(report);
  await env.ORIGIN_STATE.put(HEALTH_KEY, JSON.stringify(report), { expirationTtl: HEALTH_KV_TTL_SECONDS });
  return report;
}

async function checkOne(url: string, secret: string | undefined, timeoutMs: number): Promise<OriginHealth> {
  const started = Date.now();
  const headers: Record<string, string> = { 'x-request-id': `health-${crypto.randomUUID()}` };
  if (secret !== undefined) headers.authorization = `Bearer ${secret}`;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(`${url}/readyz`, { headers, signal });
    const result: OriginHealth = { healthy: res.status === 200, status: res.status, ms: 0 };
    const model = await readModel(res);
    if (model !== undefined) result.model = model;
    result.ms = Date.now() - started;
    return result;
  } catch (err) {
    return { healthy: false, error: signal.aborted ? 'timeout' : errorText(err), ms: Date.now() - started };
  }
}

/** The "model" of a /readyz body, if it has one; never throws (the body may be anything). */
async function readModel(res: Response): Promise<string | undefined> {
  try {
    const body: unknown = await res.json();
    if (typeof body === 'object' && body !== null && 'model' in body && typeof body.model === 'string') return body.model;
  } catch {
    // Not JSON, or the body broke off: the status already decided the verdict.
  }
  return undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}

/** The latest report (KV, cached for 10 s in this isolate); null when none was written or KV fails. */
export async function readHealth(env: OriginEnv): Promise<HealthReport | null> {
  const now = Date.now();
  if (view !== undefined && now - view.loadedAt < READ_CACHE_MS) return view.report;
  // One KV read per isolate at a time, however many requests arrive meanwhile.
  loading ??= load(env).finally(() => {
    loading = undefined;
  });
  return loading;
}

async function load(env: OriginEnv): Promise<HealthReport | null> {
  let report: HealthReport | null;
  try {
    report = parseReport(await env.ORIGIN_STATE.get(HEALTH_KEY, 'text'));
  } catch (err) {
    // Health data only steers the choice; without it every origin is a candidate.
    console.error(JSON.stringify({ level: 'warn', message: 'origin health read failed', error: errorText(err) }));
    return view?.report ?? null;
  }
  if (report === null) {
    view = { report: view?.report ?? null, loadedAt: Date.now() };
    return view.report;
  }
  adopt(report);
  return view?.report ?? report;
}

function parseReport(text: string | null): HealthReport | null {
  if (text === null) return null;
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body !== 'object' || body === null) return null;
    const { checked_at, origins } = body as Partial<HealthReport>;
    if (typeof checked_at !== 'string' || Number.isNaN(Date.parse(checked_at))) return null;
    if (typeof origins !== 'object' || origins === null) return null;
    return { checked_at, origins };
  } catch {
    return null;
  }
}

/** Keeps the newer of this isolate's report and `report` (a slow KV read must not undo a fresh check). */
function adopt(report: HealthReport): void {
  const current = view?.report;
  const keep = current !== null && current !== undefined && Date.parse(current.checked_at) > Date.parse(report.checked_at) ? current : report;
  view = { report: keep, loadedAt: Date.now() };
}

/** This isolate's current report without touching KV (for synchronous snapshots). */
export function peekHealth(): HealthReport | null {
  return view?.report ?? null;
}

/** Forgets this isolate's copy of the report (tests; the next read goes to KV). */
export function resetHealthCache(): void {
  view = undefined;
  loading = undefined;
}

/** The worker's `scheduled` handler body: one health check per cron tick. */
export async function scheduledHealthCheck(controller: ScheduledController, env: OriginEnv, _ctx: ExecutionContext): Promise<void> {
  const report = await checkOrigins(env);
  const down = Object.entries(report.origins)
    .filter(([, h]) => !h.healthy)
    .map(([url, h]) => ({ url, status: h.status, error: h.error }));
  console.log(
    JSON.stringify({ level: down.length > 0 ? 'warn' : 'info', message: 'origin health check', cron: controller.cron, origins: Object.keys(report.origins).length, down }),
  );
}
