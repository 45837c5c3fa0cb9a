// The edge end to end on loopback, as users run it: `wrangler dev` (workerd,
// local KV / Cache API / rate limits; metrics and cf fetch off) in front of two
// real GPU services (`imagereward serve`, ONNX Runtime, the tiny224 test model),
// API keys made with the real `imagereward keys` CLI through the admin API.
// Nothing here talks to anything but 127.0.0.1.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { convertCheckpoint } from '../../gpu-service/model/convert.js';
import { main as cli } from '../../gpu-service/cli/main.js';
import { startServeProcess, type ServeProcess } from '../support/serve-process.js';
import { startWranglerDev } from '../support/wrangler-dev.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'dist', 'gpu-service', 'cli', 'main.js');
const fixture = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'model', 'tiny224-e2e.json'), 'utf8')) as { config: ImageRewardConfig; images: string[] };

const ORIGIN_SECRET = 'e2e-origin-secret-0123456789';
const ADMIN_SECRET = 'e2e-admin-secret-9876543210';

interface Io {
  stdout(s: string): void;
  stderr(s: string): void;
}
async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { stdout: (s) => (out += s), stderr: (s) => (err += s) };
  const code = await cli(args, io as Parameters<typeof cli>[1]);
  return { code, out, err };
}

let work: string;
let origins: ServeProcess[] = [];
let edge: Awaited<ReturnType<typeof startWranglerDev>> | undefined;
let imageServer: http.Server;
let imageUrl: string;
let standardKey: string;
let images: Buffer[] = [];

/** Distinct real PNGs (the GPU service decodes them), made with sharp. */
async function makeImages(n: number, seed: number): Promise<Buffer[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      sharp({ create: { width: 32 + ((i * 7) % 40), height: 24 + ((i * 5) % 30), channels: 3, background: { r: (seed * 37 + i * 53) % 256, g: (i * 91) % 256, b: (seed * 11 + i * 29) % 256 } } })
        .png()
        .toBuffer(),
    ),
  );
}

const auth = (key = standardKey) => ({ authorization: `Bearer ${key}` });
const b64 = (b: Buffer) => ({ data: b.toString('base64') });

async function score(body: unknown, key = standardKey, extra: Record<string, string> = {}): Promise<Response> {
  return fetch(`${edge!.url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth(key), ...extra }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

interface ScoreBody {
  model: string;
  rewards: (number | null)[];
  ranking: (number | null)[];
  cached: boolean[];
  errors?: { index: number; code: string }[];
}

beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} missing: run \`npm run build\` (npm test does)`);
  work = await mkdtemp(join(tmpdir(), 'ir-edge-e2e-'));
  const modelDir = join(work, 'model');
  await convertCheckpoint({ checkpoint: join(ROOT, 'test', 'fixtures', 'checkpoint', 'tiny224.pt'), out: modelDir, config: fixture.config });
  images = await makeImages(40, 1);
  imageServer = http.createServer((req, res) => {
    const i = Number((req.url ?? '').replace(/^\/img\//, ''));
    const img = images[i];
    if (!img) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': img.length }).end(img);
  });
  await new Promise<void>((r) => imageServer.listen(0, '127.0.0.1', r));
  const port = (imageServer.address() as { port: number }).port;
  imageUrl = `http://127.0.0.1:${port}`;
  origins = await Promise.all([0, 1].map(() => startServeProcess({ modelDir, apiKey: ORIGIN_SECRET })));
  edge = await startWranglerDev({
    persistTo: join(work, 'wrangler-state'),
    vars: {
      ORIGINS: origins.map((o) => o.url).join(','),
      ORIGIN_SECRET,
      ADMIN_SECRET,
      MODEL_ID: 'tiny224',
      AUTH: 'required',
      URL_FETCH_ALLOW: `127.0.0.1:${port}`,
      ORIGIN_TIMEOUT_MS: '20000',
      ORIGIN_FAILURE_THRESHOLD: '2',
      ORIGIN_OPEN_MS: '1000',
    },
  });
  const made = await runCli(['keys', 'create', '--tenant', 'e2e', '--tier', 'standard', '--edge', edge.url, '--admin-secret', ADMIN_SECRET, '--json']);
  expect(made.code, made.err).toBe(0);
  standardKey = (JSON.parse(made.out) as { key: string }).key;
}, 180_000);

afterAll(async () => {
  await edge?.stop();
  await Promise.all(origins.map((o) => o.kill()));
  await new Promise((r) => imageServer?.close(r));
  if (work) await rm(work, { recursive: true, force: true });
});

describe('edge e2e: scoring through wrangler dev', () => {
  it('misses, then hits with the same rewards the GPU service gives directly', async () => {
    const body = { prompt: 'a watercolor lighthouse at dusk', images: images.slice(0, 3).map(b64) };
    const miss = await score(body);
    expect(miss.status).toBe(200);
    expect(miss.headers.get('x-cache')).toBe('MISS');
    const a = (await miss.json()) as ScoreBody;
    const hit = await score(body);
    expect(hit.headers.get('x-cache')).toBe('HIT');
    const b = (await hit.json()) as ScoreBody;
    expect(b.rewards).toEqual(a.rewards);
    expect(b.ranking).toEqual(a.ranking);
    expect(b.cached).toEqual([true, true, true]);
    const direct = (await (await fetch(`${origins[0]!.url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ORIGIN_SECRET}` }, body: JSON.stringify(body) })).json()) as ScoreBody;
    expect(a.rewards).toEqual(direct.rewards);
    expect(a.model).toBe('tiny224');
  });

  it('merges partial hits, multipart uploads and URL images', async () => {
    const prompt = 'macro photo of a beetle';
    await score({ prompt, images: [b64(images[3]!), b64(images[4]!)] });
    const form = new FormData();
    form.append('prompt', prompt);
    for (const i of [5, 3, 4]) form.append(`f${i}`, new Blob([images[i]!]), `${i}.png`);
    const res = await fetch(`${edge!.url}/v1/score`, { method: 'POST', headers: auth(), body: form });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-cache')).toBe('PARTIAL');
    const mp = (await res.json()) as ScoreBody;
    expect(mp.cached).toEqual([false, true, true]);
    const viaUrl = await score({ prompt, images: [{ url: `${imageUrl}/img/5` }, { url: `${imageUrl}/img/999` }] });
    expect(viaUrl.headers.get('x-cache')).toBe('HIT');
    const u = (await viaUrl.json()) as ScoreBody;
    expect(u.rewards[0]).toBe(mp.rewards[0]);
    expect(u.errors).toMatchObject([{ index: 1, code: 'url_fetch_failed' }]);
  });

  it('refuses missing, wrong and revoked keys, and rate-limits a trial key', async () => {
    const body = { prompt: 'x', images: [b64(images[6]!)] };
    const none = await fetch(`${edge!.url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(none.status).toBe(401);
    expect((await score(body, 'irk_not-a-real-key')).status).toBe(401);
    const made = await runCli(['keys', 'create', '--tenant', 'e2e-revoked', '--edge', edge!.url, '--admin-secret', ADMIN_SECRET, '--json']);
    const { key, id } = JSON.parse(made.out) as { key: string; id: string };
    expect((await runCli(['keys', 'revoke', id, '--edge', edge!.url, '--admin-secret', ADMIN_SECRET])).code).toBe(0);
    const revoked = await score(body, key);
    expect(revoked.status).toBe(401);
    expect(await revoked.json()).toMatchObject({ code: 'unauthorized' });

    const trial = JSON.parse((await runCli(['keys', 'create', '--tenant', 'e2e-trial', '--tier', 'trial', '--edge', edge!.url, '--admin-secret', ADMIN_SECRET, '--json'])).out) as { key: string };
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 14; i++) {
      const r = await fetch(`${edge!.url}/v1/models`, { headers: auth(trial.key) });
      statuses.push(r.status);
      if (r.status === 429) limited = r;
      else await r.arrayBuffer();
    }
    expect(statuses.slice(0, 10).every((s) => s === 200)).toBe(true);
    expect(statuses).toContain(429);
    expect(limited!.headers.get('retry-after')).toBe('10');
    expect(await limited!.json()).toMatchObject({ code: 'rate_limited' });
    // Another key is not affected.
    expect((await fetch(`${edge!.url}/v1/models`, { headers: auth() })).status).toBe(200);
  });

  const big = 'A'.repeat(12 * 1024 * 1024);
  it.each<[string, () => Promise<Response>, number, string]>([
    ['invalid JSON', () => score('{"prompt": "x", "images": ['), 400, 'invalid_json'],
    ['a JSON array', () => score('[1,2]'), 400, 'invalid_request'],
    ['a missing prompt', () => score({ images: [{ data: 'iVBORw0KGgo=' }] }), 400, 'invalid_request'],
    ['a null image', () => score({ prompt: 'x', images: [null] }), 400, 'invalid_request'],
    ['an empty image list', () => score({ prompt: 'x', images: [] }), 400, 'invalid_request'],
    ['bad base64', () => score({ prompt: 'x', images: [{ data: '%%%' }] }), 400, 'invalid_base64'],
    ['a text file as image', () => score({ prompt: 'x', images: [{ data: Buffer.from('just text').toString('base64') }] }), 415, 'unsupported_image_format'],
    ['a truncated PNG', () => score({ prompt: 'x', images: [{ data: images[7]!.subarray(0, 40).toString('base64') }] }), 422, 'image_decode_failed'],
    ['17 images', () => score({ prompt: 'x', images: Array.from({ length: 17 }, () => ({ data: 'iVBORw0KGgo=' })) }), 422, 'too_many_images'],
    ['a 3000-character prompt', () => score({ prompt: 'p'.repeat(3000), images: [{ data: 'iVBORw0KGgo=' }] }), 422, 'prompt_too_long'],
    ['an image over 8 MiB', () => score({ prompt: 'x', images: [{ data: big }] }), 413, 'image_too_large'],
    ['text/plain', () => score('hello', standardKey, { 'content-type': 'text/plain' }), 415, 'unsupported_media_type'],
    ['a file:// URL', () => score({ prompt: 'x', images: [{ url: 'file:///etc/passwd' }] }), 422, 'url_scheme'],
    ['a metadata-address URL', () => score({ prompt: 'x', images: [{ url: 'http://169.254.169.254/latest/meta-data' }] }), 422, 'url_forbidden'],
    ['a loopback URL not allowed', () => score({ prompt: 'x', images: [{ url: `${origins[0]!.url}/healthz` }] }), 422, 'url_forbidden'],
    ['a URL that is not an image', () => score({ prompt: 'x', images: [{ url: `${imageUrl}/nope` }] }), 502, 'url_fetch_failed'],
    ['GET on /v1/score', () => fetch(`${edge!.url}/v1/score`, { headers: auth() }), 405, 'method_not_allowed'],
    ['an unknown route', () => fetch(`${edge!.url}/v2/score`, { headers: auth() }), 404, 'not_found'],
    ['an admin call without its secret', () => fetch(`${edge!.url}/admin/keys`, { headers: auth() }), 403, 'forbidden'],
  ])('answers %s with its problem, and keeps serving', async (_name, send, status, code) => {
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await res.json()).toMatchObject({ code, status });
    const ok = await score({ prompt: 'still serving', images: [b64(images[8]!)] });
    expect(ok.status).toBe(200);
  });

  it('fails over when an origin is killed mid-run, and answers 503 + Retry-After when none is left', async () => {
    const prompt = 'failover run';
    const results: number[] = [];
    let next = 10;
    const worker = async () => {
      while (next < 34) {
        const i = next++;
        if (i === 16) await origins[0]!.kill();
        const r = await score({ prompt, images: [b64(images[i]!)] });
        results.push(r.status);
        await r.arrayBuffer();
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    expect(results).toHaveLength(24);
    expect(results.every((s) => s === 200)).toBe(true);

    await origins[1]!.kill();
    const t0 = Date.now();
    const down = await score({ prompt, images: [b64(images[35]!)] });
    expect(down.status).toBe(503);
    expect(Number(down.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await down.json()).toMatchObject({ code: 'origin_unavailable' });
    expect(Date.now() - t0).toBeLessThan(15_000); // bounded, never a hang (not a benchmark)
    // What is cached is still answered with every origin gone.
    const cached = await score({ prompt, images: [b64(images[12]!)] });
    expect(cached.status).toBe(200);
    expect(cached.headers.get('x-cache')).toBe('HIT');
  });
});
