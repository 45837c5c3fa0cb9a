// Async jobs inside workerd: the routes, the job Durable Object, the queue
// consumer (miniflare delivers the queue to the worker's own `queue` handler,
// as in production) and webhook delivery, against the scripted origins and the
// webhook receiver (real loopback servers, support/).
//
// The worker-level settings these tests need (short webhook retry schedule,
// http webhooks to loopback, a short stall watchdog) are bindings in
// vitest.config.ts: the job object and the consumer read the worker's env, not
// a per-request override.
import { env } from 'cloudflare:workers';
import { createExecutionContext, createMessageBatch, getQueueResult, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from 'cloudflare:test';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import { verifyWebhook } from '../../contracts/webhooks.js';
import type { Job } from '../../contracts/api/index.js';
import type { Env } from '../../edge/env.js';
import { app } from '../../edge/index.js';
import { chunkRetryDelaySeconds, handleJobQueue } from '../../edge/jobs/queue-consumer.js';
import { createKey } from '../../edge/auth/api-keys.js';
import { resetOriginState } from '../../edge/origins/pool.js';

const control = inject('scriptedOriginControl');
const receiver = inject('webhookReceiver');

const e = (over: Partial<Env> = {}): Env => ({ ...(env as unknown as Env), AUTH: 'off', ...over });

async function call(path: string, init: RequestInit = {}, over: Partial<Env> = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`http://edge.test${path}`, init), e(over), ctx);
  await waitOnExecutionContext(ctx);
  return res;
}
const post = (body: unknown, headers: Record<string, string> = {}, over: Partial<Env> = {}) =>
  call('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) }, over);

async function ctl(path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${control}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return res.json();
}
async function receiverCtl(path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${receiver}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`receiver ${path}: ${res.status} ${text}`);
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}
const received = async () => (await receiverCtl('/__log')) as { path: string; headers: Record<string, string>; body: string; at: number }[];

function png(tag: string): Uint8Array {
  return new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...new TextEncoder().encode(tag)]);
}
const b64 = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes));
const data = (tag: string) => ({ data: b64(png(tag)) });
const notImage = { data: b64(new TextEncoder().encode('not an image at all')) };

async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
async function job(id: string, over: Partial<Env> = {}): Promise<Job> {
  return (await (await call(`/v1/jobs/${id}`, {}, over)).json()) as Job;
}
const finished = (id: string, over: Partial<Env> = {}) =>
  until(`job ${id} to finish`, async () => {
    const j = await job(id, over);
    return ['completed', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
  });

beforeEach(async () => {
  await ctl('/reset', {});
  await receiverCtl('/__reset', {});
  resetOriginState();
});

describe('jobs: end to end inside workerd', () => {
  it('scores every item like /v1/score, fails only the bad item, and reports progress', async () => {
    const items = [
      { id: 'a', prompt: 'job prompt one', images: [data('j1'), data('j2')] },
      { id: 'b', prompt: 'job prompt two', images: [data('j3')] },
      { prompt: 'job prompt three', images: [notImage] },
      { prompt: 'job prompt four', images: [data('j4'), notImage] },
      { prompt: 'job prompt five', images: [data('j5')] },
    ];
    const res = await post({ items, metadata: { run: 'eval-7', n: 5 } });
    expect(res.status).toBe(202);
    const created = (await res.json()) as Job;
    expect(res.headers.get('location')).toBe(`/v1/jobs/${created.id}`);
    expect(created).toMatchObject({ object: 'job', status: 'queued', progress: { total: 5 }, metadata: { run: 'eval-7', n: 5 } });
    const done = await finished(created.id);
    expect(done.status).toBe('completed');
    expect(done.progress).toEqual({ total: 5, done: 5, succeeded: 4, failed: 1 });
    expect(done.expires_at).toBeDefined();
    const direct = await Promise.all(
      items.map(async (it) => {
        const r = await call('/v1/score', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: it.prompt, images: it.images }) });
        return (await r.json()) as { rewards?: (number | null)[]; code?: string };
      }),
    );
    const got = done.items!;
    expect(got.map((i) => i.id ?? null)).toEqual(['a', 'b', null, null, null]);
    for (const k of [0, 1, 3, 4]) {
      expect(got[k]!.status).toBe('succeeded');
      expect(got[k]!.result!.rewards).toEqual(direct[k]!.rewards);
    }
    expect(got[3]!.result!.errors).toMatchObject([{ index: 1, code: 'unsupported_image_format' }]);
    expect(got[2]).toMatchObject({ status: 'failed', error: { code: 'unsupported_image_format', status: 415 } });
    // ?items=false leaves the per-item results out.
    expect((await job(created.id, {})).items).toBeDefined();
    expect(((await (await call(`/v1/jobs/${created.id}?items=false`)).json()) as Job).items).toBeUndefined();
  });

  it('delivers a signed job.completed webhook, retrying with the same webhook-id until the receiver is up', async () => {
    await receiverCtl('/__control', { mode: 'fail500' });
    const secret = 'whsec_' + btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
    const res = await post({ items: [{ prompt: 'hook', images: [data('h1')] }], webhook: { url: `${receiver}/hooks/ir`, secret } });
    expect(res.status).toBe(202);
    const created = (await res.json()) as Job;
    expect(created.webhook).toEqual({ url: `${receiver}/hooks/ir` }); // a given secret is never echoed
    await until('3 failed attempts', async () => ((await received()).length >= 3 ? true : undefined));
    await receiverCtl('/__control', { mode: 'ok' });
    const deliveries = await until('a delivered attempt', async () => {
      const d = (await (await call(`/v1/jobs/${created.id}/deliveries`)).json()) as { deliveries: { outcome: string; webhook_id: string; attempt: number }[] };
      return d.deliveries.some((x) => x.outcome === 'delivered') ? d.deliveries : undefined;
    });
    expect(deliveries.length).toBeGreaterThanOrEqual(4);
    expect(new Set(deliveries.map((d) => d.webhook_id)).size).toBe(1);
    const calls = await received();
    expect(new Set(calls.map((c) => c.headers['webhook-id'])).size).toBe(1);
    const last = calls.at(-1)!;
    const verified = await verifyWebhook(last.body, last.headers, secret);
    expect(verified.id).toBe(deliveries[0]!.webhook_id);
    const payload = JSON.parse(last.body) as { type: string; data: Job };
    expect(payload.type).toBe('job.completed');
    expect(payload.data.id).toBe(created.id);
    expect(payload.data.items![0]!.status).toBe('succeeded');
    await expect(verifyWebhook(last.body.replace('succeeded', 'failed__'), last.headers, secret)).rejects.toThrow();
  });

  it('makes a secret when none is given (shown once), and stops on 410', async () => {
    await receiverCtl('/__control', { mode: 'gone' });
    const res = await post({ items: [{ prompt: 'gone', images: [data('g1')] }], webhook: { url: `${receiver}/gone` } });
    const created = (await res.json()) as Job;
    expect(created.webhook?.secret).toMatch(/^whsec_/);
    const d = await until('the 410', async () => {
      const x = (await (await call(`/v1/jobs/${created.id}/deliveries`)).json()) as { deliveries: { outcome: string }[] };
      return x.deliveries.length > 0 ? x.deliveries : undefined;
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(d.map((x) => x.outcome)).toEqual(['gone']);
    expect((await received()).length).toBe(1);
    expect((await job(created.id)).webhook).toEqual({ url: `${receiver}/gone` });
    // Redeliver starts the same message again.
    await receiverCtl('/__control', { mode: 'ok' });
    expect((await call(`/v1/jobs/${created.id}/webhook/redeliver`, { method: 'POST' })).status).toBe(202);
    await until('the redelivery', async () => ((await received()).length === 2 ? true : undefined));
    const calls = await received();
    expect(calls[1]!.headers['webhook-id']).toBe(calls[0]!.headers['webhook-id']);
    await verifyWebhook(calls[1]!.body, calls[1]!.headers, created.webhook!.secret!);
  });

  it('sends job.failed when every item failed', async () => {
    const res = await post({ items: [{ prompt: 'x', images: [notImage] }], webhook: { url: `${receiver}/failed` } });
    const created = (await res.json()) as Job;
    const done = await finished(created.id);
    expect(done.status).toBe('failed');
    const calls = await until('the webhook', async () => ((await received()).length > 0 ? received() : undefined));
    expect((JSON.parse(calls[0]!.body) as { type: string }).type).toBe('job.failed');
  });
});

describe('jobs: idempotency, validation, tenants, cancellation', () => {
  it('same key + same body → the same job; another body → 422; no key → a new job', async () => {
    const body = { items: [{ prompt: 'idem', images: [data('i1')] }] };
    const key = `k-${crypto.randomUUID()}`;
    const a = (await (await post(body, { 'idempotency-key': key })).json()) as Job;
    const second = await post(body, { 'idempotency-key': key });
    expect(second.status).toBe(202);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(((await second.json()) as Job).id).toBe(a.id);
    const other = await post({ items: [{ prompt: 'idem 2', images: [data('i1')] }] }, { 'idempotency-key': key });
    expect(other.status).toBe(422);
    expect(await other.json()).toMatchObject({ code: 'idempotency_key_reused' });
    const fresh = (await (await post(body)).json()) as Job;
    expect(fresh.id).not.toBe(a.id);
    // Keys are per tenant: another tenant's identical Idempotency-Key is another job.
    const other2 = (await createKey(env.API_KEYS, { tenant: `other-${crypto.randomUUID().slice(0, 8)}`, name: 'other', tier: 'high' })).key;
    const asOther = await post(body, { 'idempotency-key': key, authorization: `Bearer ${other2}` }, { AUTH: 'required' });
    expect(asOther.status).toBe(202);
    expect(asOther.headers.get('idempotent-replayed')).toBeNull();
    expect(((await asOther.json()) as Job).id).not.toBe(a.id);
  });

  it.each<[string, unknown, number, string, Record<string, string>?]>([
    ['no items', { items: [] }, 400, 'invalid_request'],
    ['an unknown field', { items: [{ prompt: 'x', images: [data('v')] }], extra: true }, 400, 'invalid_request'],
    ['duplicate item ids', { items: [{ id: 'x', prompt: 'x', images: [data('v')] }, { id: 'x', prompt: 'y', images: [data('v')] }] }, 400, 'invalid_request'],
    ['bad base64 in an item', { items: [{ prompt: 'x', images: [{ data: '@@@' }] }] }, 400, 'invalid_base64'],
    ['17 images in an item', { items: [{ prompt: 'x', images: Array.from({ length: 17 }, () => data('v')) }] }, 422, 'too_many_images'],
    ['1001 items', { items: Array.from({ length: 1001 }, () => ({ prompt: 'x', images: [{ data: 'iVBORw0KGgo=' }] })) }, 422, 'too_many_items'],
    ['an http webhook to a public host', { items: [{ prompt: 'x', images: [data('v')] }], webhook: { url: 'http://example.com/hook' } }, 422, 'invalid_webhook_url'],
    ['a webhook to a private address', { items: [{ prompt: 'x', images: [data('v')] }], webhook: { url: 'https://10.0.0.5/hook' } }, 422, 'invalid_webhook_url'],
    ['a malformed webhook secret', { items: [{ prompt: 'x', images: [data('v')] }], webhook: { url: 'https://example.com/hook', secret: 'nope' } }, 400, 'invalid_request'],
    ['a bad Idempotency-Key', { items: [{ prompt: 'x', images: [data('v')] }] }, 400, 'invalid_request', { 'idempotency-key': 'has space' }],
  ])('refuses %s with problem+json before storing anything', async (_n, body, status, code, headers) => {
    const res = await post(body, headers ?? {});
    expect(res.status).toBe(status);
    expect(await res.json()).toMatchObject({ code, status });
  });

  it('hides a job from other tenants and answers unknown ids with 404', async () => {
    const mk = async (tenant: string) => (await createKey(env.API_KEYS, { tenant: `${tenant}-${crypto.randomUUID().slice(0, 8)}`, name: tenant, tier: 'high' })).key;
    const [mine, theirs] = [await mk('mine'), await mk('theirs')];
    const req = { AUTH: 'required' };
    const created = (await (await post({ items: [{ prompt: 'mine', images: [data('t1')] }] }, { authorization: `Bearer ${mine}` }, req)).json()) as Job;
    expect((await call(`/v1/jobs/${created.id}`, { headers: { authorization: `Bearer ${mine}` } }, req)).status).toBe(200);
    for (const [path, method] of [[`/v1/jobs/${created.id}`, 'GET'], [`/v1/jobs/${created.id}`, 'DELETE'], [`/v1/jobs/${created.id}/deliveries`, 'GET']] as const) {
      const res = await call(path, { method, headers: { authorization: `Bearer ${theirs}` } }, req);
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    expect((await call(`/v1/jobs/${created.id}`, { headers: { authorization: 'Bearer irk_nope' } }, req)).status).toBe(401);
    expect((await call(`/v1/jobs/${'0'.repeat(64)}`)).status).toBe(404);
    expect((await call('/v1/jobs/not-an-id')).status).toBe(404);
  });

  it('cancels a job whose GPU tier is down, and refuses to cancel it twice', async () => {
    for (const origin of [0, 1, 2]) await ctl('/mode', { origin, mode: 'refuse' });
    const created = (await (await post({ items: [{ prompt: 'c1', images: [data('c1')] }, { prompt: 'c2', images: [data('c2')] }] })).json()) as Job;
    const del = await call(`/v1/jobs/${created.id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(((await del.json()) as Job).status).toBe('cancelled');
    const j = await job(created.id);
    expect(j.items!.map((i) => i.status)).toEqual(['cancelled', 'cancelled']);
    const again = await call(`/v1/jobs/${created.id}`, { method: 'DELETE' });
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({ code: 'job_finished' });
  });
});

describe('jobs: the queue consumer', () => {
  async function makeJob(items: number): Promise<string> {
    // Origins refuse while the job is created, so its own queued messages fail and retry
    // in the background; the tests below drive chunks directly.
    const body = { items: Array.from({ length: items }, (_, i) => ({ prompt: `qc ${i}`, images: [data(`qc-${crypto.randomUUID()}`)] })) };
    return ((await (await post(body)).json()) as Job).id;
  }

  it('acks a chunk it scored and records each result exactly once', async () => {
    for (const origin of [0, 1, 2]) await ctl('/mode', { origin, mode: 'refuse' });
    const id = await makeJob(2);
    await ctl('/reset', {});
    resetOriginState();
    const batch = createMessageBatch('imagereward-jobs', [{ id: 'm1', timestamp: new Date(), attempts: 1, body: { job: id, chunk: 0 } }]);
    const ctx = createExecutionContext();
    await handleJobQueue(batch, env as unknown as Env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(['m1']);
    const first = (await finished(id)).items!.map((i) => i.result?.rewards);
    // The same chunk again (a duplicate delivery) with origins now answering another model: nothing changes.
    for (const origin of [0, 1, 2]) await ctl('/mode', { origin, mode: 'model', modelId: 'other' });
    const again = createMessageBatch('imagereward-jobs', [{ id: 'm2', timestamp: new Date(), attempts: 1, body: { job: id, chunk: 0 } }]);
    const ctx2 = createExecutionContext();
    await handleJobQueue(again, env as unknown as Env, ctx2);
    expect((await getQueueResult(again, ctx2)).explicitAcks).toEqual(['m2']);
    expect((await job(id)).items!.map((i) => i.result?.rewards)).toEqual(first);
  });

  it('retries a chunk with backoff when the GPU tier is down', async () => {
    for (const origin of [0, 1, 2]) await ctl('/mode', { origin, mode: 'refuse' });
    const id = await makeJob(1);
    const batch = createMessageBatch('imagereward-jobs', [{ id: 'r1', timestamp: new Date(), attempts: 3, body: { job: id, chunk: 0 } }]);
    const ctx = createExecutionContext();
    await handleJobQueue(batch, env as unknown as Env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.retryMessages).toMatchObject([{ msgId: 'r1' }]);
    expect(result.explicitAcks).toEqual([]);
    // The backoff asked for (getQueueResult does not report it): 2^attempts s, capped at 60.
    expect([1, 2, 3, 6, 7].map(chunkRetryDelaySeconds)).toEqual([2, 4, 8, 60, 60]);
    expect((await job(id)).items![0]!.status).toBe('pending');
  });

  it('fails the pending items of a dead-lettered chunk, and acks malformed messages', async () => {
    for (const origin of [0, 1, 2]) await ctl('/mode', { origin, mode: 'refuse' });
    const id = await makeJob(1);
    const batch = createMessageBatch('imagereward-jobs-dlq', [
      { id: 'd1', timestamp: new Date(), attempts: 1, body: { job: id, chunk: 0 } },
      { id: 'd2', timestamp: new Date(), attempts: 1, body: { nonsense: true } },
    ]);
    const ctx = createExecutionContext();
    await handleJobQueue(batch, env as unknown as Env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks.sort()).toEqual(['d1', 'd2']);
    const j = await job(id);
    expect(j.status).toBe('failed');
    expect(j.items![0]).toMatchObject({ status: 'failed', error: { code: 'origin_unavailable' } });
  });
});

describe('jobs: the job object alarm', () => {
  it('re-enqueues a chunk that got no result (lost message, restart) — the watchdog', async () => {
    for (const origin of [0, 1, 2]) await ctl('/mode', { origin, mode: 'refuse' });
    const created = (await (await post({ items: [{ prompt: 'stall', images: [data(`st-${crypto.randomUUID()}`)] }] })).json()) as Job;
    const stub = env.JOBS.get(env.JOBS.idFromString(created.id));
    const before = await runInDurableObject(stub, (_obj, state) => {
      // Pretend the chunk's message went out long ago and was lost.
      state.storage.sql.exec('UPDATE chunks SET enqueued_at = ? WHERE chunk = 0', Date.now() - 3_600_000);
      return state.storage.sql.exec<{ attempts: number }>('SELECT attempts FROM chunks WHERE chunk = 0').one().attempts;
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const after = await runInDurableObject(stub, (_obj, state) => state.storage.sql.exec<{ attempts: number; enqueued_at: number }>('SELECT attempts, enqueued_at FROM chunks WHERE chunk = 0').one());
    expect(after.attempts).toBe(before + 1);
    expect(after.enqueued_at).toBeGreaterThan(Date.now() - 60_000);
    // Once the GPU tier is back, the job finishes.
    await ctl('/reset', {});
    resetOriginState();
    expect((await finished(created.id)).status).toBe('completed');
  });

  it('deletes the job and its stored images when it expires', async () => {
    const img = `exp-${crypto.randomUUID()}`;
    const created = (await (await post({ items: [{ prompt: 'expire', images: [data(img)] }] })).json()) as Job;
    await finished(created.id);
    const listed = await env.JOB_BLOBS.list({ prefix: `jobs/${created.id}/` });
    expect(listed.objects.length).toBe(1);
    const stub = env.JOBS.get(env.JOBS.idFromString(created.id));
    await runInDurableObject(stub, async (_obj, state) => {
      const meta = state.storage.kv.get<Record<string, unknown>>('job')!;
      state.storage.kv.put('job', { ...meta, expires_at: new Date(Date.now() - 1000).toISOString() });
      await state.storage.setAlarm(Date.now() + 60_000);
    });
    await runDurableObjectAlarm(stub);
    expect((await call(`/v1/jobs/${created.id}`)).status).toBe(404);
    expect((await env.JOB_BLOBS.list({ prefix: `jobs/${created.id}/` })).objects).toHaveLength(0);
  });
});
