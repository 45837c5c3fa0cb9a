// Bounded load test of the scoring HTTP server: the REAL server (startServer,
// ONNX Runtime, loopback, port 0) on the tiny random-weight model
// (TINY_RANDOM_CONFIG, bench/out/random-tiny), driven by autocannon for a few
// seconds with many connections posting JSON /v1/score requests (2–4 base64
// images each, prompts rotating). The server runs in a child process so the
// RSS sampled from /proc/<pid>/status is its own.
//
// The embed cache is exercised without every image being a hit: most images
// come from a small fixed set of fixture files (hits after their first use),
// and about half the requests also carry a JPEG made unique by a COM segment
// holding a counter (a miss every time). The cache gets a small budget
// (LOAD_CACHE_BYTES) so eviction runs during the test too.
//
// Pass criteria: zero 5xx, and the server's RSS during the measured run at most
// 1.5× its RSS after the warm-up run. Run alone it exits 1 on failure.
//
//   node --import tsx bench/service-load.ts [seconds] [connections] [tiny|full]
//   node --import tsx bench/service-load.ts serve <modelDir> <cacheBytes>   (the server child)
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { TINY_RANDOM_CONFIG, writeRandomModel } from '../gpu-service/model/random-model.js';
import { startServer } from '../gpu-service/server/serve.js';

// autocannon 8 ships no types: the little of its API used here.
interface AcHistogram {
  average: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}
interface AcRawRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}
interface AcOptions {
  url: string;
  connections?: number;
  duration?: number;
  timeout?: number;
  requests?: {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    setupRequest?: (req: AcRawRequest, context: Record<string, unknown>) => AcRawRequest;
  }[];
}
interface AcResult {
  requests: AcHistogram & { total: number };
  latency: AcHistogram;
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodeStats?: Record<string, { count: number | string }>;
}
const autocannon = createRequire(import.meta.url)('autocannon') as (opts: AcOptions) => Promise<AcResult>;

const IMAGES_DIR = join('test', 'fixtures', 'preprocess', 'images');
/** Fixed images: hits once each has been seen. */
const FIXED = ['rgb_444_250x200.jpg', 'rgb_300x301.png', 'rgba_lossy_230x240.webp', 'l_230x250.jpg', 'p_300x250.png', 'rgb_progressive_320x240.jpg'];
/** The source of the unique (always-miss) images. */
const UNIQUE_SOURCE = 'rgb_422_261x229.jpg';
const PROMPTS = [
  'a painting of an ocean with clouds and birds, highly detailed',
  'a cat wearing a tiny wizard hat, studio lighting',
  'an isometric city at night, neon signs, rain',
  'portrait of an old fisherman, oil on canvas',
  'a bowl of ramen, food photography, 85mm',
  'a castle on a floating island, fantasy concept art',
  'minimalist poster of a mountain sunrise',
  'a robot gardening in a greenhouse, watercolor',
  'macro photo of a dew drop on a leaf',
  'a medieval market street, crowded, golden hour',
  'astronaut riding a horse on mars, cinematic',
  'a cozy reading nook with a fireplace, 3d render',
];
export const LOAD_CACHE_BYTES = 8 * 1024 * 1024;

export interface LoadResult {
  seconds: number;
  connections: number;
  requests: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  non2xx: number;
  status5xx: number;
  errors: number;
  timeouts: number;
  statusCounts: Record<string, number>;
  rssAfterWarmupMB: number;
  rssMaxMB: number;
  rssEndMB: number;
  bounded: boolean;
  cacheHits: number;
  cacheMisses: number;
  cacheEvictions: number;
  serverCpuMs: number;
}

function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function cpuMs(pid: number): number {
  // utime + stime in clock ticks (fields 14, 15 of /proc/<pid>/stat; USER_HZ = 100 on Linux).
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function metricValue(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) sum += Number(line.split(' ').pop());
  return sum;
}

/** A JPEG with a COM segment holding `n` right after SOI; prefix is 18 bytes (a multiple of 3), so its base64 concatenates. */
function uniqueJpegBase64(restBase64: string, n: number): string {
  const prefix = Buffer.alloc(18);
  prefix.set([0xff, 0xd8, 0xff, 0xfe, 0x00, 14], 0);
  prefix.write(n.toString(16).padStart(12, '0'), 6, 'latin1');
  return prefix.toString('base64') + restBase64;
}

function startChild(modelDir: string, cacheBytes: number): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join('bench', 'service-load.ts'), 'serve', modelDir, String(cacheBytes)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, IMAGEREWARD_API_KEYS: '' },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((res, rej) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line.startsWith('READY ')) res({ child, url: line.slice(6).trim() });
    });
    child.once('exit', (code) => rej(new Error(`server child exited (${code}) before it was ready: ${stderr.trim().split('\n').slice(-3).join(' ')}`)));
  });
}

export async function benchServiceLoad(seconds = 10, connections = 16, outDir = join('bench', 'out'), size: 'tiny' | 'full' = 'tiny'): Promise<LoadResult> {
  // 'full': the full-size random model (bench/out/random-full, seed 0, as bench/scorer-cpu.ts uses).
  const modelDir = resolve(outDir, size === 'full' ? 'random-full' : 'random-tiny');
  await writeRandomModel({ out: modelDir, ...(size === 'tiny' ? { config: TINY_RANDOM_CONFIG } : {}), seed: 0 });
  const fixed = FIXED.map((f) => readFileSync(join(IMAGES_DIR, f)).toString('base64'));
  const src = readFileSync(join(IMAGES_DIR, UNIQUE_SOURCE));
  if (src[0] !== 0xff || src[1] !== 0xd8) throw new Error(`${UNIQUE_SOURCE} is not a JPEG`);
  const uniqueRest = src.subarray(2).toString('base64');

  let counter = 0;
  const body = (): string => {
    const k = counter++;
    const count = 2 + (k % 3); // 2, 3, 4 images
    const images: { data: string }[] = [];
    for (let i = 0; i < count; i++) images.push({ data: fixed[(k * 7 + i * 5) % fixed.length]! });
    if (k % 2 === 0) images[count - 1] = { data: uniqueJpegBase64(uniqueRest, k) };
    return JSON.stringify({ prompt: PROMPTS[k % PROMPTS.length], images });
  };

  const { child, url } = await startChild(modelDir, LOAD_CACHE_BYTES);
  const pid = child.pid!;
  const requests = [
    {
      method: 'POST',
      path: '/v1/score',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req: AcRawRequest) => ({ ...req, body: body() }),
    },
  ];
  try {
    // Warm-up: every fixed image seen, every batch shape met, the allocators at their working size.
    const warm = await autocannon({ url, connections, duration: size === 'full' ? 12 : 2, requests, timeout: 120 });
    if (warm.requests.total === 0) throw new Error('the warm-up run completed no request');
    const rssAfterWarmupMB = rssMB(pid);
    const hits0 = await metricValue(url, 'imagereward_embed_cache_hits_total');
    const misses0 = await metricValue(url, 'imagereward_embed_cache_misses_total');
    const evict0 = await metricValue(url, 'imagereward_embed_cache_evictions_total');
    const cpu0 = cpuMs(pid);

    let rssMaxMB = rssAfterWarmupMB;
    const sampler = setInterval(() => {
      try {
        rssMaxMB = Math.max(rssMaxMB, rssMB(pid));
      } catch {
        /* the child is gone; reported below */
      }
    }, 100);
    let r: AcResult;
    try {
      r = await autocannon({ url, connections, duration: seconds, requests, timeout: 30 });
    } finally {
      clearInterval(sampler);
    }
    const rssEndMB = rssMB(pid);
    rssMaxMB = Math.max(rssMaxMB, rssEndMB);
    const serverCpuMs = cpuMs(pid) - cpu0;
    const statusCounts: Record<string, number> = {};
    let status5xx = 0;
    for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) {
      statusCounts[code] = Number(s.count);
      if (code.startsWith('5')) status5xx += Number(s.count);
    }
    return {
      seconds,
      connections,
      requests: r.requests.total,
      requestsPerSec: r.requests.total / r.duration,
      p50Ms: r.latency.p50,
      p99Ms: r.latency.p99,
      maxMs: r.latency.max,
      non2xx: r.non2xx,
      status5xx,
      errors: r.errors,
      timeouts: r.timeouts,
      statusCounts,
      rssAfterWarmupMB,
      rssMaxMB,
      rssEndMB,
      bounded: rssMaxMB <= 1.5 * rssAfterWarmupMB,
      cacheHits: (await metricValue(url, 'imagereward_embed_cache_hits_total')) - hits0,
      cacheMisses: (await metricValue(url, 'imagereward_embed_cache_misses_total')) - misses0,
      cacheEvictions: (await metricValue(url, 'imagereward_embed_cache_evictions_total')) - evict0,
      serverCpuMs,
    };
  } finally {
    const exited = new Promise<void>((res) => (child.exitCode !== null ? res() : child.once('exit', () => res())));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Prints the markdown of one run; true when it passed (no 5xx, no connection errors, RSS bounded). */
export function printServiceLoad(r: LoadResult): boolean {
  const pass = r.status5xx === 0 && r.errors === 0 && r.bounded;
  console.log(`| connections | duration s | requests | requests/s | p50 ms | p99 ms | max ms | non-2xx | 5xx | conn. errors | server RSS after warm-up MB | server RSS max MB | max ÷ warm-up |`);
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  console.log(
    `| ${r.connections} | ${r.seconds} | ${r.requests} | ${r.requestsPerSec.toFixed(1)} | ${r.p50Ms.toFixed(0)} | ${r.p99Ms.toFixed(0)} | ${r.maxMs.toFixed(0)} | ${r.non2xx} | ${r.status5xx} | ${r.errors} | ${r.rssAfterWarmupMB.toFixed(0)} | ${r.rssMaxMB.toFixed(0)} | ${(r.rssMaxMB / r.rssAfterWarmupMB).toFixed(2)}× |`,
  );
  const images = r.cacheHits + r.cacheMisses;
  console.log(
    `\nstatus codes: ${Object.entries(r.statusCounts).map(([c, n]) => `${c} × ${n}`).join(', ') || 'none'}; embed cache (${LOAD_CACHE_BYTES / 2 ** 20} MiB budget): ${r.cacheHits} hits, ${r.cacheMisses} misses (${images ? ((100 * r.cacheHits) / images).toFixed(0) : 'n/a'}% hits), ${r.cacheEvictions} evictions; ${(images / r.seconds).toFixed(0)} images/s; server CPU ${(r.serverCpuMs / 1000).toFixed(1)} s in ${r.seconds} s`,
  );
  console.log(`zero 5xx: ${r.status5xx === 0 ? 'yes' : 'NO'}; RSS bounded (max ≤ 1.5× after warm-up): ${r.bounded ? 'yes' : 'NO'} → ${pass ? 'PASS' : 'FAIL'}`);
  return pass;
}

async function serveChild(modelDir: string, cacheBytes: number): Promise<void> {
  const handle = await startServer({
    host: '127.0.0.1',
    port: 0,
    model: modelDir,
    backend: 'ort',
    ort: { intraOpNumThreads: 1 },
    cacheBytes,
    apiKeys: [],
    urlFetch: false,
    handleSignals: true,
    print: (line) => process.stderr.write(`${line}\n`),
    logger: () => {},
  });
  process.stdout.write(`READY ${handle.url}\n`);
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'serve') await serveChild(rest[0]!, Number(rest[1]));
  else {
    const r = await benchServiceLoad(Number(mode ?? 10), Number(rest[0] ?? 16), join('bench', 'out'), rest[1] === 'full' ? 'full' : 'tiny');
    if (!printServiceLoad(r)) process.exitCode = 1;
  }
}
