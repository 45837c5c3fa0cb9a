// Per-key request rates on /v1/*, through the Workers rate-limiting binding:
// one `[[ratelimits]]` binding per tier (wrangler.toml), the key's tier picks
// it, and the limit is counted per key id (per client address for the
// anonymous tenant of AUTH=off). Over the limit: 429 `rate_limited` with
// Retry-After = the tier's period. The binding's counters are per location and
// approximate by design: this protects the GPU tier from one noisy key; it is
// not a billing meter.
//
// A rate-limiter outage fails OPEN (logged): losing the limit for a while is
// better than taking the whole API down with it.
import type { MiddlewareHandler } from 'hono';
import type { Env, EdgeEnv } from '../env.js';
import { edgeProblem } from '../problem-reply.js';
import type { Tier } from './tenant.js';

/**
 * Each tier's `period` in seconds — MUST match `simple = { …, period }` of the
 * tier's `[[ratelimits]]` binding in wrangler.toml (10 for trial, 60 for
 * standard and high). It is the Retry-After of a 429: the binding tells us only
 * "over", never when the window ends, so we advise one full period.
 */
export const TIER_PERIOD_SECONDS: Readonly<Record<Tier, number>> = Object.freeze({ trial: 10, standard: 60, high: 60 });

const BINDING: Readonly<Record<Tier, 'RATE_LIMIT_TRIAL' | 'RATE_LIMIT_STANDARD' | 'RATE_LIMIT_HIGH'>> = {
  trial: 'RATE_LIMIT_TRIAL',
  standard: 'RATE_LIMIT_STANDARD',
  high: 'RATE_LIMIT_HIGH',
};

/** The rate-limit binding of a tier. */
export function rateLimiterFor(env: Env, tier: Tier): RateLimit {
  return env[BINDING[tier]];
}

/** Answers 429 once the caller's key (or address) is over its tier's rate; needs `tenant` (apiKeyAuth first). */
export function rateLimit(): MiddlewareHandler<EdgeEnv> {
  return async function rateLimit(c, next) {
    const tenant = c.get('tenant') as EdgeEnv['Variables']['tenant'] | undefined;
    if (!tenant) throw new Error('rateLimit() runs before apiKeyAuth(): no tenant on the context');
    const key = tenant.keyId === 'anonymous' ? `ip:${c.req.header('cf-connecting-ip') ?? 'local'}` : `key:${tenant.keyId}`;
    let success = true;
    try {
      ({ success } = await rateLimiterFor(c.env, tenant.tier).limit({ key }));
    } catch (err) {
      console.error(
        JSON.stringify({
          level: 'error',
          event: 'rate_limit_unavailable',
          request_id: c.get('requestId'),
          tier: tenant.tier,
          message: err instanceof Error ? err.message : String(err),
        }),
      );
    }
    if (!success) {
      const period = TIER_PERIOD_SECONDS[tenant.tier];
      return edgeProblem(c, 'rate_limited', `the ${tenant.tier} tier's request rate is exceeded for this ${tenant.keyId === 'anonymous' ? 'client address' : 'API key'}; retry after ${period} s`, { retryAfter: period });
    }
    return next();
  };
}
