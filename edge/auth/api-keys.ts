// The edge's API keys, kept in the API_KEYS KV namespace. A key is shown once,
// when it is created; the store keeps only its SHA-256, so a leaked KV dump (or
// a curious operator) cannot call the API. A request's key is found by hashing
// it and reading `key:<hex sha256>`: no comparison of key material ever happens
// in our code, hence nothing to time. The record is stored twice: as the value
// (what a lookup reads) and as the entry's metadata (so a listing needs no gets).
//
// Revocation marks the record (revoked_at) instead of deleting it, for audit.
// Lookups read KV with cacheTtl 60: a revocation takes up to ~60 s to reach
// every Cloudflare location (and KV itself is eventually consistent).
import { TIERS, type Tier } from './tenant.js';
import { sha256Hex } from '../../contracts/cache-key.js';

/** The one SHA-256 helper (contracts/cache-key.ts), re-exported for the admin routes and tests. */
export { sha256Hex };

export interface StoredKey {
  /** First 16 hex digits of the key's sha256: names the key in listings, logs and revocations. */
  id: string;
  tenant: string;
  name: string;
  tier: Tier;
  /** ISO 8601. */
  created_at: string;
  /** ISO 8601; set once the key is revoked (the record stays for audit). */
  revoked_at?: string;
}

/** Every key starts with this, so a leaked one is recognisable (secret scanners, logs). */
export const KEY_PREFIX = 'irk_';
/** `irk_` + 32 random bytes in base64url (43 characters, no padding). */
export const KEY_PATTERN = /^irk_[A-Za-z0-9_-]{43}$/;
/** A key id: the first 16 hex digits of its sha256. */
export const KEY_ID_PATTERN = /^[0-9a-f]{16}$/;
/** Tenant ids: 1–64 of [A-Za-z0-9._-]. */
export const TENANT_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/**
 * Key names: 1–128 printable ASCII characters (space to ~). ASCII keeps the
 * record's KV metadata well under its 1024-byte limit and listings free of
 * terminal or bidi tricks.
 */
export const NAME_PATTERN = /^[\x20-\x7e]{1,128}$/;

/** KV key prefix of every stored key. */
const PREFIX = 'key:';
/** Seconds a location may serve a cached lookup (KV's cacheTtl): the revocation delay. */
export const LOOKUP_CACHE_TTL_SECONDS = 60;

/** A createKey input that breaks the rules above (the admin route validates first; this is the store's own guard). */
export class InvalidKeyInput extends Error {
  override name = 'InvalidKeyInput';
}

/** Lower-case hex SHA-256 of a string's UTF-8 bytes. */
function base64url(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function isTier(v: unknown): v is Tier {
  return typeof v === 'string' && (TIERS as readonly string[]).includes(v);
}

/** A KV value or metadata that is a well-formed record (anything else is treated as absent). */
function asStoredKey(v: unknown): StoredKey | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (typeof r.id !== 'string' || typeof r.tenant !== 'string' || typeof r.name !== 'string' || !isTier(r.tier) || typeof r.created_at !== 'string') return undefined;
  if (r.revoked_at !== undefined && typeof r.revoked_at !== 'string') return undefined;
  const out: StoredKey = { id: r.id, tenant: r.tenant, name: r.name, tier: r.tier, created_at: r.created_at };
  if (typeof r.revoked_at === 'string') out.revoked_at = r.revoked_at;
  return out;
}

/** A KV value parsed as JSON; undefined when absent or not JSON. */
async function getJson(kv: KVNamespace, kvKey: string, options: { cacheTtl?: number } = {}): Promise<unknown> {
  const text = await kv.get(kvKey, { type: 'text', ...options });
  if (text === null) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

async function store(kv: KVNamespace, kvKey: string, record: StoredKey): Promise<void> {
  await kv.put(kvKey, JSON.stringify(record), { metadata: record });
}

/** Makes a new key for `tenant`; the returned `key` is the only copy that will ever exist. */
export async function createKey(kv: KVNamespace, input: { tenant: string; name: string; tier: Tier }): Promise<{ key: string; record: StoredKey }> {
  if (!TENANT_PATTERN.test(input.tenant)) throw new InvalidKeyInput('tenant must be 1–64 characters of A-Z a-z 0-9 . _ -');
  if (!NAME_PATTERN.test(input.name)) throw new InvalidKeyInput('name must be 1–128 printable ASCII characters');
  if (!isTier(input.tier)) throw new InvalidKeyInput(`tier must be one of ${TIERS.join(', ')}`);
  const key = KEY_PREFIX + base64url(crypto.getRandomValues(new Uint8Array(32)));
  const hash = await sha256Hex(key);
  const record: StoredKey = { id: hash.slice(0, 16), tenant: input.tenant, name: input.name, tier: input.tier, created_at: new Date().toISOString() };
  await store(kv, PREFIX + hash, record);
  return { key, record };
}

/**
 * The live record of a presented key, or undefined when it is malformed (no KV
 * read at all), unknown or revoked. One KV get, cached for up to
 * LOOKUP_CACHE_TTL_SECONDS at the location: revocations propagate within ~60 s.
 */
export async function findKey(kv: KVNamespace, token: string): Promise<StoredKey | undefined> {
  if (!KEY_PATTERN.test(token)) return undefined;
  const value = await getJson(kv, PREFIX + (await sha256Hex(token)), { cacheTtl: LOOKUP_CACHE_TTL_SECONDS });
  const record = asStoredKey(value);
  return record && record.revoked_at === undefined ? record : undefined;
}

/** Every entry under `prefix` with its record (from metadata; a get only for an entry written without it). */
async function listEntries(kv: KVNamespace, prefix: string): Promise<{ kvKey: string; record: StoredKey }[]> {
  const out: { kvKey: string; record: StoredKey }[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page: KVNamespaceListResult<unknown, string> = await kv.list({ prefix, ...(cursor !== undefined ? { cursor } : {}) });
    for (const k of page.keys) {
      const record = asStoredKey(k.metadata) ?? asStoredKey(await getJson(kv, k.name));
      if (record) out.push({ kvKey: k.name, record });
    }
    if (page.list_complete) break;
    cursor = page.cursor;
  }
  return out;
}

/** The stored keys (never the keys themselves), oldest first; revoked ones only with includeRevoked. */
export async function listKeys(kv: KVNamespace, opts: { tenant?: string; includeRevoked?: boolean } = {}): Promise<StoredKey[]> {
  const entries = await listEntries(kv, PREFIX);
  return entries
    .map((e) => e.record)
    .filter((r) => (opts.tenant === undefined || r.tenant === opts.tenant) && (opts.includeRevoked === true || r.revoked_at === undefined))
    .sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1));
}

/**
 * Marks the key `id` revoked (the record stays, with revoked_at) and returns it;
 * undefined for an unknown or malformed id. Revoking twice keeps the first
 * revoked_at. Found through a list by prefix (`key:<id>`): the id is the start
 * of the hash, so exactly one entry matches (a 64-bit collision is not a
 * practical concern; should one happen, every match is revoked).
 */
export async function revokeKey(kv: KVNamespace, id: string): Promise<StoredKey | undefined> {
  if (!KEY_ID_PATTERN.test(id)) return undefined;
  const entries = await listEntries(kv, PREFIX + id);
  let result: StoredKey | undefined;
  for (const { kvKey, record } of entries) {
    if (record.id !== id) continue;
    if (record.revoked_at === undefined) {
      record.revoked_at = new Date().toISOString();
      await store(kv, kvKey, record);
    }
    result ??= record;
  }
  return result;
}
