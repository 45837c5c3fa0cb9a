// Who is calling /v1/*: the API key of `Authorization: Bearer <key>`, looked up
// by its SHA-256 in KV (edge/auth/api-keys.ts), or — with AUTH=off, for a local
// demo — the anonymous tenant, rate limited per client address. A refusal is a
// 401 `unauthorized` problem with the RFC 6750 challenge (WWW-Authenticate),
// whose error= tells a malformed header from a key that is not valid. Because
// the lookup is by hash, no secret-dependent comparison of key material
// happens here; revoked keys stop working within ~60 s (KV's lookup cache).
import type { Context, MiddlewareHandler } from 'hono';
import type { EdgeEnv } from '../env.js';
import { edgeProblem } from '../problem-reply.js';
import { findKey } from './api-keys.js';
import type { TenantInfo } from './tenant.js';

/** The tenant of every request when AUTH=off. */
export const ANONYMOUS_TENANT: TenantInfo = Object.freeze({ tenant: 'anonymous', keyId: 'anonymous', tier: 'standard' });

/** RFC 6750's b64token (the only token syntax Bearer allows). */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

function challenge(error?: 'invalid_request' | 'invalid_token'): string {
  return `Bearer realm="imagereward"${error ? `, error="${error}"` : ''}`;
}

function unauthorized(c: Context<EdgeEnv>, detail: string, error?: 'invalid_request' | 'invalid_token'): Response {
  return edgeProblem(c, 'unauthorized', detail, { headers: { 'www-authenticate': challenge(error) } });
}

/** The AUTH var: "required" (absent or empty too) or "off"; anything else is a deployment mistake. */
function authMode(value: string | undefined): 'required' | 'off' | undefined {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '' || v === 'required') return 'required';
  if (v === 'off') return 'off';
  return undefined;
}

/** Sets `tenant` from the request's API key (or the anonymous tenant with AUTH=off), or answers 401. */
export function apiKeyAuth(): MiddlewareHandler<EdgeEnv> {
  return async function apiKeyAuth(c, next) {
    const mode = authMode(c.env.AUTH);
    if (mode === undefined) {
      // Fail closed: a typo must not open the API to everyone.
      console.error(JSON.stringify({ level: 'error', event: 'config', request_id: c.get('requestId'), message: `AUTH must be "required" or "off", got ${JSON.stringify(c.env.AUTH)}` }));
      return edgeProblem(c, 'internal', `the edge is misconfigured: AUTH must be "required" or "off" (got ${JSON.stringify(c.env.AUTH)})`);
    }
    if (mode === 'off') {
      c.set('tenant', ANONYMOUS_TENANT);
      return next();
    }
    const header = c.req.header('authorization');
    if (header === undefined || header.trim() === '') return unauthorized(c, 'an API key is required: send "Authorization: Bearer <key>"');
    const token = BEARER.exec(header)?.[1];
    if (token === undefined) return unauthorized(c, 'the Authorization header must be "Bearer <key>"', 'invalid_request');
    const record = await findKey(c.env.API_KEYS, token);
    if (!record) return unauthorized(c, 'the API key is not valid (unknown or revoked)', 'invalid_token');
    c.set('tenant', { tenant: record.tenant, keyId: record.id, tier: record.tier });
    return next();
  };
}
