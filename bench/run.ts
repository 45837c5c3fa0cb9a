// `npm run bench`: every speed figure of the project, printed as the
// markdown tables that docs/benchmarks.md records (with machine, date, command).
//
// Preprocessing runs each contender in its own process pinned to CPU 0
// (taskset), one thread each, so "images/s" is per core.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { writeBenchImages } from './images.js';
import { benchTokenizer } from './tokenizer.js';
import { benchScorerCpu } from './scorer-cpu.js';
import { native, nativeLoadError } from '../native/index.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const PYTHON = '/usr/bin/python3';

function pinned(cmd: string, args: string[]): Record<string, number> | { error: string } {
  const env = { ...process.env, UV_THREADPOOL_SIZE: '1', OMP_NUM_THREADS: '1', VIPS_CONCURRENCY: '1' };
  const r = spawnSync('taskset', ['-c', '0', cmd, ...args], { encoding: 'utf8', env, maxBuffer: 1 << 24 });
  if (r.status !== 0) return { error: (r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n').slice(-3).join(' ') };
  const last = r.stdout.trim().split('\n').pop() ?? '{}';
  return JSON.parse(last) as Record<string, number>;
}

function header(): void {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`# imagereward-serve benchmarks — ${new Date().toISOString().slice(0, 10)}, ${cpu}, ${cpus().length} cores, node ${process.version}`);
}

async function main(): Promise<void> {
  header();

  console.log('\n## Tokenizer (prompts/s, one thread, 10,000 DiffusionDB prompts)\n');
  try {
    const t = await benchTokenizer();
    console.log('| tokenizer | prompts/s |\n| --- | ---: |');
    console.log(`| ours (TypeScript) | ${t.ours.toFixed(0)} |`);
    console.log(`| HF tokenizers (Rust, @anush008/tokenizers) | ${t.rust.toFixed(0)} |`);
  } catch (err) {
    console.log(`skipped: ${(err as Error).message}`);
  }

  console.log('\n## Preprocessing (images/s per core: decode → 3×224×224 normalized tensor)\n');
  const images = await writeBenchImages(join('bench', 'out'));
  const files = images.map((i) => i.path);
  const script = join('bench', 'preprocess.ts');
  const ours = native
    ? pinned(process.execPath, ['--import', 'tsx', script, String(SECONDS), 'native', ...files])
    : { error: `native addon not loaded: ${nativeLoadError ?? ''}` };
  const reference = pinned(process.execPath, ['--import', 'tsx', script, String(SECONDS), 'reference', ...files]);
  const pillow = existsSync(PYTHON)
    ? pinned(PYTHON, [join('bench', 'pillow_preprocess.py'), String(SECONDS), ...files])
    : { error: `${PYTHON} not found` };
  for (const [name, r] of [['native', ours], ['reference', reference], ['pillow', pillow]] as const) {
    if ('error' in r) console.log(`(${name}: ${String(r.error)})`);
  }
  const cell = (r: Record<string, number> | { error: string }, f: string) => ('error' in r ? 'n/a' : (r[f] ?? NaN).toFixed(1));
  console.log('| image | ours, native | ours, TS reference | Pillow 9.4 + torchvision 0.14 | native ÷ Pillow |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const img of images) {
    const a = 'error' in ours ? NaN : (ours[img.path] ?? NaN);
    const p = 'error' in pillow ? NaN : (pillow[img.path] ?? NaN);
    console.log(`| ${img.name} | ${cell(ours, img.path)} | ${cell(reference, img.path)} | ${cell(pillow, img.path)} | ${Number.isFinite(a / p) ? (a / p).toFixed(2) + '×' : 'n/a'} |`);
  }
}

async function resizeOnly(): Promise<void> {
  console.log('\n## Resize kernel alone (bicubic RGB → Resize(224) size, one thread, pinned)\n');
  const r = spawnSync('taskset', ['-c', '0', process.execPath, '--import', 'tsx', join('bench', 'preprocess-native.ts')], {
    encoding: 'utf8',
    env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
  });
  console.log(r.status === 0 ? r.stdout.trim() : `skipped: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')}`);
}

async function scorerCpu(): Promise<void> {
  console.log(`\n## CPU scoring: ONNX Runtime vs PyTorch eager fp32, full-size random-weight model (bench/out/random-full)\n`);
  try {
    await benchScorerCpu(SECONDS);
  } catch (err) {
    console.log(`skipped: ${(err as Error).message}`);
  }
}

await main();
await resizeOnly();
await scorerCpu();

// ---------------------------------------------------------------------------
// Scoring service: bounded load test (tiny model, autocannon on loopback) and
// HTTP + batching overhead versus the in-process Scorer (full-size model).

async function serviceBench(): Promise<void> {
  console.log('\n## Scoring service under load (tiny random model, ORT 1 thread, autocannon: 16 connections, 10 s, JSON /v1/score with 2–4 base64 images)\n');
  try {
    const { benchServiceLoad, printServiceLoad } = await import('./service-load.js');
    if (!printServiceLoad(await benchServiceLoad(10, 16))) process.exitCode = 1;
  } catch (err) {
    console.log(`skipped: ${(err as Error).message}`);
  }
  console.log(`\n## Scoring service overhead: HTTP + batching vs the in-process Scorer (full-size random model, CPU, ${cpus().length} threads, sequential requests)\n`);
  try {
    const { benchServiceOverhead, printServiceOverhead } = await import('./service-overhead.js');
    printServiceOverhead(await benchServiceOverhead(cpus().length));
  } catch (err) {
    console.log(`skipped: ${(err as Error).message}`);
  }
}

await serviceBench();

// ---------------------------------------------------------------------------
// Edge: cache hits through wrangler dev versus the GPU service directly.

async function edgeBench(): Promise<void> {
  console.log('\n## Edge on cache hits vs the GPU service (wrangler dev, API key + rate limit on, autocannon 8 connections, JSON /v1/score with 2 PNGs)\n');
  try {
    const { benchEdge, printEdgeBench } = await import('./edge.js');
    if (!printEdgeBench(await benchEdge(2000, 8))) process.exitCode = 1;
  } catch (err) {
    console.log(`skipped: ${(err as Error).message}`);
  }
}

await edgeBench();

async function jobsBench(): Promise<void> {
  console.log('\n## Jobs vs /v1/score (wrangler dev: Queues + Durable Objects + R2 local; 200 items of 2 distinct PNGs; tiny random model)\n');
  try {
    const { benchJobs, printJobsBench } = await import('./jobs.js');
    printJobsBench(await benchJobs(200, 8));
  } catch (err) {
    console.log(`skipped: ${(err as Error).message}`);
  }
}

await jobsBench();

// ---------------------------------------------------------------------------
// The whole stack under sustained load (issue 8): wrangler dev + two GPU services,
// the e2e suite's request mix, per-kind latency and every process's RSS.

async function stackBench(): Promise<void> {
  console.log('\n## Whole stack under load (wrangler dev + 2 × imagereward serve, ORT 1 thread, tiny224; 16 clients, 20 s after a 5 s warm-up; mix of cache hits, misses, multipart, URL images, 2-item jobs)\n');
  try {
    const { benchStackLoad, printStackLoad } = await import('./stack-load.js');
    if (!printStackLoad(await benchStackLoad(20, 16))) process.exitCode = 1;
  } catch (err) {
    console.log(`skipped: ${(err as Error).message}`);
  }
}

await stackBench();
