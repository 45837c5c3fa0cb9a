// Async jobs end to end on loopback, as users run them: `wrangler dev` (local
// Durable Objects, Queues, R2, KV — persisted to a directory that survives a
// restart) in front of a real GPU service (`imagereward serve`, ORT, tiny224),
// and a webhook receiver started here that verifies every delivery with the
// reference `standardwebhooks` package. Nothing talks to anything but 127.0.0.1.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '../../contracts/api/index.js';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { convertCheckpoint } from '../../gpu-service/model/convert.js';
import { startServeProcess, type ServeProcess } from '../support/serve-process.js';
import { freePort, startWranglerDev, type WranglerDev } from '../support/wrangler-dev.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'dist', 'gpu-service', 'cli', 'main.js');
const fixture = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'model', 'tiny224-e2e.json'), 'utf8')) as { config: ImageRewardConfig };
const ORIGIN_SECRET = 'jobs-e2e-origin-secret';
const SECRET = 'whsec_' + Buffer.from('jobs-e2e-webhook-secret-32-bytes!').toString('base64');

let work: string;
let modelDir: string;
let originPort: number;
let origin: ServeProcess | undefined;
let edge: WranglerDev | undefined;
let state: string;
let images: Buffer[] = [];

/** The GPU service, always on the same port (ORIGINS is fixed in wrangler dev's vars). */
const startOrigin = (): Promise<ServeProcess> => startServeProcess({ modelDir, apiKey: ORIGIN_SECRET, port: originPort });

async function stopOrigin(): Promise<void> {
  await origin?.kill();
  origin = undefined;
}

function startEdge(): Promise<WranglerDev> {
  return startWranglerDev({
    persistTo: state,
    vars: {
      ORIGINS: `http://127.0.0.1:${originPort}`,
      ORIGIN_SECRET,
      MODEL_ID: 'tiny224',
      AUTH: 'off',
      ORIGIN_TIMEOUT_MS: '20000',
      ORIGIN_OPEN_MS: '500',
      WEBHOOK_ALLOW_INSECURE_LOOPBACK: 'on',
      WEBHOOK_RETRY_SCHEDULE: '0.5,0.5,0.5,0.5,0.5,1,1,1',
      JOB_STALL_SECONDS: '4',
    },
  });
}

// The webhook receiver: down (503) for the first `downFor` calls, then 204; verifies with standardwebhooks.
interface Received {
  id: string;
  body: string;
  headers: Record<string, string>;
  at: number;
  verified: boolean;
}
const received: Received[] = [];
let downFor = 0;
let receiverServer: http.Server;
let receiverUrl: string;

beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} missing: run \`npm run build\` (npm test does)`);
  work = await mkdtemp(join(tmpdir(), 'ir-jobs-e2e-'));
  state = join(work, 'wrangler-state');
  modelDir = join(work, 'model');
  await convertCheckpoint({ checkpoint: join(ROOT, 'test', 'fixtures', 'checkpoint', 'tiny224.pt'), out: modelDir, config: fixture.config });
  images = await Promise.all(
    Array.from({ length: 24 }, (_, i) => sharp({ create: { width: 40 + i, height: 30 + ((i * 3) % 17), channels: 3, background: { r: (i * 41) % 256, g: (i * 67) % 256, b: (i * 13) % 256 } } }).png().toBuffer()),
  );
  receiverServer = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
      let verified = true;
      try {
        new Webhook(SECRET).verify(body, headers);
      } catch {
        verified = false;
      }
      received.push({ id: headers['webhook-id'] ?? '', body, headers, at: Date.now(), verified });
      if (downFor > 0) {
        downFor -= 1;
        res.writeHead(503).end('down');
      } else res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiverServer.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiverServer.address() as { port: number }).port}`;
  originPort = await freePort();
  origin = await startOrigin();
  edge = await startEdge();
}, 180_000);

afterAll(async () => {
  await edge?.stop();
  await stopOrigin();
  await new Promise((r) => receiverServer?.close(r));
  if (work) await rm(work, { recursive: true, force: true });
});

const b64 = (b: Buffer) => ({ data: b.toString('base64') });
async function postJob(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${edge!.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}
async function getJob(id: string): Promise<Job> {
  return (await (await fetch(`${edge!.url}/v1/jobs/${id}`)).json()) as Job;
}
async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
const finished = (id: string, timeoutMs?: number) =>
  until(`job ${id} to finish`, async () => {
    const j = await getJob(id);
    return ['completed', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
  }, timeoutMs);

describe('jobs e2e through wrangler dev', () => {
  it('completes a job of many items with the scores of /v1/score and a verified webhook after the receiver comes back', async () => {
    downFor = 3;
    const items = Array.from({ length: 12 }, (_, i) => ({ id: `item-${i}`, prompt: `a photo of thing number ${i % 4}`, images: [b64(images[i]!), b64(images[(i + 5) % 12]!)] }));
    const res = await postJob({ items, webhook: { url: `${receiverUrl}/hook`, secret: SECRET }, metadata: { suite: 'e2e' } });
    expect(res.status).toBe(202);
    const created = (await res.json()) as Job;
    const done = await finished(created.id);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ total: 12, done: 12, succeeded: 12, failed: 0 });
    for (const [i, item] of items.entries()) {
      const direct = (await (await fetch(`${edge!.url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: item.prompt, images: item.images }) })).json()) as { rewards: number[]; ranking: number[] };
      expect(done.items![i]!.result!.rewards).toEqual(direct.rewards);
      expect(done.items![i]!.result!.ranking).toEqual(direct.ranking);
      expect(done.items![i]!.id).toBe(`item-${i}`);
    }
    const calls = await until('the delivery', async () => (received.length >= 4 ? received.slice() : undefined));
    expect(calls.slice(0, 3).every((c) => c.id === calls[3]!.id)).toBe(true); // same webhook-id on every attempt
    expect(calls.every((c) => c.verified)).toBe(true);
    const payload = JSON.parse(calls[3]!.body) as { type: string; data: Job };
    expect(payload).toMatchObject({ type: 'job.completed', data: { id: created.id, status: 'completed', metadata: { suite: 'e2e' } } });
    // A tampered body does not verify.
    expect(() => new Webhook(SECRET).verify(calls[3]!.body.replace('"completed"', '"failed"'), calls[3]!.headers)).toThrow();
    const log = (await (await fetch(`${edge!.url}/v1/jobs/${created.id}/deliveries`)).json()) as { deliveries: { outcome: string }[] };
    expect(log.deliveries.map((d) => d.outcome)).toEqual(['retry', 'retry', 'retry', 'delivered']);
  });

  it('replays the same job for the same Idempotency-Key and refuses another body with it', async () => {
    const body = { items: [{ prompt: 'idempotent', images: [b64(images[13]!)] }] };
    const a = await postJob(body, { 'idempotency-key': 'e2e-key-1' });
    const b = await postJob(body, { 'idempotency-key': 'e2e-key-1' });
    expect(((await a.json()) as Job).id).toBe(((await b.json()) as Job).id);
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    const c = await postJob({ items: [{ prompt: 'something else', images: [b64(images[13]!)] }] }, { 'idempotency-key': 'e2e-key-1' });
    expect(c.status).toBe(422);
    expect(await c.json()).toMatchObject({ code: 'idempotency_key_reused' });
  });

  it('finishes a job whose GPU service is killed mid-job, once it is back', async () => {
    const items = Array.from({ length: 40 }, (_, i) => ({ prompt: `outage ${i}`, images: [b64(images[i % 24]!), b64(images[(i + 7) % 24]!)] }));
    const created = (await (await postJob({ items })).json()) as Job;
    // Kill it as soon as the first results are in, while most items are still pending.
    const at = await until('the first results', async () => {
      const j = await getJob(created.id);
      return j.progress.done > 0 ? j.progress.done : undefined;
    });
    await stopOrigin();
    const mid = await getJob(created.id);
    expect(at).toBeLessThan(40);
    expect(mid.progress.done).toBeLessThan(40);
    await new Promise((r) => setTimeout(r, 2000));
    origin = await startOrigin();
    const done = await finished(created.id, 90_000);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ done: 40, succeeded: 40, failed: 0 });
  });

  it('keeps a job across a wrangler dev restart and finishes it', async () => {
    const items = Array.from({ length: 8 }, (_, i) => ({ prompt: `restart ${i}`, images: [b64(images[i]!)] }));
    await stopOrigin(); // nothing can finish before the restart
    const created = (await (await postJob({ items })).json()) as Job;
    await edge!.stop();
    origin = await startOrigin();
    edge = await startEdge();
    const before = await getJob(created.id);
    expect(before.progress.total).toBe(8);
    const done = await finished(created.id, 90_000);
    expect(done.status).toBe('completed');
    expect(done.progress.succeeded).toBe(8);
  });

  it('cancels a running job', async () => {
    await stopOrigin();
    const created = (await (await postJob({ items: [{ prompt: 'cancel me', images: [b64(images[20]!)] }] })).json()) as Job;
    const del = await fetch(`${edge!.url}/v1/jobs/${created.id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    origin = await startOrigin();
    await new Promise((r) => setTimeout(r, 2000));
    const j = await getJob(created.id);
    expect(j.status).toBe('cancelled');
    expect(j.items![0]!.status).toBe('cancelled');
  });
});
