// /admin/keys: create, list and revoke the edge's API keys (the `imagereward
// keys` CLI talks to these). Guarded by its own secret, ADMIN_SECRET, sent as
// `Authorization: Bearer <secret>` and compared in constant time (both sides
// hashed, then crypto.subtle.timingSafeEqual: equal lengths, no early exit).
// Without ADMIN_SECRET the admin API does not exist (404), so a deployment that
// never set one exposes nothing. A created key is in the 201 answer and nowhere
// else, ever; every answer is `Cache-Control: no-store`.
import { Hono, type Context } from 'hono';
import { z } from '@hono/zod-openapi';
import type { EdgeEnv } from '../env.js';
import { edgeProblem } from '../problem-reply.js';
import { KEY_ID_PATTERN, NAME_PATTERN, TENANT_PATTERN, createKey, listKeys, revokeKey, sha256Hex } from '../auth/api-keys.js';
import { TIERS } from '../auth/tenant.js';
import { isJsonMediaType, mediaTypeOf } from '../../contracts/api/index.js';

const TENANT_MESSAGE = 'must be 1–64 characters of A-Z a-z 0-9 . _ -';

const CreateKeyBody = z.strictObject({
  tenant: z.string().regex(TENANT_PATTERN, TENANT_MESSAGE),
  name: z.string().regex(NAME_PATTERN, 'must be 1–128 printable ASCII characters').optional(),
  tier: z.enum(TIERS).default('standard'),
});

const ListKeysQuery = z.object({
  tenant: z.string().regex(TENANT_PATTERN, TENANT_MESSAGE).optional(),
  include_revoked: z.enum(['0', '1', 'true', 'false']).optional(),
});

type Issue = { path: readonly PropertyKey[]; message: string; code: string };

function invalid(c: Context<EdgeEnv>, issues: readonly Issue[], where: string): Response {
  const errors = issues.slice(0, 20).map((i) => ({ path: i.path.map(String).join('.') || where, message: i.message, code: i.code }));
  const first = errors[0];
  return edgeProblem(c, 'invalid_request', first ? `${first.path}: ${first.message}` : `the ${where} does not match the schema`, { errors });
}

/** a === b without a data-dependent early exit: both hashed to 32 bytes, then compared in constant time. */
async function secretsEqual(a: string, b: string): Promise<boolean> {
  const enc = new TextEncoder();
  const [da, db] = await Promise.all([crypto.subtle.digest('SHA-256', enc.encode(a)), crypto.subtle.digest('SHA-256', enc.encode(b))]);
  return crypto.subtle.timingSafeEqual(da, db);
}

export const adminRoutes = new Hono<EdgeEnv>();

const NO_STORE = { 'cache-control': 'no-store' } as const;

adminRoutes.use('*', async function adminAuth(c, next) {
  const secret = c.env.ADMIN_SECRET;
  if (secret === undefined || secret === '') return edgeProblem(c, 'not_found', `no route for ${c.req.method} ${c.req.path}`);
  const challenge = (error?: string) => ({ ...NO_STORE, 'www-authenticate': `Bearer realm="imagereward-admin"${error ? `, error="${error}"` : ''}` });
  const header = c.req.header('authorization');
  if (header === undefined || header.trim() === '') {
    return edgeProblem(c, 'unauthorized', 'the admin API needs "Authorization: Bearer <ADMIN_SECRET>"', { headers: challenge() });
  }
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (!match?.[1]) return edgeProblem(c, 'unauthorized', 'the Authorization header must be "Bearer <ADMIN_SECRET>"', { headers: challenge('invalid_request') });
  if (!(await secretsEqual(match[1], secret))) return edgeProblem(c, 'forbidden', 'the admin secret is wrong', { headers: NO_STORE });
  await next();
  // Every admin answer (a new key above all) stays out of caches.
  c.res.headers.set('cache-control', 'no-store');
});

adminRoutes.post('/keys', async (c) => {
  if (!isJsonMediaType(mediaTypeOf(c.req.header('content-type')))) {
    return edgeProblem(c, 'unsupported_media_type', 'the body must be application/json');
  }
  let body: unknown;
  try {
    body = JSON.parse(await c.req.text()) as unknown;
  } catch {
    return edgeProblem(c, 'invalid_json', 'the body is not valid JSON');
  }
  const parsed = CreateKeyBody.safeParse(body);
  if (!parsed.success) return invalid(c, parsed.error.issues, '(body)');
  const { tenant, tier } = parsed.data;
  const { key, record } = await createKey(c.env.API_KEYS, { tenant, tier, name: parsed.data.name ?? tenant });
  console.log(JSON.stringify({ level: 'info', event: 'api_key_created', request_id: c.get('requestId'), id: record.id, tenant, tier }));
  return c.json({ key, id: record.id, tenant: record.tenant, name: record.name, tier: record.tier, created_at: record.created_at }, 201);
});

adminRoutes.get('/keys', async (c) => {
  const parsed = ListKeysQuery.safeParse({ tenant: c.req.query('tenant'), include_revoked: c.req.query('include_revoked') });
  if (!parsed.success) return invalid(c, parsed.error.issues, '(query)');
  const includeRevoked = parsed.data.include_revoked === '1' || parsed.data.include_revoked === 'true';
  const keys = await listKeys(c.env.API_KEYS, { ...(parsed.data.tenant !== undefined ? { tenant: parsed.data.tenant } : {}), includeRevoked });
  return c.json({ keys });
});

adminRoutes.delete('/keys/:id', async (c) => {
  const id = c.req.param('id');
  if (!KEY_ID_PATTERN.test(id)) {
    return edgeProblem(c, 'invalid_request', 'id: must be 16 lower-case hex digits (the id `keys list` shows)', { errors: [{ path: 'id', message: 'must be 16 lower-case hex digits' }] });
  }
  const record = await revokeKey(c.env.API_KEYS, id);
  if (!record) return edgeProblem(c, 'not_found', `no API key with id ${id}`);
  console.log(JSON.stringify({ level: 'info', event: 'api_key_revoked', request_id: c.get('requestId'), id, tenant: record.tenant }));
  return c.json(record);
});
