// The edge on cache hits versus the GPU service answering the same request:
// `wrangler dev` (workerd, local KV + Cache API, API key auth and rate limiting
// on) in front of one `imagereward serve` (ORT, tiny random model), both on
// loopback, driven by autocannon with the same JSON /v1/score body (2 base64
// PNGs). The edge answers every measured request from its cache; the GPU
// service decodes and scores each one (its embedding cache makes repeats cheap,
// so this is its best case too). The worker's CPU time per request is the
// workerd process's user+system CPU over the run (/proc/<pid>/stat) divided by
// the requests: an upper bound, it includes workerd's HTTP handling.
//
//   node --import tsx bench/edge.ts [requests] [connections]   (BENCH_EDGE_FULL=0: skip the full-size row)
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { startServeChild } from './serve-child.js';
import { RANDOM_MODEL_ID, TINY_RANDOM_CONFIG, writeRandomModel } from '../gpu-service/model/random-model.js';
import { startWranglerDev } from '../test/support/wrangler-dev.js';

interface AcHistogram {
  average: number;
  p50: number;
  p99: number;
}
interface AcResult {
  requests: AcHistogram & { total: number };
  latency: AcHistogram;
  duration: number;
  errors: number;
  non2xx: number;
}
const autocannon = createRequire(import.meta.url)('autocannon') as (opts: Record<string, unknown>) => Promise<AcResult>;

const SECRET = 'bench-origin-secret';
const ADMIN = 'bench-admin-secret';

export interface EdgeBenchRow {
  target: string;
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  cpuMsPerRequest?: number;
}


/** The workerd process under wrangler's process tree (the worker's CPU lives there). */
function findWorkerd(root: number): number | undefined {
  const children = new Map<number, number[]>();
  const comm = new Map<number, string>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      comm.set(Number(d), name);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      /* exited */
    }
  }
  const queue = [root];
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (comm.get(p) === 'workerd') return p;
    queue.push(...(children.get(p) ?? []));
  }
  return undefined;
}

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, in ticks of 1/100 s
}

async function run(url: string, headers: Record<string, string>, body: string, amount: number, connections: number): Promise<AcResult> {
  return autocannon({ url, method: 'POST', headers, body, amount, connections, timeout: 30 });
}

export async function benchEdge(amount = 2000, connections = 8, withFull = true, outDir = join('bench', 'out')): Promise<EdgeBenchRow[]> {
  const modelDir = resolve(outDir, 'random-tiny');
  await writeRandomModel({ out: modelDir, config: TINY_RANDOM_CONFIG, seed: 0 });
  const service = await startServeChild(modelDir, SECRET);
  const edge = await startWranglerDev({ vars: { ORIGINS: service.url, ORIGIN_SECRET: SECRET, ADMIN_SECRET: ADMIN, MODEL_ID: RANDOM_MODEL_ID, AUTH: 'required' } });
  try {
    const made = await fetch(`${edge.url}/admin/keys`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ tenant: 'bench', tier: 'high' }) });
    const { key } = (await made.json()) as { key: string };
    const imgs = await Promise.all([0, 1].map((i) => sharp({ create: { width: 256, height: 256, channels: 3, background: { r: 40 + i * 90, g: 120, b: 200 - i * 50 } } }).png().toBuffer()));
    const body = JSON.stringify({ prompt: 'a lighthouse on a cliff at sunset, oil painting', images: imgs.map((b) => ({ data: b.toString('base64') })) });
    const json = { 'content-type': 'application/json' };
    const warm = await fetch(`${edge.url}/v1/score`, { method: 'POST', headers: { ...json, authorization: `Bearer ${key}` }, body });
    if (warm.status !== 200) throw new Error(`edge warm-up answered ${warm.status}: ${await warm.text()}`);
    const again = await fetch(`${edge.url}/v1/score`, { method: 'POST', headers: { ...json, authorization: `Bearer ${key}` }, body });
    if (again.headers.get('x-cache') !== 'HIT') throw new Error(`the second request was not a cache hit (${again.headers.get('x-cache')})`);

    const rows: EdgeBenchRow[] = [];
    const workerd = findWorkerd(edge.pid);
    await run(`${edge.url}/v1/score`, { ...json, authorization: `Bearer ${key}` }, body, 200, connections); // warm-up
    const cpu0 = workerd !== undefined ? cpuMs(workerd) : NaN;
    const e = await run(`${edge.url}/v1/score`, { ...json, authorization: `Bearer ${key}` }, body, amount, connections);
    const cpu1 = workerd !== undefined ? cpuMs(workerd) : NaN;
    rows.push({ target: 'edge (wrangler dev), cache hit', requests: e.requests.total, rps: e.requests.total / e.duration, p50: e.latency.p50, p99: e.latency.p99, non2xx: e.non2xx + e.errors, cpuMsPerRequest: (cpu1 - cpu0) / e.requests.total });

    const s0 = await run(`${service.url}/v1/score`, { ...json, authorization: `Bearer ${SECRET}` }, body, 100, connections); // warm-up
    void s0;
    const s = await run(`${service.url}/v1/score`, { ...json, authorization: `Bearer ${SECRET}` }, body, Math.min(amount, 1000), connections);
    rows.push({ target: 'GPU service directly (ORT, tiny model)', requests: s.requests.total, rps: s.requests.total / s.duration, p50: s.latency.p50, p99: s.latency.p99, non2xx: s.non2xx + s.errors });
    if (withFull) {
      // The real model's size on this CPU: what a cache hit saves (same images every time,
      // so the service's embedding cache answers the vision half; the text half still runs).
      const fullDir = resolve(outDir, 'random-full');
      await writeRandomModel({ out: fullDir, seed: 0 });
      const full = await startServeChild(fullDir, SECRET);
      try {
        await run(`${full.url}/v1/score`, { ...json, authorization: `Bearer ${SECRET}` }, body, 2, 1);
        const f = await run(`${full.url}/v1/score`, { ...json, authorization: `Bearer ${SECRET}` }, body, 16, 2);
        rows.push({ target: 'GPU service directly (ORT CPU, full-size model)', requests: f.requests.total, rps: f.requests.total / f.duration, p50: f.latency.p50, p99: f.latency.p99, non2xx: f.non2xx + f.errors });
      } finally {
        full.child.kill('SIGTERM');
      }
    }
    return rows;
  } finally {
    await edge.stop();
    service.child.kill('SIGTERM');
  }
}

export function printEdgeBench(rows: EdgeBenchRow[]): boolean {
  console.log('| target | requests | req/s | p50 ms | p99 ms | non-2xx | worker CPU ms/request |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    console.log(`| ${r.target} | ${r.requests} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.non2xx} | ${r.cpuMsPerRequest !== undefined ? r.cpuMsPerRequest.toFixed(2) : '—'} |`);
  }
  return rows.every((r) => r.non2xx === 0);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const rows = await benchEdge(Number(process.argv[2] ?? 2000), Number(process.argv[3] ?? 8), process.env.BENCH_EDGE_FULL !== '0');
  if (!printEdgeBench(rows)) process.exitCode = 1;
}
