// A whole loopback stack for the e2e suite (test/e2e) and the stack benchmark
// (bench/stack-load.ts): N GPU services (`imagereward serve`, ONNX Runtime, one
// thread, the tiny224 test model converted once into a temp dir), `wrangler dev`
// in front of them (state persisted to the same temp dir, so it can be stopped
// and started again on the same port with its KV, Durable Objects and queues),
// an image server for URL images, and a webhook receiver that verifies every
// delivery with contracts/webhooks.ts and can be taken down and up (flapping).
//
// Every child is killed when the stack stops, and — should a test die before
// its afterAll — when the test process exits (a synchronous exit hook), so a
// failure leaks nothing. Nothing here talks to anything but 127.0.0.1.
import { type ChildProcess } from 'node:child_process';
import { startServeProcess } from '../../support/serve-process.js';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Job } from '../../../contracts/api/index.js';
import type { ImageRewardConfig } from '../../../gpu-service/model/architecture.js';
import { convertCheckpoint } from '../../../gpu-service/model/convert.js';
import { verifyWebhook, WebhookVerificationError } from '../../../contracts/webhooks.js';
import { freePort, startWranglerDev, type WranglerDev } from '../../support/wrangler-dev.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const DIST = join(ROOT, 'dist', 'gpu-service', 'cli', 'main.js');

export const ORIGIN_SECRET = 'e2e-stack-origin-secret-0123456789';
export const ADMIN_SECRET = 'e2e-stack-admin-secret-9876543210';
/** The receiver's secret: jobs name it in `webhook.secret`, so every delivery can be verified here. */
export const WEBHOOK_SECRET = 'whsec_' + Buffer.from('e2e-stack-webhook-secret-32-bytes!!').toString('base64');
export const MODEL_ID = 'tiny224';

export interface StackOptions {
  /** GPU services (default 2). */
  origins?: number;
  /** Extra or overriding `wrangler dev` vars. */
  vars?: Record<string, string>;
}

export type Tier = 'trial' | 'standard' | 'high';

export interface ProcessRss {
  /** "origin 0", "wrangler", "workerd", … */
  name: string;
  pid: number;
  rssMB: number;
}

// ---------------------------------------------------------------------------
// Children and the exit hook

const live = new Set<ChildProcess>();
let hooked = false;
function trackChild(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (hooked) return;
  hooked = true;
  // Last resort (only synchronous work runs in 'exit'): the test process ends with origins up.
  process.on('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

interface Origin {
  port: number;
  url: string;
  child?: ChildProcess;
  exited?: Promise<void>;
}

function spawnOrigin(modelDir: string, port: number): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  return startServeProcess({ modelDir, apiKey: ORIGIN_SECRET, port, extraArgs: ['--trust-tenant-header'], onSpawn: trackChild }).then(({ child, exited }) => ({ child, exited }));
}

// ---------------------------------------------------------------------------
// RSS from /proc

export function rssMBOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN; // exited
  }
}

/** CPU time (user + system) of a process in ms, from /proc/<pid>/stat (USER_HZ = 100). */
export function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return NaN;
  }
}

/** Every descendant of `root` with its command name (wrangler's node process starts workerd, esbuild, …). */
function descendants(root: number): { pid: number; comm: string }[] {
  const kids = new Map<number, number[]>();
  const comm = new Map<number, string>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      comm.set(Number(d), stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')));
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch {
      /* exited while listing */
    }
  }
  const out: { pid: number; comm: string }[] = [];
  const queue = [...(kids.get(root) ?? [])];
  while (queue.length > 0) {
    const p = queue.shift()!;
    out.push({ pid: p, comm: comm.get(p) ?? '?' });
    queue.push(...(kids.get(p) ?? []));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Images

/** Distinct small PNGs (real images the GPU service decodes). */
export async function makePngs(n: number, seed: number): Promise<Buffer[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      sharp({ create: { width: 32 + ((i * 7 + seed) % 40), height: 24 + ((i * 5 + seed) % 30), channels: 3, background: { r: (seed * 37 + i * 53) % 256, g: (i * 91 + seed) % 256, b: (seed * 11 + i * 29) % 256 } } })
        .png()
        .toBuffer(),
    ),
  );
}

/**
 * A source of never-seen-before JPEGs without encoding one per request: a COM
 * segment holding a counter right after SOI makes the bytes (hence the cache
 * key) unique while the pixels stay the same.
 */
export async function uniqueJpegs(): Promise<(n: number) => Buffer> {
  const base = await sharp({ create: { width: 48, height: 40, channels: 3, background: { r: 200, g: 90, b: 30 } } }).jpeg().toBuffer();
  const rest = base.subarray(2);
  const tag = `${process.pid}-${Date.now()}-`;
  return (n: number) => {
    const text = Buffer.from(`${tag}${n}`, 'latin1');
    const head = Buffer.from([0xff, 0xd8, 0xff, 0xfe, (text.length + 2) >> 8, (text.length + 2) & 0xff]);
    return Buffer.concat([head, text, rest]);
  };
}

// ---------------------------------------------------------------------------
// The webhook receiver

export interface Delivery {
  /** webhook-id (the same on every attempt of one message). */
  id: string;
  body: string;
  headers: Record<string, string>;
  at: number;
  /** null when verifyWebhook accepted it, else its failure reason. */
  failure: string | null;
  /** What this receiver answered. */
  answered: number;
}

export interface WebhookReceiver {
  url: string;
  port: number;
  /** Every attempt that reached the handler, in order. */
  deliveries: Delivery[];
  /** Answer every call with `status` (e.g. 503) while set; undefined → 204. */
  failWith(status: number | undefined): void;
  /** Stop listening (connections refused) until up(); open connections are dropped. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

async function startReceiver(): Promise<WebhookReceiver> {
  const deliveries: Delivery[] = [];
  let failStatus: number | undefined;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
      const answered = failStatus ?? 204;
      const d: Delivery = { id: headers['webhook-id'] ?? '', body, headers, at: Date.now(), failure: null, answered };
      deliveries.push(d);
      // Verified before answering, with the exact raw body: a receiver that answers 2xx has checked it.
      verifyWebhook(body, headers, WEBHOOK_SECRET)
        .then(
          () => undefined,
          (err: unknown) => {
            d.failure = err instanceof WebhookVerificationError ? err.reason : String(err);
          },
        )
        .finally(() => res.writeHead(answered).end());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  let listening = true;
  const stopListening = async () => {
    if (!listening) return;
    listening = false;
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    deliveries,
    failWith: (s) => (failStatus = s),
    down: stopListening,
    up: async () => {
      if (listening) return;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
      listening = true;
    },
    close: stopListening,
  };
}

// ---------------------------------------------------------------------------
// The image server (URL images; the edge's allow list admits only its host:port)

export interface ImageServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * GET /img/<i> → images[i] (PNG); /text → text/plain; /big → 9 MiB that start like a PNG;
 * /redirect?to=<url> → 302 to that URL (a redirect to a private host); /loop → redirects forever.
 */
async function startImageServer(images: readonly Buffer[]): Promise<ImageServer> {
  const big = Buffer.alloc(9 * 1024 * 1024);
  images[0]!.copy(big);
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const img = /^\/img\/(\d+)$/.exec(u.pathname);
    if (img) {
      const b = images[Number(img[1])];
      if (b) res.writeHead(200, { 'content-type': 'image/png', 'content-length': b.length }).end(b);
      else res.writeHead(404).end();
    } else if (u.pathname === '/text') res.writeHead(200, { 'content-type': 'text/plain' }).end('not an image at all');
    else if (u.pathname === '/big') res.writeHead(200, { 'content-type': 'image/png', 'content-length': big.length }).end(big);
    else if (u.pathname === '/redirect') res.writeHead(302, { location: u.searchParams.get('to') ?? '/' }).end();
    else if (u.pathname === '/loop') res.writeHead(302, { location: '/loop' }).end();
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

// ---------------------------------------------------------------------------
// The stack

export interface Stack {
  /** The edge (wrangler dev), http://127.0.0.1:<port>; the same across restartEdge(). */
  edgeUrl: string;
  originUrls: string[];
  /** A standard-tier key made through the admin API. */
  key: string;
  images: Buffer[];
  imageServer: ImageServer;
  receiver: WebhookReceiver;
  createKey(tier?: Tier, tenant?: string): Promise<{ key: string; id: string }>;
  revokeKey(id: string): Promise<void>;
  /** SIGKILL one GPU service (a crash, no drain). */
  killOrigin(i: number): Promise<void>;
  /** Start it again on the same port. */
  startOrigin(i: number): Promise<void>;
  /** Stop `wrangler dev` (and workerd) and start it again on the same port with the same state. */
  restartEdge(): Promise<void>;
  /** RSS of every process of the stack now (GPU services, wrangler's node, workerd and other children). */
  rss(): ProcessRss[];
  /** wrangler's output so far (for failure messages). */
  edgeOutput(): string;
  stop(): Promise<void>;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  if (!existsSync(DIST)) throw new Error(`${DIST} missing: run \`npm run build\` (npm test does)`);
  const work = await mkdtemp(join(tmpdir(), 'ir-e2e-stack-'));
  const origins: Origin[] = [];
  let edge: WranglerDev | undefined;
  let imageServer: ImageServer | undefined;
  let receiver: WebhookReceiver | undefined;
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await edge?.stop();
    await Promise.all(
      origins.map(async (o) => {
        o.child?.kill('SIGKILL');
        await o.exited;
      }),
    );
    await imageServer?.close();
    await receiver?.close();
    await rm(work, { recursive: true, force: true });
  };

  try {
    const modelDir = join(work, 'model');
    const fixture = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'model', 'tiny224-e2e.json'), 'utf8')) as { config: ImageRewardConfig };
    await convertCheckpoint({ checkpoint: join(ROOT, 'test', 'fixtures', 'checkpoint', 'tiny224.pt'), out: modelDir, config: fixture.config });
    const images = await makePngs(24, 3);
    imageServer = await startImageServer(images);
    receiver = await startReceiver();

    for (let i = 0; i < (opts.origins ?? 2); i++) {
      const port = await freePort();
      origins.push({ port, url: `http://127.0.0.1:${port}` });
    }
    await Promise.all(
      origins.map(async (o) => {
        Object.assign(o, await spawnOrigin(modelDir, o.port));
      }),
    );

    const state = join(work, 'wrangler-state');
    const edgePort = await freePort();
    const vars: Record<string, string> = {
      ORIGINS: origins.map((o) => o.url).join(','),
      ORIGIN_SECRET,
      ADMIN_SECRET,
      MODEL_ID,
      AUTH: 'required',
      URL_FETCH_ALLOW: `127.0.0.1:${imageServer.port}`,
      ORIGIN_TIMEOUT_MS: '20000',
      ORIGIN_FAILURE_THRESHOLD: '2',
      ORIGIN_OPEN_MS: '1000',
      WEBHOOK_ALLOW_INSECURE_LOOPBACK: 'on',
      WEBHOOK_RETRY_SCHEDULE: '0.5,0.5,0.5,1,1,1,2,2',
      WEBHOOK_TIMEOUT_MS: '3000',
      JOB_STALL_SECONDS: '4',
      ...opts.vars,
    };
    const startEdge = () => startWranglerDev({ persistTo: state, port: edgePort, vars, timeoutMs: 90_000 });
    edge = await startEdge();
    const edgeUrl = edge.url;

    const createKey = async (tier: Tier = 'standard', tenant = `e2e-${tier}`): Promise<{ key: string; id: string }> => {
      const res = await fetch(`${edgeUrl}/admin/keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_SECRET}`, 'content-type': 'application/json' },
        body: JSON.stringify({ tenant, tier }),
      });
      if (res.status !== 201 && res.status !== 200) throw new Error(`POST /admin/keys answered ${res.status}: ${await res.text()}`);
      return (await res.json()) as { key: string; id: string };
    };
    const { key } = await createKey('standard', 'e2e');

    const stack: Stack = {
      edgeUrl,
      originUrls: origins.map((o) => o.url),
      key,
      images,
      imageServer,
      receiver,
      createKey,
      revokeKey: async (id) => {
        const res = await fetch(`${edgeUrl}/admin/keys/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_SECRET}` } });
        await res.arrayBuffer();
        if (res.status >= 300) throw new Error(`DELETE /admin/keys/${id} answered ${res.status}`);
      },
      killOrigin: async (i) => {
        const o = origins[i]!;
        o.child?.kill('SIGKILL');
        await o.exited;
        o.child = undefined;
      },
      startOrigin: async (i) => {
        const o = origins[i]!;
        if (o.child) return;
        // The port was just freed by a SIGKILL: the listener is gone at once, no TIME_WAIT on a listening socket.
        Object.assign(o, await spawnOrigin(modelDir, o.port));
      },
      restartEdge: async () => {
        await edge!.stop();
        edge = await startEdge();
      },
      rss: () => {
        const out: ProcessRss[] = [];
        origins.forEach((o, i) => {
          if (o.child?.pid !== undefined) out.push({ name: `origin ${i}`, pid: o.child.pid, rssMB: rssMBOf(o.child.pid) });
        });
        if (edge) {
          out.push({ name: 'wrangler (node)', pid: edge.pid, rssMB: rssMBOf(edge.pid) });
          // wrangler re-executes itself in a child node and starts workerd (two: its proxy and the
          // worker) and esbuild: numbered by kind, in tree order.
          const seen = new Map<string, number>();
          for (const d of descendants(edge.pid)) {
            const n = (seen.get(d.comm) ?? 0) + 1;
            seen.set(d.comm, n);
            out.push({ name: `wrangler › ${d.comm} ${n}`, pid: d.pid, rssMB: rssMBOf(d.pid) });
          }
        }
        return out.filter((p) => Number.isFinite(p.rssMB));
      },
      edgeOutput: () => edge?.output() ?? '',
      stop,
    };
    return stack;
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Small client helpers shared by the e2e files

export const b64 = (b: Buffer): { data: string } => ({ data: b.toString('base64') });

/** Polls `f` every 200 ms until it returns a value (not undefined) or `timeoutMs` passes. */
export async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** GET /v1/jobs/:id (without items unless asked) with `key`. */
export async function getJob(edgeUrl: string, id: string, key: string, items = false): Promise<Job> {
  const res = await fetch(`${edgeUrl}/v1/jobs/${id}${items ? '' : '?items=false'}`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(10_000) });
  if (res.status !== 200) throw new Error(`GET /v1/jobs/${id} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as Job;
}

/** The job once it is completed, failed or cancelled. */
export function finished(edgeUrl: string, id: string, key: string, timeoutMs = 90_000, items = false): Promise<Job> {
  return until(
    `job ${id} to finish`,
    async () => {
      const j = await getJob(edgeUrl, id, key, items);
      return ['completed', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
    },
    timeoutMs,
  );
}
