// CPU scoring benchmark on a full-size random-weight model (bench/out/random-full,
// written once by `imagereward demo-model --size full`'s writeRandomModel):
// ONNX Runtime (createScorer / OrtBackend) beside PyTorch eager fp32
// (bench/torch_cpu.py running test/fixtures/model/reference.py) on the same
// weights, the same inputs and the same thread count. Each contender runs in
// its own child process so its peak RSS (maxRSS) is its own. ORT runs twice: the
// default fp32 graphs and the opt-in int8 ones (precision 'int8': dynamic
// quantization of every transformer Linear), compared on throughput and on how
// far the int8 rewards of the 8 bench images move from fp32 (and whether their
// ranking changes).
//
//   node --import tsx bench/scorer-cpu.ts             run everything, print markdown
//   node --import tsx bench/scorer-cpu.ts ort <dir> <inputs> <threads> <seconds> [opt-level|-] [fp32|int8]
//                                                      one ORT child (prints one JSON line)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { IMAGEREWARD_CONFIG } from '../gpu-service/model/architecture.js';
import { WEIGHTS_FILE } from '../gpu-service/model/model-dir.js';
import { writeRandomModel } from '../gpu-service/model/random-model.js';
import { buildImageRewardGraphs, type Precision } from '../gpu-service/onnx/imagereward-graph.js';
import { preprocessImage } from '../gpu-service/preprocess/index.js';
import { loadTokenizer } from '../gpu-service/tokenizer.js';
import { createScorer } from '../gpu-service/scorer/scorer.js';
import type { OrtBackendOptions } from '../gpu-service/scorer/ort-backend.js';

const PYTHON = '/usr/bin/python3';
export const PROMPT = 'a painting of an ocean with clouds and birds, highly detailed';
const IMAGES = [
  'rgb_900x700.jpg',
  'rgb_300x301.png',
  'rgba_lossless_260x250.webp',
  'cmyk_240x230.jpg',
  'rgb_444_250x200.jpg',
  'rgb_icc_200x180.png',
  'rgba_premultiplied_300x260.png',
  'rgba_lossy_230x240.webp',
].map((f) => join('test', 'fixtures', 'preprocess', 'images', f));
export const BATCH = IMAGES.length;

export interface ContenderResult {
  /** ms to a ready scorer (ORT: createScorer incl. its B=1 warm-up; torch: weights mapped + dict built). */
  loadMs: number;
  /** ms of one B=1 forward (median), to separate session creation from the warm-up inside loadMs. */
  forward1Ms: number;
  pairsPerSec: Record<string, number>;
  iterations: Record<string, number>;
  rewards: number[];
  maxRssMB: number;
  [k: string]: unknown;
}

/** Model dir + inputs (B preprocessed images, one prompt tokenized), written once into bench/out. */
export async function prepareCpuBench(
  outDir = join('bench', 'out'),
): Promise<{ dir: string; inputs: string; generatedMs: number | undefined; int8BuiltMs: number | undefined }> {
  const dir = resolve(outDir, 'random-full');
  const t0 = performance.now();
  const r = await writeRandomModel({ out: dir, config: IMAGEREWARD_CONFIG, seed: 0 });
  const generatedMs = r.written ? performance.now() - t0 : undefined;
  // Idempotent: load time below is session creation (plus the up-to-date check), not graph building.
  await buildImageRewardGraphs(dir);
  const t1 = performance.now();
  const q = await buildImageRewardGraphs(dir, { precision: 'int8' }); // model.int8.bin + the int8 graphs
  const int8BuiltMs = q.int8Written ? performance.now() - t1 : undefined;
  const inputs = resolve(outDir, 'cpu-inputs');
  const per = 3 * 224 * 224;
  const pixels = new Float32Array(BATCH * per);
  for (const [i, path] of IMAGES.entries()) pixels.set(await preprocessImage(await readFile(path)), i * per);
  const tok = await loadTokenizer(join(dir, 'vocab.txt'));
  const enc = tok.encode(PROMPT, 35);
  await mkdir(outDir, { recursive: true });
  await writeFile(`${inputs}.f32`, new Uint8Array(pixels.buffer));
  await writeFile(`${inputs}.json`, JSON.stringify({ prompt: PROMPT, images: IMAGES, batch: BATCH, input_ids: enc.input_ids, attention_mask: enc.attention_mask }));
  return { dir, inputs, generatedMs, int8BuiltMs };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

/** The ORT child: load, time B=1 and B=8, print one JSON line. */
async function ortChild(dir: string, inputs: string, threads: number, seconds: number, opt?: string, precision?: string): Promise<void> {
  const allPixels = new Float32Array(new Uint8Array(readFileSync(`${inputs}.f32`)).buffer);
  const meta = JSON.parse(readFileSync(`${inputs}.json`, 'utf8')) as { input_ids: number[]; attention_mask: number[]; batch: number };
  const L = meta.input_ids.length;
  const per = 3 * 224 * 224;
  const ortOpts: OrtBackendOptions = { intraOpNumThreads: threads };
  if (opt && opt !== '-') ortOpts.graphOptimizationLevel = opt as NonNullable<OrtBackendOptions['graphOptimizationLevel']>;
  if (precision) ortOpts.precision = precision as Precision;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const scorer = await createScorer({ model: dir, ort: ortOpts });
  const loadMs = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  // CPU time of all threads during load: less sensitive than wall time to other work on a shared box.
  const loadCpuMs = (cpu.user + cpu.system) / 1000;
  const rssAfterLoadMB = process.memoryUsage.rss() / 2 ** 20;
  const forward = async (b: number): Promise<Float32Array> => {
    const ids = new BigInt64Array(b * L);
    const mask = new BigInt64Array(b * L);
    for (let i = 0; i < b; i++) {
      for (let j = 0; j < L; j++) {
        ids[i * L + j] = BigInt(meta.input_ids[j]!);
        mask[i * L + j] = BigInt(meta.attention_mask[j]!);
      }
    }
    return (await scorer.scoreTensors(allPixels.slice(0, b * per), ids, mask)).reward;
  };
  const pairsPerSec: Record<string, number> = {};
  const iterations: Record<string, number> = {};
  let forward1Ms = NaN;
  let rewards: number[] = [];
  for (const b of [1, meta.batch]) {
    const r = await forward(b); // warm-up for this shape
    if (b === meta.batch) rewards = Array.from(r);
    const times: number[] = [];
    const start = performance.now();
    while (times.length < 2 || (performance.now() - start < seconds * 1000 && times.length < 50)) {
      const s = performance.now();
      await forward(b);
      times.push(performance.now() - s);
    }
    if (b === 1) forward1Ms = median(times);
    pairsPerSec[String(b)] = (b * 1000) / median(times);
    iterations[String(b)] = times.length;
  }
  await scorer.dispose();
  const res: ContenderResult = {
    loadMs,
    loadCpuMs,
    forward1Ms,
    pairsPerSec,
    iterations,
    rewards,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
    rssAfterLoadMB,
  };
  console.log(JSON.stringify(res));
}

function child(cmd: string, args: string[], env: NodeJS.ProcessEnv): ContenderResult | { error: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 24 });
  if (r.status !== 0) return { error: (r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n').slice(-4).join(' ') };
  const last = r.stdout.trim().split('\n').pop() ?? '{}';
  return JSON.parse(last) as ContenderResult;
}

/** Sequential read of the weights file (16 MiB reads), ms. */
async function readOnce(path: string): Promise<{ ms: number; bytes: number }> {
  const fh = await open(path, 'r');
  const buf = Buffer.allocUnsafe(16 << 20);
  let bytes = 0;
  const t0 = performance.now();
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      bytes += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { ms: performance.now() - t0, bytes };
}

/** Share of the file in the page cache (fincore), or undefined when fincore is missing. */
function cachedShare(path: string): number | undefined {
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES,SIZE', path], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const [res, size] = r.stdout.trim().split(/\s+/).map(Number);
  return res !== undefined && size ? res / size : undefined;
}

/** Spearman rank correlation (no ties expected in float rewards). */
function spearman(a: number[], b: number[]): number {
  const ranks = (xs: number[]) => {
    const order = xs.map((v, i) => [v, i] as const).sort((p, q) => p[0] - q[0]);
    const r = new Array<number>(xs.length);
    order.forEach(([, i], k) => (r[i] = k));
    return r;
  };
  const ra = ranks(a);
  const rb = ranks(b);
  const n = a.length;
  let d2 = 0;
  for (let i = 0; i < n; i++) d2 += (ra[i]! - rb[i]!) ** 2;
  return 1 - (6 * d2) / (n * (n * n - 1));
}

export async function benchScorerCpu(seconds: number): Promise<void> {
  const threads = cpus().length;
  const { dir, inputs, generatedMs, int8BuiltMs } = await prepareCpuBench();
  if (generatedMs !== undefined) console.log(`(generated ${dir} in ${(generatedMs / 1000).toFixed(1)} s)`);
  if (int8BuiltMs !== undefined) console.log(`(built model.int8.bin + int8 graphs in ${(int8BuiltMs / 1000).toFixed(1)} s)`);
  const weights = join(dir, WEIGHTS_FILE);
  const before = cachedShare(weights);
  const read1 = await readOnce(weights);
  const read2 = await readOnce(weights);
  const env = { OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const ortRun = (precision: Precision) =>
    child(process.execPath, ['--import', 'tsx', join('bench', 'scorer-cpu.ts'), 'ort', dir, inputs, String(threads), String(seconds), '-', precision], env);
  const ort = ortRun('fp32');
  const int8 = ortRun('int8');
  const torch = existsSync(PYTHON)
    ? child(PYTHON, [join('bench', 'torch_cpu.py'), dir, inputs, String(threads), String(seconds)], env)
    : { error: `${PYTHON} not found` };
  for (const [name, r] of [['ort', ort], ['ort int8', int8], ['torch', torch]] as const) if ('error' in r) console.log(`(${name}: ${r.error})`);

  const gb = read1.bytes / 1e9;
  console.log(`weights: ${weights} (${gb.toFixed(2)} GB); page cache before the first read: ${before === undefined ? 'unknown' : `${(before * 100).toFixed(0)}% resident`}`);
  console.log(`one sequential read (16 MiB reads): first ${read1.ms.toFixed(0)} ms (${(gb / (read1.ms / 1000)).toFixed(2)} GB/s), again ${read2.ms.toFixed(0)} ms (warm cache)\n`);
  const f = (r: ContenderResult | { error: string }, g: (c: ContenderResult) => number, d = 2) => ('error' in r || !Number.isFinite(g(r)) ? 'n/a' : g(r).toFixed(d));
  const B = String(BATCH);
  console.log(`| contender (${threads} threads) | pairs/s B=1 | pairs/s B=${B} | peak RSS MB | load ms | load − one B=1 forward, ms | ÷ one warm read | ÷ first read | one B=1 forward ms |`);
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const row = (name: string, r: ContenderResult | { error: string }) =>
    console.log(
      `| ${name} | ${f(r, (c) => c.pairsPerSec['1']!)} | ${f(r, (c) => c.pairsPerSec[B]!)} | ${f(r, (c) => c.maxRssMB, 0)} | ${f(r, (c) => c.loadMs, 0)} | ${f(r, (c) => (c.loadMs > c.forward1Ms ? c.loadMs - c.forward1Ms : NaN), 0)} | ${f(r, (c) => c.loadMs / read2.ms, 1)}× | ${f(r, (c) => c.loadMs / read1.ms, 1)}× | ${f(r, (c) => c.forward1Ms, 0)} |`,
    );
  row('ONNX Runtime fp32 (createScorer, CPU EP)', ort);
  row("ONNX Runtime int8 (precision 'int8', opt-in)", int8);
  row('PyTorch 1.13 eager fp32 (reference.py; load = mmap only, pages fault in during the first forward)', torch);
  if (!('error' in ort) && !('error' in torch)) {
    const speed = (b: string) => (ort.pairsPerSec[b]! / torch.pairsPerSec[b]!).toFixed(2);
    let worst = 0;
    ort.rewards.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - (torch.rewards[i] ?? NaN)))));
    console.log(`\nORT ÷ PyTorch throughput: B=1 ${speed('1')}×, B=${B} ${speed(B)}× (goal ≥ 4×)`);
    console.log(`rewards (B=${B}) ORT:   ${ort.rewards.map((v) => v.toFixed(5)).join(' ')}`);
    console.log(`rewards (B=${B}) torch: ${torch.rewards.map((v) => v.toFixed(5)).join(' ')}`);
    console.log(`max |Δreward| ORT vs PyTorch: ${worst.toExponential(2)} (${worst <= 1e-4 ? 'within' : 'OUTSIDE'} 1e-4)`);
    console.log(`PyTorch BLAS: ${String(torch.blas)}; torch threads ${String(torch.threads)}`);
  }
  if (!('error' in ort) && !('error' in int8)) {
    const speed = (b: string, base: ContenderResult) => (int8.pairsPerSec[b]! / base.pairsPerSec[b]!).toFixed(2);
    let worst = 0;
    int8.rewards.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - (ort.rewards[i] ?? NaN)))));
    const order = (r: number[]) => r.map((_, i) => i).sort((a, b) => r[b]! - r[a]! || a - b).join(',');
    const exact = order(int8.rewards) === order(ort.rewards);
    console.log(`\nint8 ÷ fp32 throughput: B=1 ${speed('1', ort)}×, B=${B} ${speed(B, ort)}× (goal ≥ 2.5×)`);
    if (!('error' in torch)) console.log(`int8 ÷ PyTorch throughput: B=1 ${speed('1', torch)}×, B=${B} ${speed(B, torch)}×`);
    console.log(`rewards (B=${B}) int8:  ${int8.rewards.map((v) => v.toFixed(5)).join(' ')}`);
    console.log(`max |reward int8 − fp32| over the ${B} images: ${worst.toExponential(2)}; ranking ${exact ? 'identical' : 'DIFFERS'} (Spearman ρ = ${spearman(int8.rewards, ort.rewards).toFixed(3)})`);
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'ort') await ortChild(rest[0]!, rest[1]!, Number(rest[2]), Number(rest[3]), rest[4], rest[5]);
  else await benchScorerCpu(Number(process.env.BENCH_SECONDS ?? 3));
}
