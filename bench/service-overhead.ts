// HTTP + batching overhead of the scoring service versus the Scorer called
// in-process, on the full-size random-weight model (bench/out/random-full), CPU
// (ONNX Runtime), the same thread count both ways.
//
// (a) createScorer → score(prompt, images): preprocess + tokenize + one batched forward.
// (b) the same prompt and image bytes as one JSON /v1/score request (base64) to the
//     real server (startServer, loopback) in this process: body parsing, the
//     service's queue, preprocessing workers, the batcher (maxWaitMs 1 by default;
//     requests sent one at a time, so no two requests share a batch, but one
//     request may be split over several forwards when its images leave
//     preprocessing more than maxWaitMs apart: "forwards per request" counts
//     them from imagereward_batches_total) and the answer.
//     The embed cache is off (cacheBytes 0): every request runs the vision
//     encoder, as every in-process call does.
//
// Both are loaded at once and measured alternately (a, b, b, a, …) after a
// warm-up per batch size, so drift from other work on the machine hits both;
// a pause before each timed call lets the other session's idle ORT threads stop
// spinning (on a 2-core box they would otherwise steal a core from the next run).
//
//   node --import tsx bench/service-overhead.ts [threads] [maxWaitMs]   (default: all cores, 1 ms)
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { IMAGEREWARD_CONFIG } from '../gpu-service/model/architecture.js';
import { writeRandomModel } from '../gpu-service/model/random-model.js';
import { createScorer } from '../gpu-service/scorer/scorer.js';
import { startServer } from '../gpu-service/server/serve.js';

const PROMPT = 'a painting of an ocean with clouds and birds, highly detailed';
const IMAGES = ['rgb_900x700.jpg', 'rgb_300x301.png', 'rgba_lossless_260x250.webp', 'rgb_444_250x200.jpg'].map((f) => join('test', 'fixtures', 'preprocess', 'images', f));
/** Images per request, and timed iterations per path at that size. */
const PLAN: { batch: number; iterations: number }[] = [
  { batch: 1, iterations: 8 },
  { batch: 4, iterations: 4 },
];
export const OVERHEAD_GOAL = 0.1;

export interface OverheadRow {
  batch: number;
  iterations: number;
  inProcessMs: number[];
  httpMs: number[];
  /** CPU time of this whole process (all threads) per call, ms: less sensitive than wall time to other work on the box. */
  inProcessCpuMs: number[];
  httpCpuMs: number[];
  /** Forwards the service ran per timed request (1 = the request was one batch). */
  forwardsPerRequest: number;
  /** Largest |reward HTTP − reward in-process| over the batch. */
  maxRewardDiff: number;
}

export interface OverheadResult {
  threads: number;
  maxWaitMs: number;
  loadScorerMs: number;
  loadServerMs: number;
  rows: OverheadRow[];
}

const PAUSE_MS = 300;
const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

export async function benchServiceOverhead(threads = cpus().length, maxWaitMs = 1, outDir = join('bench', 'out')): Promise<OverheadResult> {
  const dir = resolve(outDir, 'random-full');
  await writeRandomModel({ out: dir, config: IMAGEREWARD_CONFIG, seed: 0 });
  const bytes = await Promise.all(IMAGES.map(async (p) => new Uint8Array(await readFile(p))));

  const t0 = performance.now();
  const scorer = await createScorer({ model: dir, backend: 'ort', ort: { intraOpNumThreads: threads } });
  const loadScorerMs = performance.now() - t0;
  const t1 = performance.now();
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    model: dir,
    backend: 'ort',
    ort: { intraOpNumThreads: threads },
    maxWaitMs,
    cacheBytes: 0,
    apiKeys: [],
    urlFetch: false,
    print: () => {},
    logger: () => {},
  });
  const loadServerMs = performance.now() - t1;

  const viaHttp = async (images: Uint8Array[]): Promise<number[]> => {
    const body = JSON.stringify({ prompt: PROMPT, images: images.map((b) => ({ data: Buffer.from(b).toString('base64') })) });
    const res = await fetch(`${server.url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const json = (await res.json()) as { rewards?: (number | null)[]; detail?: string };
    if (res.status !== 200 || !json.rewards) throw new Error(`HTTP ${res.status}: ${json.detail ?? JSON.stringify(json)}`);
    return json.rewards.map((r) => r ?? NaN);
  };
  const timed = async <T>(f: () => Promise<T>): Promise<[number, number, T]> => {
    const c = process.cpuUsage();
    const s = performance.now();
    const v = await f();
    const wall = performance.now() - s;
    const cpu = process.cpuUsage(c);
    return [wall, (cpu.user + cpu.system) / 1000, v];
  };
  const forwards = async (): Promise<number> => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('imagereward_batches_total'));
    return line ? Number(line.split(' ').pop()) : NaN;
  };

  const rows: OverheadRow[] = [];
  try {
    for (const { batch, iterations } of PLAN) {
      const images = bytes.slice(0, batch);
      // Warm-up at this shape, both ways.
      const ref = await scorer.score(PROMPT, images);
      const got = await viaHttp(images);
      let maxRewardDiff = 0;
      ref.forEach((v, i) => (maxRewardDiff = Math.max(maxRewardDiff, Math.abs(v - got[i]!))));
      const inProcessMs: number[] = [];
      const httpMs: number[] = [];
      const inProcessCpuMs: number[] = [];
      const httpCpuMs: number[] = [];
      const f0 = await forwards();
      for (let i = 0; i < iterations; i++) {
        // Alternate which goes first so neither always follows the other.
        const order = i % 2 === 0 ? ['a', 'b'] : ['b', 'a'];
        for (const which of order) {
          await sleep(PAUSE_MS);
          if (which === 'a') {
            const [wall, cpu] = await timed(() => scorer.score(PROMPT, images));
            inProcessMs.push(wall);
            inProcessCpuMs.push(cpu);
          } else {
            const [wall, cpu] = await timed(() => viaHttp(images));
            httpMs.push(wall);
            httpCpuMs.push(cpu);
          }
        }
      }
      const forwardsPerRequest = ((await forwards()) - f0) / iterations;
      rows.push({ batch, iterations, inProcessMs, httpMs, inProcessCpuMs, httpCpuMs, forwardsPerRequest, maxRewardDiff });
    }
  } finally {
    await server.close();
    await scorer.dispose();
  }
  return { threads, maxWaitMs, loadScorerMs, loadServerMs, rows };
}

/** Prints the markdown table; true when every batch size is within the goal (mean latency). */
export function printServiceOverhead(r: OverheadResult): boolean {
  console.log(`| images per request | iterations (each way) | in-process Scorer mean ms | HTTP service mean ms | overhead (mean) | in-process median ms | HTTP median ms | overhead (median) | CPU ms/call in-process | CPU ms/call HTTP | CPU overhead | service forwards per request | max \\|Δreward\\| |`);
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  let met = true;
  for (const row of r.rows) {
    const a = mean(row.inProcessMs);
    const b = mean(row.httpMs);
    const am = median(row.inProcessMs);
    const bm = median(row.httpMs);
    const over = b / a - 1;
    if (!(over <= OVERHEAD_GOAL)) met = false;
    const pct = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;
    console.log(`| ${row.batch} | ${row.iterations} | ${a.toFixed(0)} | ${b.toFixed(0)} | ${pct(over)} | ${am.toFixed(0)} | ${bm.toFixed(0)} | ${pct(bm / am - 1)} | ${mean(row.inProcessCpuMs).toFixed(0)} | ${mean(row.httpCpuMs).toFixed(0)} | ${pct(mean(row.httpCpuMs) / mean(row.inProcessCpuMs) - 1)} | ${row.forwardsPerRequest.toFixed(2)} | ${row.maxRewardDiff.toExponential(1)} |`);
  }
  console.log(`\n${r.threads} ORT threads both ways, service maxWaitMs ${r.maxWaitMs}; load: Scorer ${(r.loadScorerMs / 1000).toFixed(1)} s, server ${(r.loadServerMs / 1000).toFixed(1)} s`);
  for (const row of r.rows) console.log(`B=${row.batch} raw ms — in-process: ${row.inProcessMs.map((x) => x.toFixed(0)).join(' ')}; HTTP: ${row.httpMs.map((x) => x.toFixed(0)).join(' ')}`);
  console.log(`overhead goal ≤ ${(OVERHEAD_GOAL * 100).toFixed(0)}% (mean latency, every batch size): ${met ? 'met' : 'MISSED'}`);
  return met;
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  const threads = process.argv[2] ? Number(process.argv[2]) : cpus().length;
  printServiceOverhead(await benchServiceOverhead(threads, process.argv[3] ? Number(process.argv[3]) : 1));
}
