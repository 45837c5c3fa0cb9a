// contracts/webhooks.ts against the reference implementation of Standard
// Webhooks (the `standardwebhooks` npm package): whatever one signs, the
// other verifies, and both refuse the same bad deliveries — so a receiver may
// use either library, or any other conforming one. Also checks the package
// export receivers import it by (`imagereward-serve/webhooks`, built into
// dist/ by `npm run build`, which `npm test` runs first).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Webhook, WebhookVerificationError as TheirError } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { WebhookSecretPattern } from '../../contracts/api/jobs.js';
import * as ours from '../../contracts/webhooks.js';
import {
  WebhookVerificationError,
  generateWebhookSecret,
  parseWebhookSecret,
  signWebhook,
  verifyWebhook,
  webhookHeaders,
  type WebhookVerificationFailure,
} from '../../contracts/webhooks.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const now = Math.floor(Date.now() / 1000);
const payload = {
  type: 'job.completed',
  timestamp: new Date(now * 1000).toISOString(),
  data: { id: 'job_01HX', object: 'job', status: 'completed', metadata: { note: 'naïve café — 画像 🎨' } },
};
// Non-ASCII on purpose: the HMAC is over UTF-8 bytes in both libraries.
const body = JSON.stringify(payload);
const msgId = 'msg_01HX_completed';

async function reason(p: Promise<unknown>): Promise<WebhookVerificationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WebhookVerificationError);
  return (err as WebhookVerificationError).reason;
}

/** Their signature header for (id, timestamp seconds, body). */
function theirSign(secret: string, id: string, ts: number, text: string): Record<string, string> {
  return { 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': new Webhook(secret).sign(id, new Date(ts * 1000), text) };
}

describe('interop with the standardwebhooks package', () => {
  it('ours signs → theirs verifies (and parses the body)', async () => {
    const secret = generateWebhookSecret();
    const headers = await webhookHeaders({ id: msgId, timestamp: now, body }, secret);
    expect(new Webhook(secret).verify(body, headers)).toEqual(payload);
  });

  it('theirs signs → ours verifies', async () => {
    const secret = generateWebhookSecret();
    await expect(verifyWebhook(body, theirSign(secret, msgId, now, body), secret)).resolves.toEqual({ id: msgId, timestamp: now });
  });

  it('both compute the same signature, byte for byte', async () => {
    const secret = generateWebhookSecret(64);
    const theirs = new Webhook(secret).sign(msgId, new Date(now * 1000), body);
    expect(await signWebhook({ id: msgId, timestamp: now, body }, secret)).toBe(theirs);
  });

  it('a tampered body fails in both', async () => {
    const secret = generateWebhookSecret();
    const headers = await webhookHeaders({ id: msgId, timestamp: now, body }, secret);
    const tampered = body.replace('completed', 'failed');
    expect(await reason(verifyWebhook(tampered, headers, secret))).toBe('no_matching_signature');
    expect(() => new Webhook(secret).verify(tampered, headers)).toThrow(TheirError);
  });

  it('the raw body is what counts: re-serialized JSON fails', async () => {
    const secret = generateWebhookSecret();
    const headers = await webhookHeaders({ id: msgId, timestamp: now, body }, secret);
    const reserialized = JSON.stringify(JSON.parse(body), null, 2);
    expect(await reason(verifyWebhook(reserialized, headers, secret))).toBe('no_matching_signature');
  });

  it('a changed webhook-id or timestamp fails (both are signed)', async () => {
    const secret = generateWebhookSecret();
    const headers = await webhookHeaders({ id: msgId, timestamp: now, body }, secret);
    expect(await reason(verifyWebhook(body, { ...headers, 'webhook-id': 'msg_other' }, secret))).toBe('no_matching_signature');
    expect(await reason(verifyWebhook(body, { ...headers, 'webhook-timestamp': String(now - 1) }, secret))).toBe('no_matching_signature');
  });

  it('a wrong secret fails in both', async () => {
    const secret = generateWebhookSecret();
    const other = generateWebhookSecret();
    const headers = await webhookHeaders({ id: msgId, timestamp: now, body }, secret);
    expect(await reason(verifyWebhook(body, headers, other))).toBe('no_matching_signature');
    expect(() => new Webhook(other).verify(body, headers)).toThrow(TheirError);
    expect(await reason(verifyWebhook(body, theirSign(secret, msgId, now, body), other))).toBe('no_matching_signature');
  });
});

describe('timestamps', () => {
  const secret = generateWebhookSecret();

  it('accepts up to the tolerance (default 5 minutes) either way, like theirs', async () => {
    for (const ts of [now - 299, now + 299]) {
      const h = theirSign(secret, msgId, ts, body);
      await expect(verifyWebhook(body, h, secret, { now })).resolves.toMatchObject({ timestamp: ts });
      expect(new Webhook(secret).verify(body, h)).toEqual(payload);
    }
  });

  it('refuses an old timestamp beyond the tolerance, like theirs', async () => {
    const h = await webhookHeaders({ id: msgId, timestamp: now - 600, body }, secret);
    expect(await reason(verifyWebhook(body, h, secret))).toBe('timestamp_too_old');
    expect(() => new Webhook(secret).verify(body, h)).toThrow(/too old/);
  });

  it('refuses a future timestamp beyond the tolerance, like theirs', async () => {
    const h = await webhookHeaders({ id: msgId, timestamp: now + 600, body }, secret);
    expect(await reason(verifyWebhook(body, h, secret))).toBe('timestamp_too_new');
    expect(() => new Webhook(secret).verify(body, h)).toThrow(/too new/);
  });

  it('honours toleranceSeconds and now', async () => {
    const h = await webhookHeaders({ id: msgId, timestamp: 1_700_000_000, body }, secret);
    await expect(verifyWebhook(body, h, secret, { now: 1_700_000_000 + 30 })).resolves.toMatchObject({ timestamp: 1_700_000_000 });
    expect(await reason(verifyWebhook(body, h, secret, { now: 1_700_000_000 + 30, toleranceSeconds: 10 }))).toBe('timestamp_too_old');
    expect(await reason(verifyWebhook(body, h, secret, { now: 1_700_000_000 - 30, toleranceSeconds: 10 }))).toBe('timestamp_too_new');
  });

  it.each(['abc', '1.5', '-5', '1e9', '0x10'])('refuses webhook-timestamp %s as bad_timestamp', async (ts) => {
    const h = await webhookHeaders({ id: msgId, timestamp: now, body }, secret);
    expect(await reason(verifyWebhook(body, { ...h, 'webhook-timestamp': ts }, secret))).toBe('bad_timestamp');
  });

  it('signs only integer seconds (a millisecond clock or a fraction is a bug)', async () => {
    await expect(signWebhook({ id: msgId, timestamp: now + 0.5, body }, secret)).rejects.toThrow(TypeError);
    await expect(signWebhook({ id: '', timestamp: now, body }, secret)).rejects.toThrow(TypeError);
  });
});

describe('headers', () => {
  const secret = generateWebhookSecret();

  it.each(['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const)('without %s → missing_headers (theirs refuses too)', async (name) => {
    const h: Record<string, string> = await webhookHeaders({ id: msgId, timestamp: now, body }, secret);
    delete h[name];
    expect(await reason(verifyWebhook(body, h, secret))).toBe('missing_headers');
    expect(() => new Webhook(secret).verify(body, h)).toThrow(/Missing required headers/);
    expect(await reason(verifyWebhook(body, { ...h, [name]: '' }, secret))).toBe('missing_headers');
  });

  it('reads header names case-insensitively, from objects and from Headers', async () => {
    const h = await webhookHeaders({ id: msgId, timestamp: now, body }, secret);
    const shouted = { 'Webhook-Id': h['webhook-id'], 'WEBHOOK-TIMESTAMP': h['webhook-timestamp'], 'Webhook-Signature': h['webhook-signature'] };
    await expect(verifyWebhook(body, shouted, secret)).resolves.toMatchObject({ id: msgId });
    await expect(verifyWebhook(body, new Headers(shouted), secret)).resolves.toMatchObject({ id: msgId });
    // A Headers look-alike from another library (not instanceof Headers).
    const foreign = { get: (n: string): string | null => h[n as keyof typeof h] ?? null };
    await expect(verifyWebhook(body, foreign as unknown as Headers, secret)).resolves.toMatchObject({ id: msgId });
  });

  it('accepts several signatures when one is valid; none valid → no_matching_signature', async () => {
    const h = await webhookHeaders({ id: msgId, timestamp: now, body }, secret);
    const good = h['webhook-signature'];
    const bogus = await signWebhook({ id: msgId, timestamp: now, body }, generateWebhookSecret());
    const several = { ...h, 'webhook-signature': `v1,AAAA ${bogus} v1a,${good.slice(3)} ${good}` };
    await expect(verifyWebhook(body, several, secret)).resolves.toMatchObject({ id: msgId });
    expect(new Webhook(secret).verify(body, several)).toEqual(payload);
    // The same valid MAC under another version label is not a v1 signature.
    const wrongVersion = { ...h, 'webhook-signature': `${bogus} v2,${good.slice(3)}` };
    expect(await reason(verifyWebhook(body, wrongVersion, secret))).toBe('no_matching_signature');
    expect(() => new Webhook(secret).verify(body, wrongVersion)).toThrow(TheirError);
  });

  it('takes repeated signature headers as Node joins them (", ") or as an array', async () => {
    const h = await webhookHeaders({ id: msgId, timestamp: now, body }, secret);
    const bogus = await signWebhook({ id: msgId, timestamp: now, body }, generateWebhookSecret());
    await expect(verifyWebhook(body, { ...h, 'webhook-signature': `${bogus}, ${h['webhook-signature']}` }, secret)).resolves.toMatchObject({ id: msgId });
    await expect(verifyWebhook(body, { ...h, 'webhook-signature': [bogus, h['webhook-signature']] }, secret)).resolves.toMatchObject({ id: msgId });
  });

  it('refuses a truncated or garbled signature', async () => {
    const h = await webhookHeaders({ id: msgId, timestamp: now, body }, secret);
    const sig = h['webhook-signature'];
    for (const bad of [sig.slice(0, -4), `${sig}AAAA`, 'v1,', 'v1,!!!!', sig.replace('v1,', 'v1;')]) {
      expect(await reason(verifyWebhook(body, { ...h, 'webhook-signature': bad }, secret))).toBe('no_matching_signature');
    }
  });
});

describe('secrets', () => {
  it('generates "whsec_" + base64 of 24 to 64 random bytes, valid for the jobs API and for theirs', async () => {
    for (const n of [24, 32, 48, 64]) {
      const s = generateWebhookSecret(n);
      expect(s).toMatch(WebhookSecretPattern);
      expect(parseWebhookSecret(s)).toHaveLength(n);
      const h = await webhookHeaders({ id: msgId, timestamp: now, body }, s);
      expect(new Webhook(s).verify(body, h)).toEqual(payload);
    }
    expect(generateWebhookSecret()).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(new Set(Array.from({ length: 20 }, () => generateWebhookSecret())).size).toBe(20);
    expect(() => generateWebhookSecret(16)).toThrow(RangeError);
    expect(() => generateWebhookSecret(65)).toThrow(RangeError);
  });

  it('rotation: any of several secrets verifies; none → no_matching_signature', async () => {
    const old = generateWebhookSecret();
    const next = generateWebhookSecret();
    const stranger = generateWebhookSecret();
    for (const signer of [old, next]) {
      const h = await webhookHeaders({ id: msgId, timestamp: now, body }, signer);
      await expect(verifyWebhook(body, h, [old, next])).resolves.toMatchObject({ id: msgId });
    }
    const h = await webhookHeaders({ id: msgId, timestamp: now, body }, stranger);
    expect(await reason(verifyWebhook(body, h, [old, next]))).toBe('no_matching_signature');
  });

  it('accepts a bare base64 key as theirs does', async () => {
    const s = generateWebhookSecret();
    const bare = s.slice('whsec_'.length);
    const h = await webhookHeaders({ id: msgId, timestamp: now, body }, bare);
    await expect(verifyWebhook(body, h, s)).resolves.toMatchObject({ id: msgId });
    expect(new Webhook(bare).verify(body, h)).toEqual(payload);
  });

  it.each(['', 'whsec_', 'whsec_not base64!', 'whsec_QUJD*', 'whsec_A'])('refuses the secret %j as bad_secret', async (bad) => {
    expect(() => parseWebhookSecret(bad)).toThrow(WebhookVerificationError);
    const h = await webhookHeaders({ id: msgId, timestamp: now, body }, generateWebhookSecret());
    expect(await reason(verifyWebhook(body, h, bad))).toBe('bad_secret');
    await expect(signWebhook({ id: msgId, timestamp: now, body }, bad)).rejects.toThrow(WebhookVerificationError);
  });

  it('refuses an empty list of secrets, and any bad one among several', async () => {
    const s = generateWebhookSecret();
    const h = await webhookHeaders({ id: msgId, timestamp: now, body }, s);
    expect(await reason(verifyWebhook(body, h, []))).toBe('bad_secret');
    expect(await reason(verifyWebhook(body, h, [s, 'whsec_!!']))).toBe('bad_secret');
  });
});

describe("the package export 'imagereward-serve/webhooks'", () => {
  it('is built into dist/ with its declarations', () => {
    expect(existsSync(join(ROOT, 'dist', 'contracts', 'webhooks.js'))).toBe(true);
    expect(existsSync(join(ROOT, 'dist', 'contracts', 'webhooks.d.ts'))).toBe(true);
  });

  it('resolves by the package name and interoperates with the source', async () => {
    // A variable specifier: type-checking must not need dist/ to exist.
    const specifier: string = 'imagereward-serve/webhooks';
    const pkg = (await import(specifier)) as typeof ours;
    expect(import.meta.resolve(specifier)).toBe(new URL('../../dist/contracts/webhooks.js', import.meta.url).href);
    expect(Object.keys(pkg).sort()).toEqual(Object.keys(ours).sort());
    const secret = pkg.generateWebhookSecret();
    const h = await pkg.webhookHeaders({ id: msgId, timestamp: now, body }, secret);
    await expect(verifyWebhook(body, h, secret)).resolves.toMatchObject({ id: msgId });
    await expect(pkg.verifyWebhook(body, await webhookHeaders({ id: msgId, timestamp: now, body }, secret), secret)).resolves.toMatchObject({ id: msgId });
  });
});
