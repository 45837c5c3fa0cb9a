// Settings of the jobs path (vars in wrangler.toml; README "Jobs" documents
// them). Parsed per call: cheap, and tests can pass overrides in env.
import { EdgeConfigError } from '../config.js';
import type { Env } from '../env.js';

export interface JobConfig {
  /** Items per queue message: a retried chunk re-runs at most this many items. */
  chunkItems: number;
  /** How long a finished job and its results stay readable. */
  retentionSeconds: number;
  /** A chunk with no result this long after it was enqueued is enqueued again (lost message, restart). */
  stallSeconds: number;
  /** One webhook attempt's budget. */
  webhookTimeoutMs: number;
  /** http:// webhooks to loopback hosts (development only). */
  allowInsecureLoopbackWebhooks: boolean;
}

function int(env: Env, name: keyof Env, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) throw new EdgeConfigError(`${String(name)} must be a number from ${min} to ${max} (got "${String(raw)}")`);
  return v;
}

export function jobConfig(env: Env): JobConfig {
  const loop = (env.WEBHOOK_ALLOW_INSECURE_LOOPBACK ?? 'off').trim().toLowerCase();
  if (!['on', 'off', ''].includes(loop)) throw new EdgeConfigError(`WEBHOOK_ALLOW_INSECURE_LOOPBACK must be "on" or "off" (got "${env.WEBHOOK_ALLOW_INSECURE_LOOPBACK ?? ''}")`);
  return {
    chunkItems: Math.floor(int(env, 'JOB_CHUNK_ITEMS', 4, 1, 100)),
    retentionSeconds: int(env, 'JOB_RETENTION_SECONDS', 7 * 24 * 3600, 60, 90 * 24 * 3600),
    stallSeconds: int(env, 'JOB_STALL_SECONDS', 120, 1, 3600),
    webhookTimeoutMs: int(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 100, 60_000),
    allowInsecureLoopbackWebhooks: loop === 'on',
  };
}
