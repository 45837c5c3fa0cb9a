// Signing and verifying webhooks the Standard Webhooks way
// (https://www.standardwebhooks.com), so a job's receiver can check that a
// job.completed / job.failed call really comes from this service and was not
// replayed later:
//
// - the edge calls `webhookHeaders` for every delivery attempt and sends the
//   three headers it returns with the JSON body;
// - a receiver calls `verifyWebhook` with the exact raw body it received, the
//   request headers and its secret (`import { verifyWebhook } from
//   'imagereward-serve/webhooks'`), and dedupes on the returned id.
//
// The signed content is `${webhook-id}.${webhook-timestamp}.${body}`, signed
// with HMAC-SHA256 keyed by the base64-decoded part of the secret after
// "whsec_"; `webhook-signature` is "v1,<base64 HMAC>", and several such
// signatures, space-separated, may be sent (e.g. while a secret is rotated).
//
// Pure TypeScript over WebCrypto, atob/btoa and TextEncoder: runs unchanged in
// Node 20 and in workerd (no node: imports). docs/webhooks.md is the prose.

export const WEBHOOK_SECRET_PREFIX = 'whsec_';
/** How far a webhook-timestamp may be from the receiver's clock, by default (5 minutes, as the spec suggests). */
export const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;

export type WebhookVerificationFailure = 'missing_headers' | 'bad_timestamp' | 'timestamp_too_old' | 'timestamp_too_new' | 'no_matching_signature' | 'bad_secret';

export class WebhookVerificationError extends Error {
  override name = 'WebhookVerificationError';
  constructor(
    readonly reason: WebhookVerificationFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface WebhookMessage {
  /** webhook-id: the same on every attempt of one delivery, so receivers can dedupe. */
  id: string;
  /** webhook-timestamp: integer Unix seconds of this attempt. */
  timestamp: number;
  /** The exact body text sent (JSON). */
  body: string;
}

export type WebhookHeaderName = 'webhook-id' | 'webhook-timestamp' | 'webhook-signature';

const utf8 = new TextEncoder();
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** Bytes of an HMAC-SHA256. */
const SIGNATURE_BYTES = 32;

/** Decodes standard base64 (padding optional); null when `text` is not base64. */
function fromBase64(text: string): Uint8Array | null {
  // atob is forgiving (whitespace, odd padding): check the alphabet first so
  // two different texts cannot decode to the same key.
  if (!BASE64.test(text) || text.length % 4 === 1) return null;
  let bin: string;
  try {
    bin = atob(text);
  } catch {
    return null;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** A new secret: "whsec_" + base64 of `bytes` random bytes (24 to 64, as the spec recommends; default 32). */
export function generateWebhookSecret(bytes = 32): string {
  if (!Number.isInteger(bytes) || bytes < 24 || bytes > 64) throw new RangeError(`a webhook secret has 24 to 64 random bytes (got ${bytes})`);
  return WEBHOOK_SECRET_PREFIX + toBase64(crypto.getRandomValues(new Uint8Array(bytes)));
}

/**
 * The HMAC key of a secret: the base64 after "whsec_". The prefix may be left
 * out (other Standard Webhooks libraries accept a bare base64 key too).
 * Throws WebhookVerificationError('bad_secret') when it is not base64 or empty.
 */
export function parseWebhookSecret(secret: string): Uint8Array {
  if (typeof secret !== 'string') throw new WebhookVerificationError('bad_secret', 'the webhook secret must be a string');
  const text = secret.startsWith(WEBHOOK_SECRET_PREFIX) ? secret.slice(WEBHOOK_SECRET_PREFIX.length) : secret;
  const key = fromBase64(text);
  if (key === null) throw new WebhookVerificationError('bad_secret', 'the webhook secret is not "whsec_" followed by base64');
  if (key.length === 0) throw new WebhookVerificationError('bad_secret', 'the webhook secret is empty');
  return key;
}

// CryptoKey is not a global type under Node's typings; this names it in both runtimes.
type HmacKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

async function hmacKey(secret: string): Promise<HmacKey> {
  return crypto.subtle.importKey('raw', parseWebhookSecret(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
}

function signedContent(id: string, timestamp: number, body: string): Uint8Array {
  return utf8.encode(`${id}.${timestamp}.${body}`);
}

function checkMessage(msg: WebhookMessage): void {
  if (typeof msg.id !== 'string' || msg.id === '') throw new TypeError('webhook: the id must be a non-empty string');
  // A millisecond or fractional value would sign content no receiver rebuilds.
  if (!Number.isSafeInteger(msg.timestamp) || msg.timestamp < 0) throw new TypeError(`webhook: the timestamp must be integer Unix seconds (got ${msg.timestamp})`);
  if (typeof msg.body !== 'string') throw new TypeError('webhook: the body must be the exact text sent');
}

/** The `webhook-signature` value for `msg`: "v1,<base64 HMAC-SHA256>". */
export async function signWebhook(msg: WebhookMessage, secret: string): Promise<string> {
  checkMessage(msg);
  const key = await hmacKey(secret);
  const mac = await crypto.subtle.sign('HMAC', key, signedContent(msg.id, msg.timestamp, msg.body));
  return `v1,${toBase64(new Uint8Array(mac))}`;
}

/** The three headers one delivery attempt sends with `msg.body`. */
export async function webhookHeaders(msg: WebhookMessage, secret: string): Promise<Record<WebhookHeaderName, string>> {
  return {
    'webhook-id': msg.id,
    'webhook-timestamp': String(msg.timestamp),
    'webhook-signature': await signWebhook(msg, secret),
  };
}

export type WebhookRequestHeaders = Headers | Record<string, string | string[] | undefined>;

/** A header by name, case-insensitively, from a Headers or a plain object (Node's IncomingHttpHeaders included). */
function headerOf(headers: WebhookRequestHeaders, name: WebhookHeaderName): string | undefined {
  // Duck-typed: a Headers of another realm or polyfill (node-fetch, undici
  // copies) is not `instanceof` this one. A header named "get" is a string.
  if (typeof (headers as { get?: unknown }).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  for (const key of Object.keys(record)) {
    if (key.toLowerCase() !== name) continue;
    const v = record[key];
    if (v === undefined) continue;
    return Array.isArray(v) ? v.join(', ') : v;
  }
  return undefined;
}

/** The v1 signatures of a webhook-signature value, decoded; other versions and malformed entries are skipped. */
function v1Signatures(header: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  // Space-separated per the spec; a trailing comma appears when a proxy or
  // Node joined repeated header lines with ", ".
  for (const token of header.split(/\s+/)) {
    const m = /^v1,([A-Za-z0-9+/]+={0,2}),?$/.exec(token);
    if (!m || m[1] === undefined) continue;
    const sig = fromBase64(m[1]);
    // The length of a signature is public: only full-size ones are compared.
    if (sig !== null && sig.length === SIGNATURE_BYTES) out.push(sig);
  }
  return out;
}

export interface VerifyWebhookOptions {
  /** Largest distance between webhook-timestamp and now, in seconds (default 300). */
  toleranceSeconds?: number;
  /** The receiver's clock, Unix seconds (default: now). */
  now?: number;
}

/**
 * Checks a received webhook: the headers are present, the timestamp is within
 * the tolerance of now, and one of the v1 signatures is the HMAC of
 * `${id}.${timestamp}.${body}` under one of `secret` (several: rotation —
 * the old and the new secret are both accepted while the sender switches).
 * `body` must be the exact raw text received, not re-serialized JSON.
 * Returns the webhook id (dedupe on it: a delivery may be repeated) and the
 * timestamp; throws WebhookVerificationError.
 */
export async function verifyWebhook(
  body: string,
  headers: WebhookRequestHeaders,
  secret: string | readonly string[],
  opts: VerifyWebhookOptions = {},
): Promise<{ id: string; timestamp: number }> {
  const secrets = typeof secret === 'string' ? [secret] : [...secret];
  if (secrets.length === 0) throw new WebhookVerificationError('bad_secret', 'no webhook secret given');
  // Every secret is parsed before anything else: a misconfigured receiver
  // should learn so at once, not only when a signature fails to match.
  const keys = await Promise.all(secrets.map(hmacKey));

  const id = headerOf(headers, 'webhook-id');
  const ts = headerOf(headers, 'webhook-timestamp');
  const sig = headerOf(headers, 'webhook-signature');
  if (!id || !ts || !sig) throw new WebhookVerificationError('missing_headers', 'missing webhook-id, webhook-timestamp or webhook-signature');

  const trimmed = ts.trim();
  if (!/^\d{1,15}$/.test(trimmed)) throw new WebhookVerificationError('bad_timestamp', 'webhook-timestamp is not integer Unix seconds');
  const timestamp = Number(trimmed);
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const tolerance = opts.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS;
  if (now - timestamp > tolerance) throw new WebhookVerificationError('timestamp_too_old', `webhook-timestamp is more than ${tolerance} s in the past`);
  if (timestamp - now > tolerance) throw new WebhookVerificationError('timestamp_too_new', `webhook-timestamp is more than ${tolerance} s in the future`);

  const content = signedContent(id, timestamp, typeof body === 'string' ? body : String(body));
  const candidates = v1Signatures(sig);
  for (const key of keys) {
    for (const candidate of candidates) {
      // subtle.verify compares the MACs in constant time.
      if (await crypto.subtle.verify('HMAC', key, candidate, content)) return { id, timestamp };
    }
  }
  throw new WebhookVerificationError('no_matching_signature', 'no webhook-signature matches the body under the secret');
}
