// edge/jobs/webhook-sender.ts inside workerd, against the loopback webhook
// receiver of the global setup (support/webhook-receiver.ts): every outcome of
// one delivery attempt, the signed headers as a receiver sees them, the URL
// policy, and the retry schedule. The receiver is http on 127.0.0.1, so every
// test that reaches it allows insecure loopback — as `wrangler dev` would.
import { beforeEach, describe, expect, inject, it } from 'vitest';
import { verifyWebhook } from '../../contracts/webhooks.js';
import { EdgeConfigError } from '../../edge/config.js';
import {
  DEFAULT_RETRY_SCHEDULE_SECONDS,
  MAX_RETRY_AFTER_SECONDS,
  WEBHOOK_USER_AGENT,
  checkWebhookUrl,
  deliverWebhook,
  nextDelaySeconds,
  parseRetryAfter,
  retrySchedule,
  type DeliveryMessage,
} from '../../edge/jobs/webhook-sender.js';
import type { ReceivedWebhook, ReceiverMode } from './support/webhook-receiver.js';

const base = inject('webhookReceiver');
const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const target = { url: `${base}/hooks/jobs?tenant=t1`, secret };
const opts = { timeoutMs: 5_000, allowInsecureLoopback: true };
const payload = { type: 'job.completed', timestamp: '2026-05-03T10:00:00.000Z', data: { id: 'job_abc', object: 'job', status: 'completed' } };
const msg: DeliveryMessage = { id: 'msg_job_abc_completed', type: 'job.completed', body: JSON.stringify(payload) };

async function control(mode: ReceiverMode, seconds?: number): Promise<void> {
  const res = await fetch(`${base}/__control`, { method: 'POST', body: JSON.stringify({ mode, seconds }) });
  expect(res.status).toBe(204);
}

async function received(): Promise<ReceivedWebhook[]> {
  return (await (await fetch(`${base}/__log`)).json()) as ReceivedWebhook[];
}

beforeEach(async () => {
  expect((await fetch(`${base}/__reset`, { method: 'POST' })).status).toBe(204);
});

describe('deliverWebhook: outcomes', () => {
  it('2xx → delivered, with a POST the receiver can verify', async () => {
    const before = Math.floor(Date.now() / 1000);
    const out = await deliverWebhook(target, msg, opts);
    expect(out).toMatchObject({ outcome: 'delivered', status: 204 });
    expect(out.error).toBeUndefined();
    expect(out.ms).toBeGreaterThanOrEqual(0);

    const [call, ...more] = await received();
    expect(more).toHaveLength(0);
    expect(call).toBeDefined();
    if (!call) return;
    expect(call.method).toBe('POST');
    expect(call.path).toBe('/hooks/jobs?tenant=t1');
    expect(call.body).toBe(msg.body);
    expect(call.headers['content-type']).toBe('application/json');
    expect(call.headers['user-agent']).toBe(WEBHOOK_USER_AGENT);
    expect(call.headers['webhook-id']).toBe(msg.id);
    const ts = Number(call.headers['webhook-timestamp']);
    expect(Math.abs(ts - before)).toBeLessThanOrEqual(5); // fresh
    await expect(verifyWebhook(call.body, call.headers, secret)).resolves.toEqual({ id: msg.id, timestamp: ts });
  });

  it('signs each attempt afresh (new timestamp and signature) under the SAME webhook-id', async () => {
    const t0 = Math.floor(Date.now() / 1000);
    await deliverWebhook(target, msg, { ...opts, nowSeconds: t0 - 60 });
    await deliverWebhook(target, msg, { ...opts, nowSeconds: t0 });
    const [a, b] = await received();
    expect(a?.headers['webhook-id']).toBe(msg.id);
    expect(b?.headers['webhook-id']).toBe(msg.id);
    expect(a?.headers['webhook-timestamp']).toBe(String(t0 - 60));
    expect(b?.headers['webhook-timestamp']).toBe(String(t0));
    expect(a?.headers['webhook-signature']).not.toBe(b?.headers['webhook-signature']);
    for (const call of [a, b]) if (call) await expect(verifyWebhook(call.body, call.headers, secret, { now: t0 })).resolves.toMatchObject({ id: msg.id });
  });

  it('410 → gone (stop for good)', async () => {
    await control('gone');
    expect(await deliverWebhook(target, msg, opts)).toMatchObject({ outcome: 'gone', status: 410 });
  });

  it('500 → retry, with what the receiver said', async () => {
    await control('fail500');
    const out = await deliverWebhook(target, msg, opts);
    expect(out).toMatchObject({ outcome: 'retry', status: 500, error: 'HTTP 500: receiver failed' });
    expect(out.retryAfterSeconds).toBeUndefined();
  });

  it('503 + Retry-After → retry with retryAfterSeconds', async () => {
    await control('retry_after', 90);
    expect(await deliverWebhook(target, msg, opts)).toMatchObject({ outcome: 'retry', status: 503, retryAfterSeconds: 90 });
  });

  it('a Retry-After over 24 h is capped', async () => {
    await control('retry_after', 7 * 24 * 3600);
    expect(await deliverWebhook(target, msg, opts)).toMatchObject({ outcome: 'retry', retryAfterSeconds: MAX_RETRY_AFTER_SECONDS });
  });

  it('a redirect is not followed → retry', async () => {
    await control('redirect');
    expect(await deliverWebhook(target, msg, opts)).toMatchObject({ outcome: 'retry', status: 307, error: 'redirect not followed' });
    const calls = await received();
    expect(calls.map((c) => c.path)).toEqual(['/hooks/jobs?tenant=t1']); // /redirected never asked for
  });

  it('a receiver that never answers → retry after the timeout', async () => {
    await control('hang');
    const started = Date.now();
    const out = await deliverWebhook(target, msg, { ...opts, timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(out).toMatchObject({ outcome: 'retry', error: 'timed out after 300 ms' });
    expect(out.status).toBeUndefined();
  });

  it('a network error (nothing listening) → retry', async () => {
    // Port 9 (discard) on loopback: nothing listens in the test environment.
    // (workerd logs the refused connect as an "uncaught exception" of its own;
    // the test still sees fetch reject, and the sender turns it into a retry.)
    const out = await deliverWebhook({ url: 'http://127.0.0.1:9/hook', secret }, msg, opts);
    expect(out.outcome).toBe('retry');
    expect(out.error).toMatch(/network error|timed out/);
  });

  it('reads at most 4 KiB of a huge answer and returns promptly', async () => {
    await control('huge'); // 64 MiB, streamed
    const started = Date.now();
    const out = await deliverWebhook(target, msg, opts);
    expect(out).toMatchObject({ outcome: 'delivered', status: 200 });
    expect(Date.now() - started).toBeLessThan(3_000);
    // The sender hung up long before the end: what got written is what
    // socket buffers hold, a tiny part of the 64 MiB.
    await expect.poll(async () => (await received())[0]?.answer?.closedEarly, { timeout: 2_000 }).toBe(true);
    expect((await received())[0]?.answer?.sent).toBeLessThan(16 * 1024 * 1024);
  });

  it('an answer whose body stalls is judged by its status, within the timeout', async () => {
    await control('stall_body');
    const started = Date.now();
    const out = await deliverWebhook(target, msg, { ...opts, timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(out).toMatchObject({ outcome: 'delivered', status: 200 });
  });

  it('a refused URL → refused, without any request', async () => {
    const out = await deliverWebhook(target, msg, { ...opts, allowInsecureLoopback: false });
    expect(out).toMatchObject({ outcome: 'refused', ms: 0 });
    expect(out.error).toMatch(/https/);
    expect(await received()).toHaveLength(0);
  });

  it('a secret that does not parse, or no webhook-id → refused, without any request', async () => {
    const out = await deliverWebhook({ ...target, secret: 'whsec_not base64!' }, msg, opts);
    expect(out).toMatchObject({ outcome: 'refused', error: expect.stringMatching(/^cannot sign: .*secret/) });
    expect(await deliverWebhook(target, { ...msg, id: '' }, opts)).toMatchObject({ outcome: 'refused', error: expect.stringMatching(/^cannot sign: .*id/) });
    expect(await received()).toHaveLength(0);
  });
});

describe('checkWebhookUrl', () => {
  const cases: [url: string, allowInsecureLoopback: boolean, ok: boolean][] = [
    ['https://hooks.example.com/jobs', false, true],
    ['https://hooks.example.com:8443/jobs?x=1', false, true],
    ['http://hooks.example.com/jobs', false, false],
    ['http://hooks.example.com/jobs', true, false],
    ['http://127.0.0.1:8787/hook', true, true],
    ['http://127.0.0.1:8787/hook', false, false],
    ['http://[::1]:8787/hook', true, true],
    ['http://localhost:8787/hook', true, true],
    ['http://10.0.0.5/hook', true, false],
    ['https://localhost/hook', false, false],
    ['https://localhost/hook', true, true],
    ['https://127.0.0.1/hook', false, false],
    ['https://10.0.0.5/hook', false, false],
    ['https://192.168.1.10/hook', false, false],
    ['https://169.254.169.254/latest/meta-data', false, false],
    ['https://169.254.169.254/latest/meta-data', true, false],
    ['https://[fd00::1]/hook', false, false],
    ['https://[::ffff:10.0.0.1]/hook', false, false],
    ['https://metadata/hook', false, false],
    ['https://db.internal/hook', false, false],
    ['https://user:pass@hooks.example.com/jobs', false, false],
    ['https://user@hooks.example.com/jobs', false, false],
    ['http://user:pass@127.0.0.1/hook', true, false],
    ['ftp://hooks.example.com/jobs', false, false],
    ['hooks.example.com/jobs', false, false],
    ['', false, false],
  ];
  it.each(cases)('%s (loopback allowed: %s) → ok %s', (url, allowInsecureLoopback, ok) => {
    const why = checkWebhookUrl(url, { allowInsecureLoopback });
    if (ok) expect(why).toBeNull();
    else expect(why).toEqual(expect.any(String));
  });

  it('says why', () => {
    expect(checkWebhookUrl('http://hooks.example.com/', { allowInsecureLoopback: false })).toMatch(/https/);
    expect(checkWebhookUrl('https://a:b@hooks.example.com/', { allowInsecureLoopback: false })).toMatch(/credentials/);
    expect(checkWebhookUrl('https://10.1.2.3/', { allowInsecureLoopback: false })).toMatch(/private/);
  });
});

describe('retry schedule', () => {
  it('defaults to 8 retries over about 17 hours', () => {
    expect(retrySchedule({})).toEqual([...DEFAULT_RETRY_SCHEDULE_SECONDS]);
    expect(retrySchedule({ WEBHOOK_RETRY_SCHEDULE: ' ' })).toEqual([...DEFAULT_RETRY_SCHEDULE_SECONDS]);
    expect(DEFAULT_RETRY_SCHEDULE_SECONDS).toHaveLength(8);
    const hours = DEFAULT_RETRY_SCHEDULE_SECONDS.reduce((a, b) => a + b, 0) / 3600;
    expect(hours).toBeGreaterThan(16);
    expect(hours).toBeLessThan(18);
  });

  it('parses WEBHOOK_RETRY_SCHEDULE, fractions included', () => {
    expect(retrySchedule({ WEBHOOK_RETRY_SCHEDULE: '0.2, 0.5,1' })).toEqual([0.2, 0.5, 1]);
    expect(retrySchedule({ WEBHOOK_RETRY_SCHEDULE: '60' })).toEqual([60]);
    expect(retrySchedule({ WEBHOOK_RETRY_SCHEDULE: Array(20).fill('1').join(',') })).toHaveLength(20);
  });

  it.each(['0', '-5', '1,,2', 'abc', '1,2,x', '1e3', 'Infinity', Array(21).fill('1').join(',')])('refuses WEBHOOK_RETRY_SCHEDULE=%s', (v) => {
    expect(() => retrySchedule({ WEBHOOK_RETRY_SCHEDULE: v })).toThrow(EdgeConfigError);
  });

  it('nextDelaySeconds walks the schedule and gives up after the last', () => {
    const s = [5, 30, 120];
    expect(nextDelaySeconds(s, 1)).toBe(5);
    expect(nextDelaySeconds(s, 2)).toBe(30);
    expect(nextDelaySeconds(s, 3)).toBe(120);
    expect(nextDelaySeconds(s, 4)).toBeNull();
    expect(nextDelaySeconds(s, 4, 10)).toBeNull(); // Retry-After does not extend the schedule
    expect(nextDelaySeconds(s, 0)).toBeNull();
    const d = DEFAULT_RETRY_SCHEDULE_SECONDS;
    expect(nextDelaySeconds(d, d.length)).toBe(36000);
    expect(nextDelaySeconds(d, d.length + 1)).toBeNull();
  });

  it('a Retry-After larger than the schedule wins, capped at 24 h; a smaller one is ignored', () => {
    const s = [5, 30, 120];
    expect(nextDelaySeconds(s, 1, 90)).toBe(90);
    expect(nextDelaySeconds(s, 2, 10)).toBe(30);
    expect(nextDelaySeconds(s, 1, 10 * 24 * 3600)).toBe(24 * 3600);
  });

  it('parseRetryAfter reads seconds and HTTP dates', () => {
    const now = Date.parse('2026-05-03T10:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Sun, 03 May 2026 10:02:00 GMT', now)).toBe(120);
    expect(parseRetryAfter('Sun, 03 May 2026 09:00:00 GMT', now)).toBe(0); // in the past
    expect(parseRetryAfter('Mon, 01 Jun 2026 10:00:00 GMT', now)).toBe(MAX_RETRY_AFTER_SECONDS);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter('', now)).toBeNull();
  });
});
