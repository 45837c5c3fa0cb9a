// Prototype probe (not wired into the service): would ONNX Runtime's dynamic
// int8 quantization (com.microsoft DynamicQuantizeMatMul: activations quantized
// per call, weights int8 per output column, symmetric) make the CPU path
// ≥ 2.5× faster than fp32? Times the four GEMMs of one ViT-L/16 block
// (qkv 1024→3072, proj 1024→1024, fc1 1024→4096, fc2 4096→1024: ~98% of the
// vision FLOPs sit in these) as fp32 MatMul vs DynamicQuantizeMatMul, on
// M = 197 (one image) and M = 8·197 rows, and reports the relative error of the
// int8 output. Weights are random N(0, 0.02) like the random demo model.
//
//   node --import tsx bench/int8-probe.ts [threads] [seconds]
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../gpu-service/onnx/model.js';
import { fillNormal } from '../gpu-service/model/random-model.js';

const threads = Number(process.argv[2] ?? 2);
const seconds = Number(process.argv[3] ?? 2);
const W = 1024;
const GEMMS: Array<[string, number, number]> = [
  ['qkv', W, 3 * W],
  ['proj', W, W],
  ['fc1', W, 4 * W],
  ['fc2', 4 * W, W],
];

function weights(name: string, k: number, n: number): Float32Array {
  const w = new Float32Array(k * n); // [K, N] (already transposed)
  fillNormal(w, 1, name, 0.02);
  return w;
}

function quantize(w: Float32Array, k: number, n: number): { q: Int8Array; scale: Float32Array } {
  const scale = new Float32Array(n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) scale[j] = Math.max(scale[j]!, Math.abs(w[i * n + j]!));
  for (let j = 0; j < n; j++) scale[j] = scale[j]! / 127 || 1;
  const q = new Int8Array(k * n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) q[i * n + j] = Math.round(w[i * n + j]! / scale[j]!);
  return { q, scale };
}

/** Each GEMM reads the same input X [M, K] (its own K), outputs summed into nothing: four independent outputs. */
function build(int8: boolean): Uint8Array {
  const g = new GraphBuilder(int8 ? 'int8' : 'fp32');
  const x1 = g.input('x1024', 'FLOAT', ['M', W]);
  const x4 = g.input('x4096', 'FLOAT', ['M', 4 * W]);
  for (const [name, k, n] of GEMMS) {
    const w = weights(name, k, n);
    const x = k === W ? x1 : x4;
    let y: string;
    if (!int8) {
      y = g.matmul(x, g.initializer(`${name}.w`, 'FLOAT', [k, n], w));
    } else {
      const { q, scale } = quantize(w, k, n);
      y = g.op1(
        'DynamicQuantizeMatMul',
        [x, g.initializer(`${name}.q`, 'INT8', [k, n], q), g.initializer(`${name}.s`, 'FLOAT', [n], scale), g.initializer(`${name}.z`, 'INT8', [n], new Int8Array(n))],
        [],
        { domain: 'com.microsoft' },
      );
    }
    g.output(y, 'FLOAT', ['M', n], `y_${name}`);
  }
  return g.toModel({ irVersion: 8, opsetImports: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }] });
}

async function time(s: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<{ ms: number; out: ort.InferenceSession.OnnxValueMapType }> {
  let out = await s.run(feeds);
  const times: number[] = [];
  const start = performance.now();
  while (times.length < 3 || (performance.now() - start < seconds * 1000 && times.length < 200)) {
    const t = performance.now();
    out = await s.run(feeds);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)]!, out };
}

const opts: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: threads };
const fp32 = await ort.InferenceSession.create(build(false), opts);
const int8 = await ort.InferenceSession.create(build(true), opts);
console.log(`| rows M | fp32 MatMul ms | int8 DynamicQuantizeMatMul ms | speed-up | max relative error (‖Δ‖∞ / ‖y‖∞) |`);
console.log('| ---: | ---: | ---: | ---: | ---: |');
for (const m of [197, 8 * 197]) {
  const a = new Float32Array(m * W);
  const b = new Float32Array(m * 4 * W);
  fillNormal(a, 2, 'x1024', 1);
  fillNormal(b, 2, 'x4096', 1);
  const feeds = { x1024: new ort.Tensor('float32', a, [m, W]), x4096: new ort.Tensor('float32', b, [m, 4 * W]) };
  const f = await time(fp32, feeds);
  const q = await time(int8, feeds);
  let worst = 0;
  for (const [name] of GEMMS) {
    const yf = f.out[`y_${name}`]!.data as Float32Array;
    const yq = q.out[`y_${name}`]!.data as Float32Array;
    let d = 0;
    let mx = 0;
    for (let i = 0; i < yf.length; i++) {
      d = Math.max(d, Math.abs(yf[i]! - yq[i]!));
      mx = Math.max(mx, Math.abs(yf[i]!));
    }
    worst = Math.max(worst, d / mx);
  }
  console.log(`| ${m} | ${f.ms.toFixed(1)} | ${q.ms.toFixed(1)} | ${(f.ms / q.ms).toFixed(2)}× | ${worst.toExponential(2)} |`);
}
