// The edge worker's bindings (wrangler.toml) and per-request context variables:
// the one place their names and meanings are written down for TypeScript.
import type { TimingVariables } from 'hono/timing';
import type { TenantInfo } from './auth/tenant.js';

export interface Env {
  /** The model version results are cached under (part of every cache key). */
  MODEL_ID: string;
  /** Comma-separated GPU service base URLs (http(s)://host:port, no path). Empty: every score call answers 503. */
  ORIGINS: string;
  /** Shared secret sent to origins as `Authorization: Bearer …` (the GPU service's API key). Secret. */
  ORIGIN_SECRET?: string;
  /** Budget of one origin attempt, in ms (default 30000). */
  ORIGIN_TIMEOUT_MS?: string;
  /** "required" (default): Bearer API keys from API_KEYS; "off": no auth (local demo), rate limited per client IP. */
  AUTH?: string;
  /** Protects /admin/* (key management). Secret. Absent: the admin routes answer 404. */
  ADMIN_SECRET?: string;
  /** Comma-separated allowed CORS origins, or "*". Empty: no CORS headers. */
  CORS_ORIGINS?: string;
  /** Lifetime of a cached result in KV, in seconds (default 30 days; KV's minimum is 60). */
  CACHE_TTL_SECONDS?: string;
  /** "on" (default) or "off": whether {url} images are fetched by the worker. */
  URL_IMAGES?: string;
  /** Optional JSON object of ApiLimits overrides (contracts/api/limits.ts). */
  LIMITS?: string;
  /** Comma-separated hosts (or host:port) {url} images may be fetched from even though they are private/loopback (development, on-prem stores). */
  URL_FETCH_ALLOW?: string;
  /** Consecutive failures that open an origin's circuit (default 3). */
  ORIGIN_FAILURE_THRESHOLD?: string;
  /** How long an open circuit stays open before one probe, in ms (default 5000, doubling to 60000). */
  ORIGIN_OPEN_MS?: string;

  /** Items per queue message (default 4). */
  JOB_CHUNK_ITEMS?: string;
  /** How long a finished job stays readable, in seconds (default 7 days). */
  JOB_RETENTION_SECONDS?: string;
  /** A chunk without results this long after it was enqueued is enqueued again (default 120 s). */
  JOB_STALL_SECONDS?: string;
  /** Webhook retry delays in seconds, comma-separated (default 5,30,120,600,1800,7200,18000,36000). */
  WEBHOOK_RETRY_SCHEDULE?: string;
  /** One webhook attempt's budget in ms (default 10000). */
  WEBHOOK_TIMEOUT_MS?: string;
  /** "on": http:// webhooks to loopback hosts are allowed (development). Default "off". */
  WEBHOOK_ALLOW_INSECURE_LOOPBACK?: string;

  API_KEYS: KVNamespace;
  RESULTS: KVNamespace;
  ORIGIN_STATE: KVNamespace;
  RATE_LIMIT_TRIAL: RateLimit;
  RATE_LIMIT_STANDARD: RateLimit;
  RATE_LIMIT_HIGH: RateLimit;
  /** One Durable Object per job (edge/jobs/job-object.ts). */
  JOBS: DurableObjectNamespace<import('./jobs/job-object.js').JobObject>;
  /** Chunks of jobs to score (consumed by edge/jobs/queue-consumer.ts). */
  JOB_QUEUE: Queue<import('./jobs/job-object.js').ChunkMessage>;
  /** Inline images of jobs, under jobs/<job id>/<sha256>. */
  JOB_BLOBS: R2Bucket;
}

export type EdgeVariables = TimingVariables & {
  requestId: string;
  /** Set by the auth middleware on /v1/* routes. */
  tenant: TenantInfo;
};

export type EdgeEnv = { Bindings: Env; Variables: EdgeVariables };
