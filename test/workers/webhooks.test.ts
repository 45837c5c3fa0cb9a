// contracts/webhooks.ts inside workerd: the edge signs its job webhooks with
// it, so signing and verifying must work on Workers' WebCrypto exactly as in
// Node (test/node/webhooks.test.ts checks interop with the reference library).
import { describe, expect, it } from 'vitest';
import { WebhookVerificationError, generateWebhookSecret, parseWebhookSecret, signWebhook, verifyWebhook, webhookHeaders } from '../../contracts/webhooks.js';

const now = Math.floor(Date.now() / 1000);
const body = JSON.stringify({ type: 'job.completed', timestamp: new Date(now * 1000).toISOString(), data: { id: 'job_1', object: 'job', status: 'completed' } });
const msg = { id: 'msg_2Kx7', timestamp: now, body };

async function reason(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WebhookVerificationError);
  return (err as WebhookVerificationError).reason;
}

describe('webhooks on Workers', () => {
  it('generates whsec_ secrets of 32 random bytes by default', () => {
    const a = generateWebhookSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(parseWebhookSecret(a)).toHaveLength(32);
    expect(generateWebhookSecret()).not.toBe(a);
  });

  it('signs and verifies a round trip through a Headers object', async () => {
    const secret = generateWebhookSecret();
    const headers = new Headers(await webhookHeaders(msg, secret));
    expect(headers.get('webhook-signature')).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(headers.get('webhook-signature')).toBe(await signWebhook(msg, secret));
    await expect(verifyWebhook(body, headers, secret, { now })).resolves.toEqual({ id: msg.id, timestamp: now });
  });

  it('refuses a tampered body, a wrong secret and a stale timestamp', async () => {
    const secret = generateWebhookSecret();
    const headers = await webhookHeaders(msg, secret);
    expect(await reason(verifyWebhook(body.replace('completed', 'failed'), headers, secret, { now }))).toBe('no_matching_signature');
    expect(await reason(verifyWebhook(body, headers, generateWebhookSecret(), { now }))).toBe('no_matching_signature');
    expect(await reason(verifyWebhook(body, headers, secret, { now: now + 301 }))).toBe('timestamp_too_old');
  });

  it('matches a known HMAC-SHA256 (the signature is over "id.timestamp.body")', async () => {
    // Key = 32 bytes of 0x01; the expected value was computed with node:crypto:
    // createHmac('sha256', Buffer.alloc(32, 1)).update('msg_1.1700000000.{}').digest('base64')
    const secret = `whsec_${btoa(String.fromCharCode(...new Array<number>(32).fill(1)))}`;
    const sig = await signWebhook({ id: 'msg_1', timestamp: 1_700_000_000, body: '{}' }, secret);
    expect(sig).toBe(KNOWN_SIGNATURE);
  });
});

const KNOWN_SIGNATURE = 'v1,xtZ05xWlw5OgOLjDd6HtOXxhC1OXgHe80DYwEPUhaCI=';
