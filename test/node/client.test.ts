// The typed client (client/, `imagereward-serve/client`) end to end on
// loopback, as users run it: one real GPU service (`imagereward serve`, ORT,
// the tiny224 test model) behind `wrangler dev` with API keys required (a key
// made through POST /admin/keys), http webhooks to loopback allowed, and a
// slow image host for a job that is still running when it is cancelled. Also
// runs the examples as child processes and imports the package export.
// Nothing here talks to anything but 127.0.0.1.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, ImageRewardApiError, JobWaitTimeoutError, toBase64, type ImageRewardClient } from '../../client/index.js';
import { EDGE_ROUTES } from '../../contracts/api/edge-schema.js';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { convertCheckpoint } from '../../gpu-service/model/convert.js';
import { startServeProcess, type ServeProcess } from '../support/serve-process.js';
import { freePort, startWranglerDev, type WranglerDev } from '../support/wrangler-dev.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'dist', 'gpu-service', 'cli', 'main.js');
const DIST_CLIENT = join(ROOT, 'dist', 'client', 'index.js');
const fixture = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'model', 'tiny224-e2e.json'), 'utf8')) as { config: ImageRewardConfig };
const ORIGIN_SECRET = 'client-e2e-origin-secret';
const ADMIN_SECRET = 'client-e2e-admin-secret-0123456789';
/** How long the slow image host takes to answer: a job item with such an image is still running when it is cancelled. */
const SLOW_MS = 15_000;

let work: string;
let origin: ServeProcess | undefined;
let edge: WranglerDev | undefined;
let apiKey: string;
let ir: ImageRewardClient;
let images: Buffer[] = [];
let slowServer: http.Server;
let slowHost: string;
let receiver: http.Server;
let receiverUrl: string;
const hooks: { id: string; body: string }[] = [];

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(server.address() as { port: number }).port}`;
}

beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} missing: run \`npm run build\` (npm test does)`);
  work = await mkdtemp(join(tmpdir(), 'ir-client-e2e-'));
  const modelDir = join(work, 'model');
  await convertCheckpoint({ checkpoint: join(ROOT, 'test', 'fixtures', 'checkpoint', 'tiny224.pt'), out: modelDir, config: fixture.config });
  images = await Promise.all(
    Array.from({ length: 12 }, (_, i) => sharp({ create: { width: 36 + i, height: 28 + ((i * 5) % 13), channels: 3, background: { r: (i * 71) % 256, g: (i * 23) % 256, b: (i * 151) % 256 } } }).png().toBuffer()),
  );
  slowServer = http.createServer((_req, res) => {
    const timer = setTimeout(() => res.writeHead(200, { 'content-type': 'image/png' }).end(images[11]), SLOW_MS);
    res.on('close', () => clearTimeout(timer));
  });
  slowHost = await listen(slowServer);
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      hooks.push({ id: String(req.headers['webhook-id'] ?? ''), body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  receiverUrl = `http://${await listen(receiver)}/hook`;
  const originPort = await freePort();
  origin = await startServeProcess({ modelDir, apiKey: ORIGIN_SECRET, port: originPort });
  edge = await startWranglerDev({
    persistTo: join(work, 'wrangler-state'),
    vars: {
      ORIGINS: `http://127.0.0.1:${originPort}`,
      ORIGIN_SECRET,
      ADMIN_SECRET,
      MODEL_ID: 'tiny224',
      AUTH: 'required',
      ORIGIN_TIMEOUT_MS: '30000',
      URL_FETCH_ALLOW: slowHost,
      WEBHOOK_ALLOW_INSECURE_LOOPBACK: 'on',
      WEBHOOK_RETRY_SCHEDULE: '0.5,0.5,0.5',
    },
  });
  const made = await fetch(`${edge.url}/admin/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_SECRET}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tenant: 'client-e2e', tier: 'high' }),
  });
  expect(made.status).toBe(201);
  apiKey = ((await made.json()) as { key: string }).key;
  ir = createClient(edge.url, { apiKey });
}, 180_000);

afterAll(async () => {
  await edge?.stop();
  await origin?.kill();
  for (const server of [slowServer, receiver]) {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  }
  if (work) await rm(work, { recursive: true, force: true });
});

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(p: Promise<unknown>): Promise<ImageRewardApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImageRewardApiError);
  return err as ImageRewardApiError;
}

const NOT_AN_IMAGE = new TextEncoder().encode('this is not an image, just some text bytes');

describe('typed client against wrangler dev + a GPU service', () => {
  it('scores: a miss, then the same images from the cache with identical rewards', async () => {
    const first = await ir.score('a red fox in the snow', [images[0]!, images[1]!, { data: images[2]!.toString('base64') }]);
    expect(first.cache).toBe('MISS');
    expect(first.requestId).toMatch(/\S/);
    expect(first.model).toBe('tiny224');
    expect(first.rewards).toHaveLength(3);
    expect([...first.ranking].sort()).toEqual([1, 2, 3]);
    const again = await ir.score('a red fox in the snow', [images[0]!, images[1]!, images[2]!]);
    expect(again.cache).toBe('HIT');
    expect(again.rewards).toEqual(first.rewards);
    expect(again.cached).toEqual([true, true, true]);
    expect(again.requestId).not.toBe(first.requestId);
  });

  it('reports a bad image in errors[] and scores the others', async () => {
    const r = await ir.score('a lighthouse', [images[3]!, NOT_AN_IMAGE, images[4]!]);
    expect(r.rewards[1]).toBeNull();
    expect(r.ranking[1]).toBeNull();
    expect(typeof r.rewards[0]).toBe('number');
    expect(r.errors).toEqual([expect.objectContaining({ index: 1, code: 'unsupported_image_format', status: 415 })]);
  });

  it('throws ImageRewardApiError when every image is bad', async () => {
    const err = await rejection(ir.score('a lighthouse', [NOT_AN_IMAGE, NOT_AN_IMAGE]));
    expect(err.status).toBe(415);
    expect(err.code).toBe('unsupported_image_format');
    expect(err.requestId).toMatch(/\S/);
    expect(err.problem?.request_id).toBe(err.requestId);
    expect(err.errors.length).toBe(2);
    expect(err.message).toContain('unsupported_image_format');
  });

  it('throws 401 unauthorized without a key, and with a wrong one', async () => {
    const anonymous = createClient(edge!.url);
    const err = await rejection(anonymous.models());
    expect(err).toMatchObject({ status: 401, code: 'unauthorized' });
    expect(err.requestId).toMatch(/\S/);
    const wrong = await rejection(createClient(edge!.url, { apiKey: 'irk_not_a_real_key' }).score('x', [images[0]!]));
    expect(wrong).toMatchObject({ status: 401, code: 'unauthorized' });
  });

  it('models(): the model and the edge limits', async () => {
    const m = await ir.models();
    expect(m.object).toBe('list');
    expect(m.data[0]).toMatchObject({ id: 'tiny224', object: 'model', ready: true });
    expect(m.data[0]!.limits.maxImagesPerRequest).toBeGreaterThan(0);
  });

  it('scoreBatch(): a result per request, a bad request as its problem', async () => {
    const out = await ir.scoreBatch([
      { prompt: 'a red fox in the snow', images: [images[0]!, images[1]!] },
      { prompt: 'nothing good', images: [NOT_AN_IMAGE] },
    ]);
    expect(out.results).toHaveLength(2);
    expect(out.results[0]).toMatchObject({ model: 'tiny224', cached: [true, true] });
    expect(out.results[1]).toMatchObject({ code: 'unsupported_image_format', status: 415 });
  });

  it('createJob + waitForJob: completed with the same rewards as score()', async () => {
    const items = [
      { id: 'fox', prompt: 'a red fox in the snow', images: [images[5]!, images[6]!] },
      { id: 'house', prompt: 'a small house by a lake', images: [images[7]!, NOT_AN_IMAGE] },
    ];
    const created = await ir.createJob({ items, metadata: { suite: 'client' }, webhook: { url: receiverUrl } }, { idempotencyKey: 'client-e2e-job-1' });
    expect(created.replayed).toBe(false);
    expect(created.status).toMatch(/queued|running/);
    expect(created.webhook?.secret).toMatch(/^whsec_/);
    const job = await ir.waitForJob(created.id, { intervalMs: 200, timeoutMs: 60_000 });
    expect(job.status).toBe('completed');
    expect(job.metadata).toEqual({ suite: 'client' });
    expect(job.items?.map((i) => i.status)).toEqual(['succeeded', 'succeeded']);
    for (const [i, item] of items.entries()) {
      const direct = await ir.score(item.prompt, item.images);
      expect(job.items![i]!.result!.rewards).toEqual(direct.rewards);
      expect(job.items![i]!.result!.ranking).toEqual(direct.ranking);
    }
    expect(job.items![1]!.result!.errors?.[0]).toMatchObject({ index: 1, code: 'unsupported_image_format' });
    const light = await ir.getJob(created.id, { items: false });
    expect(light.items).toBeUndefined();
    expect(light.progress).toMatchObject({ total: 2, done: 2, succeeded: 2 });

    // The same key and body: the same job, replayed.
    const replay = await ir.createJob({ items, metadata: { suite: 'client' }, webhook: { url: receiverUrl } }, { idempotencyKey: 'client-e2e-job-1' });
    expect(replay.id).toBe(created.id);
    expect(replay.replayed).toBe(true);
    // The same key with another body: refused.
    const reused = await rejection(ir.createJob({ items: items.slice(0, 1) }, { idempotencyKey: 'client-e2e-job-1' }));
    expect(reused).toMatchObject({ status: 422, code: 'idempotency_key_reused' });

    // The webhook arrives; deliveries() logs it; redeliver() schedules it again.
    const t0 = Date.now();
    while (!hooks.some((h) => h.body.includes(created.id)) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 200));
    const { deliveries } = await ir.deliveries(created.id);
    expect(deliveries.map((d) => d.outcome)).toContain('delivered');
    expect(deliveries[0]!.event).toBe('job.completed');
    expect(await ir.redeliver(created.id)).toEqual({ status: 'scheduled' });
  });

  it('cancelJob(): a running job is cancelled; cancelling again is job_finished', async () => {
    const created = await ir.createJob({ items: [{ prompt: 'slow', images: [{ url: `http://${slowHost}/slow.png` }] }, { prompt: 'slow too', images: [{ url: `http://${slowHost}/slow2.png` }] }] });
    const cancelled = await ir.cancelJob(created.id);
    expect(cancelled.status).toBe('cancelled');
    const again = await rejection(ir.cancelJob(created.id));
    expect(again).toMatchObject({ status: 409, code: 'job_finished' });
    expect((await ir.waitForJob(created.id, { intervalMs: 100, timeoutMs: 5_000 })).status).toBe('cancelled');
    // A job with no webhook cannot be redelivered.
    expect(await rejection(ir.redeliver(created.id))).toMatchObject({ status: 400, code: 'invalid_request' });
  });

  it('waitForJob gives up with JobWaitTimeoutError, and getJob of an unknown job is not_found', async () => {
    const created = await ir.createJob({ items: [{ prompt: 'slow', images: [{ url: `http://${slowHost}/slow3.png` }] }] });
    const err = await ir.waitForJob(created.id, { intervalMs: 100, timeoutMs: 300 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(JobWaitTimeoutError);
    expect((err as JobWaitTimeoutError).job.id).toBe(created.id);
    await ir.cancelJob(created.id);
    expect(await rejection(ir.getJob('0'.repeat(64)))).toMatchObject({ status: 404, code: 'not_found' });
    // An id is one path segment, whatever it contains.
    expect(await rejection(ir.getJob('../models'))).toMatchObject({ status: 404, code: 'not_found' });
  });

  it('raw: the hc client is typed by EdgeSchema and reaches every kind of route', async () => {
    const res = await ir.raw.v1.score.$post({ json: { prompt: 'a red fox in the snow', images: [{ data: images[0]!.toString('base64') }] } });
    expect(res.status).toBe(200);
    if (!res.ok) throw new Error(`unexpected ${res.status}`);
    const body = await res.json(); // ScoreResponse: `rewards` is typed, no cast
    const firstReward: number | null | undefined = body.rewards[0];
    expect(typeof firstReward).toBe('number');
    expect(res.headers.get('x-cache')).toBe('HIT');

    // The types bite: a number is not a prompt. (Sent anyway: the edge agrees.)
    // @ts-expect-error prompt must be a string
    const bad = await ir.raw.v1.score.$post({ json: { prompt: 42, images: [{ data: 'AAAA' }] } });
    expect(bad.status).toBe(400);
    if (bad.ok) throw new Error('expected a problem');
    expect((await bad.json()).code).toBe('invalid_request'); // ProblemBody on the error branch

    const batch = await ir.raw.v1['score:batch'].$post({ json: { requests: [{ prompt: 'x', images: [{ data: images[1]!.toString('base64') }] }] } });
    expect(batch.status).toBe(200);
    const missing = await ir.raw.v1.jobs[':id'].$get({ param: { id: 'f'.repeat(64) }, query: { items: 'false' } });
    expect(missing.status).toBe(404);
    const health = await ir.raw.healthz.$get();
    expect(health.ok).toBe(true);
    if (health.ok) expect((await health.json()).model).toBe('tiny224');
  });

  it('the edge routes every path of EdgeSchema (no "no route" 404, no 405)', async () => {
    const jobId = '0'.repeat(64);
    for (const [path, methods] of Object.entries(EDGE_ROUTES)) {
      for (const method of methods) {
        const res = await fetch(`${edge!.url}${path.replace(':id', jobId)}`, {
          method,
          headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
          ...(method === 'POST' ? { body: '{}' } : {}),
        });
        const text = await res.text();
        expect(res.status, `${method} ${path}`).not.toBe(405);
        expect(text, `${method} ${path}`).not.toContain('no route for');
      }
    }
  });

  it('retries a Retry-After answer when asked to, and not otherwise', async () => {
    let calls = 0;
    const busy = () =>
      new Response(JSON.stringify({ type: 'about:blank', title: 'busy', status: 503, detail: 'queue full', code: 'queue_full' }), {
        status: 503,
        headers: { 'content-type': 'application/problem+json', 'retry-after': '0', 'x-request-id': 'r-1' },
      });
    const fake: typeof fetch = async (input, init) => {
      calls += 1;
      return calls === 1 ? busy() : fetch(input, init);
    };
    const retrying = createClient(edge!.url, { apiKey, fetch: fake, retry: { attempts: 2, maxDelayMs: 50 } });
    expect((await retrying.models()).data[0]!.id).toBe('tiny224');
    expect(calls).toBe(2);
    calls = 0;
    const plain = createClient(edge!.url, { apiKey, fetch: fake });
    const err = await rejection(plain.models());
    expect(err).toMatchObject({ status: 503, code: 'queue_full', retryAfterSeconds: 0, requestId: 'r-1', detail: 'queue full' });
    expect(calls).toBe(1);
  });

  it('toBase64 matches Buffer for sizes around its chunking', () => {
    for (const n of [0, 1, 2, 3, 0x8000 - 1, 0x8000, 0x8000 + 1, 200_001]) {
      const bytes = new Uint8Array(n).map((_, i) => (i * 31 + 7) % 256);
      expect(toBase64(bytes), `n=${n}`).toBe(Buffer.from(bytes).toString('base64'));
    }
  });

  it('examples/score.ts prints the rewards and ranking', async () => {
    const files = await Promise.all(
      [images[0]!, images[1]!, Buffer.from(NOT_AN_IMAGE)].map(async (b, i) => {
        const p = join(work, `ex-${i}.png`);
        await writeFile(p, b);
        return p;
      }),
    );
    const expected = await ir.score('a red fox in the snow', files.map((f) => readFileSync(f)));
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'examples', 'score.ts'), ...files, '--prompt', 'a red fox in the snow'], {
      cwd: ROOT,
      env: { ...process.env, IMAGEREWARD_URL: edge!.url, IMAGEREWARD_API_KEY: apiKey },
    });
    expect(stdout).toMatch(/^model tiny224 · cache HIT · request \S+/);
    for (const i of [0, 1]) {
      expect(stdout).toContain(`${String(expected.ranking[i]).padStart(4)}  ${expected.rewards[i]!.toFixed(4).padStart(7)}  ex-${i}.png`);
    }
    expect(stdout).toContain('   -  error    ex-2.png: unsupported_image_format');
    // No key → exit 1 with the problem on stderr.
    const failed = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'examples', 'score.ts'), files[0]!, '--prompt', 'x'], {
      cwd: ROOT,
      env: { ...process.env, IMAGEREWARD_URL: edge!.url, IMAGEREWARD_API_KEY: '' },
    }).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(/^error unauthorized \(HTTP 401\)/);
  });

  it('examples/job.ts submits, waits and prints every item; a re-run replays the job', async () => {
    const files = await Promise.all(
      [images[8]!, images[9]!].map(async (b, i) => {
        const p = join(work, `job-${i}.png`);
        await writeFile(p, b);
        return p;
      }),
    );
    const args = ['--import', 'tsx', join(ROOT, 'examples', 'job.ts'), '--prompt', 'a blue bird', files[0]!, files[1]!, '--prompt', 'a green field', files[1]!];
    const opts = { cwd: ROOT, env: { ...process.env, IMAGEREWARD_URL: edge!.url, IMAGEREWARD_API_KEY: apiKey } };
    const first = await run(process.execPath, args, opts);
    expect(first.stdout).toMatch(/^job [0-9a-f]{64} created · 2 items/);
    expect(first.stdout).toContain('status completed · 2 succeeded, 0 failed');
    expect(first.stdout).toContain('item-0 "a blue bird": succeeded');
    expect(first.stdout).toContain('item-1 "a green field": succeeded');
    const direct = await ir.score('a blue bird', [images[8]!, images[9]!]);
    expect(first.stdout).toContain(`${String(direct.ranking[0]).padStart(4)}  ${direct.rewards[0]!.toFixed(4).padStart(7)}  job-0.png`);
    const second = await run(process.execPath, args, opts);
    const id = /^job ([0-9a-f]{64})/.exec(first.stdout)?.[1];
    expect(second.stdout).toMatch(new RegExp(`^job ${id} \\(replayed`));
  });

  it('the package export imagereward-serve/client resolves to the built client', async () => {
    expect(existsSync(DIST_CLIENT), `${DIST_CLIENT} missing: run \`npm run build\``).toBe(true);
    // A variable specifier: tsc does not resolve it (a type-check must not need dist/), the runtime does.
    const specifier = 'imagereward-serve/client';
    const mod = (await import(specifier)) as typeof import('../../client/index.js');
    expect(typeof mod.createClient).toBe('function');
    expect((await mod.createClient(edge!.url, { apiKey }).models()).data[0]!.id).toBe('tiny224');
    // And as plain Node resolves it (no vite in between).
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', "const m = await import('imagereward-serve/client'); console.log(Object.keys(m).sort().join(','))"], { cwd: ROOT });
    expect(stdout.trim().split(',')).toEqual(expect.arrayContaining(['ImageRewardApiError', 'JobWaitTimeoutError', 'createClient']));
  });
});
