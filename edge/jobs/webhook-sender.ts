// One webhook delivery attempt from the edge, and the schedule of the next
// ones. The job's Durable Object owns the delivery state (attempt count, log,
// alarm); this file only knows how to make one signed POST and classify what
// came back, so the retry policy can be decided in one place:
//
//   delivered  2xx                          done
//   gone       410                          the receiver wants no more: stop for good
//   retry      anything else (non-2xx, redirect, network error, timeout),
//              with retryAfterSeconds on a 429/503 carrying Retry-After
//   refused    the URL is not one we call (checked before any fetch; the URL
//              of a stored job does not change, so retrying is pointless)
//
// The URL policy mirrors the image fetcher's (edge/images/fetch-image.ts):
// the worker must not become a way to poke at private networks. A webhook is
// never a reason to follow a redirect: the receiver's URL is what the client
// registered, and a redirect could point anywhere.
import { webhookHeaders, WebhookVerificationError } from '../../contracts/webhooks.js';
import { EdgeConfigError } from '../config.js';
import { forbiddenHostReason } from '../images/fetch-image.js';

export interface DeliveryTarget {
  url: string;
  /** "whsec_…" signing secret. */
  secret: string;
}

export interface DeliveryMessage {
  /** webhook-id: the SAME on every attempt of this delivery (receivers dedupe on it). */
  id: string;
  type: 'job.completed' | 'job.failed';
  /** JSON text of the payload, sent and signed byte for byte. */
  body: string;
}

export interface DeliveryOutcome {
  outcome: 'delivered' | 'retry' | 'gone' | 'refused';
  /** The receiver's HTTP status, when it answered. */
  status?: number;
  /** From a 429/503 Retry-After, capped at 24 h. */
  retryAfterSeconds?: number;
  error?: string;
  /** Duration of the attempt. */
  ms: number;
}

export interface DeliverOptions {
  /** Budget of the attempt (connect, answer and the capped body read). */
  timeoutMs: number;
  /** webhook-timestamp of this attempt (default: now). */
  nowSeconds?: number;
  /** http:// (and https://) to loopback hosts: development and tests only. */
  allowInsecureLoopback: boolean;
}

export const WEBHOOK_USER_AGENT = 'imagereward-serve-webhooks/1';
/** Most bytes of an answer read: enough for an error message, too little to hold the worker. */
export const MAX_RESPONSE_BYTES = 4096;
/** Longest wait a Retry-After can ask for. */
export const MAX_RETRY_AFTER_SECONDS = 24 * 3600;
/** Longest error text recorded in the delivery log. */
const MAX_ERROR_CHARS = 200;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** null when `url` may be called as a webhook, else why not. */
export function checkWebhookUrl(url: string, opts: { allowInsecureLoopback: boolean }): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not an absolute URL';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return `only https webhook URLs are called (got ${u.protocol})`;
  // Credentials in a URL end up in logs and in the job as GET returns it.
  if (u.username !== '' || u.password !== '') return 'the URL carries credentials (user:password@)';
  const host = u.hostname.replace(/\.+$/, '');
  if (host === '') return 'the URL has no host';
  const loopbackAllowed = opts.allowInsecureLoopback && LOOPBACK_HOSTS.has(host);
  if (u.protocol === 'http:') {
    if (loopbackAllowed) return null;
    return opts.allowInsecureLoopback ? 'http is only allowed to loopback hosts (127.0.0.1, [::1], localhost); use https' : 'webhook URLs must be https';
  }
  if (loopbackAllowed) return null;
  return forbiddenHostReason(host);
}

/** Makes one signed POST of `msg` to `target` and says what came of it. Never throws. */
export async function deliverWebhook(target: DeliveryTarget, msg: DeliveryMessage, opts: DeliverOptions): Promise<DeliveryOutcome> {
  const started = Date.now();
  const elapsed = (): number => Date.now() - started;
  const refusal = checkWebhookUrl(target.url, opts);
  if (refusal !== null) return { outcome: 'refused', error: `webhook URL refused: ${refusal}`, ms: 0 };

  let signed: Record<string, string>;
  try {
    const timestamp = opts.nowSeconds ?? Math.floor(Date.now() / 1000);
    signed = await webhookHeaders({ id: msg.id, timestamp, body: msg.body }, target.secret);
  } catch (err) {
    // A secret that does not parse will not parse on the next attempt either.
    if (err instanceof WebhookVerificationError) return { outcome: 'refused', error: `cannot sign: ${err.message}`, ms: elapsed() };
    return { outcome: 'refused', error: `cannot sign: ${errorText(err)}`, ms: elapsed() };
  }

  const signal = AbortSignal.timeout(opts.timeoutMs);
  let res: Response;
  try {
    res = await fetch(target.url, {
      method: 'POST',
      headers: { ...signed, 'content-type': 'application/json', 'user-agent': WEBHOOK_USER_AGENT },
      body: msg.body,
      redirect: 'manual',
      signal,
    });
  } catch (err) {
    const error = signal.aborted ? `timed out after ${opts.timeoutMs} ms` : `network error: ${errorText(err)}`;
    return { outcome: 'retry', error: clip(error), ms: elapsed() };
  }

  const status = res.status;
  // Read a little of the answer (an error message is useful in the log), then
  // let go of the connection whatever the receiver still sends.
  const text = await readHead(res, MAX_RESPONSE_BYTES, signal);
  const ms = elapsed();
  if (status >= 200 && status <= 299) return { outcome: 'delivered', status, ms };
  if (status === 410) return { outcome: 'gone', status, error: clip(`HTTP 410${said(text)}`), ms };
  if (status >= 300 && status <= 399) return { outcome: 'retry', status, error: 'redirect not followed', ms };
  const out: DeliveryOutcome = { outcome: 'retry', status, error: clip(`HTTP ${status}${said(text)}`), ms };
  if (status === 429 || status === 503) {
    const after = parseRetryAfter(res.headers.get('retry-after'), Date.now());
    if (after !== null) out.retryAfterSeconds = after;
  }
  return out;
}

/** Seconds from a Retry-After value (delta-seconds or an HTTP date), capped at 24 h; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs: number): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (v === '') return null;
  if (/^\d+$/.test(v)) return Math.min(Number(v), MAX_RETRY_AFTER_SECONDS);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.min(Math.max(0, Math.ceil((at - nowMs) / 1000)), MAX_RETRY_AFTER_SECONDS);
}

/** Up to `maxBytes` of the body as text (lossy UTF-8); the rest is cancelled. Gives up quietly on the timeout. */
async function readHead(res: Response, maxBytes: number, signal: AbortSignal): Promise<string> {
  if (res.body === null) return '';
  const reader = res.body.getReader();
  let onAbort: (() => void) | undefined;
  // A receiver that sends headers and then trickles must not hold the worker
  // past the attempt's budget: each read races the timeout.
  const aborted = new Promise<null>((resolve) => {
    onAbort = () => resolve(null);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  const chunks: Uint8Array[] = [];
  let total = 0;
  let finished = false;
  try {
    while (total < maxBytes) {
      const read = reader.read();
      read.catch(() => undefined); // when the timeout wins, this read still settles later
      const r = await Promise.race([read, aborted]);
      if (r === null) break;
      if (r.done) {
        finished = true;
        break;
      }
      chunks.push(r.value);
      total += r.value.byteLength;
    }
  } catch {
    // A body that breaks off is not the receiver's answer; the status is.
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
    if (!finished) reader.cancel().catch(() => undefined);
  }
  const bytes = new Uint8Array(Math.min(total, maxBytes));
  let at = 0;
  for (const c of chunks) {
    if (at >= bytes.length) break;
    const piece = c.subarray(0, bytes.length - at);
    bytes.set(piece, at);
    at += piece.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

/** ": <what the receiver said>" on one line, or nothing. */
function said(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line === '' ? '' : `: ${line}`;
}

function clip(s: string): string {
  return s.length > MAX_ERROR_CHARS ? `${s.slice(0, MAX_ERROR_CHARS - 1)}…` : s;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------
// Retry schedule

/**
 * Seconds to wait before each retry after the first attempt: 8 retries,
 * backing off from seconds to hours, about 17 hours in all — long enough to
 * ride out a receiver's outage overnight.
 */
export const DEFAULT_RETRY_SCHEDULE_SECONDS: readonly number[] = Object.freeze([5, 30, 120, 600, 1800, 7200, 18000, 36000]);
const MAX_SCHEDULE_ENTRIES = 20;

/**
 * The retry schedule: WEBHOOK_RETRY_SCHEDULE (comma-separated seconds,
 * fractions allowed so tests can wait 0.2 s) or the default. A bad value is
 * a deployment error (EdgeConfigError), not silently the default.
 */
export function retrySchedule(env: { WEBHOOK_RETRY_SCHEDULE?: string }): number[] {
  const raw = env.WEBHOOK_RETRY_SCHEDULE;
  if (raw === undefined || raw.trim() === '') return [...DEFAULT_RETRY_SCHEDULE_SECONDS];
  const parts = raw.split(',').map((s) => s.trim());
  if (parts.length > MAX_SCHEDULE_ENTRIES) throw new EdgeConfigError(`WEBHOOK_RETRY_SCHEDULE has ${parts.length} entries (at most ${MAX_SCHEDULE_ENTRIES})`);
  return parts.map((p) => {
    // Number('') is 0 and Number(' 1e3 ') parses: only plain decimals pass.
    const v = /^\d+(\.\d+)?$|^\.\d+$/.test(p) ? Number(p) : NaN;
    if (!Number.isFinite(v) || v <= 0) throw new EdgeConfigError(`WEBHOOK_RETRY_SCHEDULE must be comma-separated positive seconds (got "${raw}")`);
    return v;
  });
}

/**
 * Seconds until the next attempt after `attemptNumber` attempts (1-based) have
 * failed, or null to give up (the schedule is used up). A Retry-After longer
 * than the schedule's delay wins, capped at 24 h; a shorter one is ignored.
 */
export function nextDelaySeconds(schedule: readonly number[], attemptNumber: number, retryAfterSeconds?: number): number | null {
  if (!Number.isInteger(attemptNumber) || attemptNumber < 1) return null;
  const delay = schedule[attemptNumber - 1];
  if (delay === undefined) return null;
  if (retryAfterSeconds === undefined || !Number.isFinite(retryAfterSeconds)) return delay;
  return Math.max(delay, Math.min(retryAfterSeconds, MAX_RETRY_AFTER_SECONDS));
}
