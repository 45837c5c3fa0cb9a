// ONNX writer (gpu-service/onnx) checked end to end through real onnxruntime-node (CPU).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, DataType, DEFAULT_OPSET, DEFAULT_IR_VERSION, encodeModel, tensor, type TensorData } from '../../gpu-service/onnx/model.js';
import { DecodedMessage, ProtoWriter, decodeFields } from '../../gpu-service/onnx/protobuf.js';
import { safetensorsInitializer } from '../../gpu-service/onnx/external.js';
import { openSafetensors, writeSafetensors, type TensorSpec } from '../../gpu-service/model/safetensors.js';
import { rng } from '../support/rng.js';

// --- helpers ---------------------------------------------------------------------

function randArray(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

/** erf in float64 (Maclaurin series; accurate to ~1e-12 for |x| < 5). */
function erf(x: number): number {
  if (x > 5.5) return 1;
  if (x < -5.5) return -1;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** Row-major [rows, k] · [k, n] in float64. */
function matmulRef(a: ArrayLike<number>, b: ArrayLike<number>, rows: number, k: number, n: number): Float64Array {
  const out = new Float64Array(rows * n);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (a[i * k + p] as number) * (b[p * n + j] as number);
      out[i * n + j] = s;
    }
  return out;
}
function addBiasRef(x: Float64Array, b: ArrayLike<number>, n: number): Float64Array {
  return x.map((v, i) => v + (b[i % n] as number));
}
function layerNormRef(x: Float64Array, g: ArrayLike<number>, b: ArrayLike<number>, n: number, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    let mean = 0;
    for (let j = 0; j < n; j++) mean += x[r * n + j] as number;
    mean /= n;
    let v = 0;
    for (let j = 0; j < n; j++) v += ((x[r * n + j] as number) - mean) ** 2;
    v /= n;
    for (let j = 0; j < n; j++) out[r * n + j] = (((x[r * n + j] as number) - mean) / Math.sqrt(v + eps)) * (g[j] as number) + (b[j] as number);
  }
  return out;
}
function geluRef(x: Float64Array): Float64Array {
  return x.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
}
function softmaxRef(x: Float64Array, n: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, x[r * n + j] as number);
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp((x[r * n + j] as number) - m);
    for (let j = 0; j < n; j++) out[r * n + j] = Math.exp((x[r * n + j] as number) - m) / s;
  }
  return out;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs((actual[i] as number) - (expected[i] as number)));
  expect(worst).toBeLessThan(tol);
}

function floatData(t: ort.Tensor | undefined): Float32Array {
  if (!t) throw new Error('missing output');
  return t.data as Float32Array;
}

/** float -> IEEE half bits, for values exactly representable as normal halves (test data only). */
function toHalfBits(v: number): number {
  if (v === 0) return 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  const mant = Math.round((a / 2 ** e - 1) * 1024);
  if (e < -14 || e > 15 || a !== (1 + mant / 1024) * 2 ** e) throw new Error(`not an exact normal half: ${v}`);
  return sign | ((e + 15) << 10) | mant;
}

const SESSION_OPTS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, graphOptimizationLevel: 'all' };

// --- shared MLP-ish graph (MatMul + Add + LayerNorm + GELU + Softmax) ---------------

const D_IN = 8;
const D_OUT = 6;
const EPS = 1e-5;
const W = randArray(D_IN * D_OUT, 1, 0.7);
const BIAS = randArray(D_OUT, 2, 0.3);
const LN_G = Float32Array.from(randArray(D_OUT, 3, 0.5), (v) => 1 + v);
const LN_B = randArray(D_OUT, 4, 0.2);

type WeightSource = (name: string, data: Float32Array) => TensorData | { externalFile: string; offset: number; length: number };

function buildMlp(source: WeightSource): Uint8Array {
  const g = new GraphBuilder('mlp');
  const x = g.input('x', 'FLOAT', ['B', D_IN]);
  const w = g.initializer('w', 'FLOAT', [D_IN, D_OUT], source('w', W));
  const b = g.initializer('b', 'FLOAT', [D_OUT], source('b', BIAS));
  const lg = g.initializer('ln_g', 'FLOAT', [D_OUT], source('ln_g', LN_G));
  const lb = g.initializer('ln_b', 'FLOAT', [D_OUT], source('ln_b', LN_B));
  const h = g.scope('block', () => {
    const lin = g.linear(x, w, b);
    const ln = g.layerNorm(lin, lg, lb, EPS, -1);
    const act = g.gelu(ln);
    g.output(ln, 'FLOAT', ['B', D_OUT], 'ln_out');
    return act;
  });
  g.output(h, 'FLOAT', ['B', D_OUT], 'gelu_out');
  g.output(g.softmax(h, -1), 'FLOAT', ['B', D_OUT], 'probs');
  return g.toModel({ producerName: 'onnx-model.test' });
}

function mlpRef(x: Float32Array, batch: number): { ln: Float64Array; gelu: Float64Array; probs: Float64Array } {
  const ln = layerNormRef(addBiasRef(matmulRef(x, W, batch, D_IN, D_OUT), BIAS, D_OUT), LN_G, LN_B, D_OUT, EPS);
  const gelu = geluRef(ln);
  return { ln, gelu, probs: softmaxRef(gelu, D_OUT) };
}

async function checkMlp(session: ort.InferenceSession, batch: number, seed: number): Promise<void> {
  const x = randArray(batch * D_IN, seed, 2);
  const out = await session.run({ x: new ort.Tensor('float32', x, [batch, D_IN]) });
  const ref = mlpRef(x, batch);
  expect(out.probs?.dims).toEqual([batch, D_OUT]);
  expectClose(floatData(out.ln_out), ref.ln);
  expectClose(floatData(out.gelu_out), ref.gelu);
  expectClose(floatData(out.probs), ref.probs);
}

const tmpDirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'onnx-model-test-'));
  tmpDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/**
 * Safetensors-like container: u64 LE header length, JSON header, then tensor bytes.
 * `pad` bytes of spaces are appended to the JSON so data offsets can be made
 * deliberately unaligned. Returns absolute file offsets per tensor.
 */
function writeSafetensorsLike(path: string, tensors: Array<[string, Float32Array]>, pad: number | ((jsonLen: number) => number), gapBefore: Record<string, number> = {}): Record<string, { offset: number; length: number }> {
  const rel: Record<string, { begin: number; end: number }> = {};
  let cursor = 0;
  for (const [name, data] of tensors) {
    cursor += gapBefore[name] ?? 0;
    rel[name] = { begin: cursor, end: cursor + data.byteLength };
    cursor += data.byteLength;
  }
  const header: Record<string, unknown> = {};
  for (const [name, data] of tensors) {
    const r = rel[name]!;
    header[name] = { dtype: 'F32', shape: [data.length], data_offsets: [r.begin, r.end] };
  }
  const raw = JSON.stringify(header);
  const padLen = typeof pad === 'number' ? pad : pad(Buffer.byteLength(raw));
  const json = Buffer.from(raw + ' '.repeat(padLen), 'utf8');
  const base = 8 + json.length;
  const file = Buffer.alloc(base + cursor);
  file.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(file, 8);
  const abs: Record<string, { offset: number; length: number }> = {};
  for (const [name, data] of tensors) {
    const r = rel[name]!;
    Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(file, base + r.begin);
    abs[name] = { offset: base + r.begin, length: data.byteLength };
  }
  writeFileSync(path, file);
  return abs;
}

// --- tests ------------------------------------------------------------------------------

describe('onnx writer through onnxruntime-node', () => {
  it('(a) MatMul+Add+LayerNorm+GELU(erf)+Softmax with inline initializers matches float64 JS', async () => {
    const bytes = buildMlp((_n, d) => d);
    for (const level of ['disabled', 'all'] as const) {
      const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, graphOptimizationLevel: level });
      expect(session.inputNames).toEqual(['x']);
      expect(session.outputNames).toEqual(['ln_out', 'gelu_out', 'probs']);
      await checkMlp(session, 3, 11);
      await session.release();
    }
  });

  it('(b) initializers as EXTERNAL data at non-zero, unaligned offsets inside a safetensors-like file', async () => {
    const dir = tempDir();
    const tensors: Array<[string, Float32Array]> = [
      ['w', W],
      ['b', BIAS],
      ['ln_g', LN_G],
      ['ln_b', LN_B],
    ];
    // Header padded so tensor data starts at 1 (mod 4), plus a 2-byte gap before 'b':
    // every offset is odd, i.e. not even 2-byte aligned.
    const offs = writeSafetensorsLike(join(dir, 'weights.safetensors'), tensors, (len) => (((1 - 8 - len) % 4) + 4) % 4, { b: 2 });
    for (const [name] of tensors) expect(offs[name]!.offset % 2).toBe(1);
    const bytes = buildMlp((name) => ({ externalFile: 'weights.safetensors', ...offs[name]! }));
    const modelPath = join(dir, 'model.onnx');
    writeFileSync(modelPath, bytes);
    const session = await ort.InferenceSession.create(modelPath, SESSION_OPTS);
    await checkMlp(session, 2, 12);
    await session.release();
  });

  it('(b2) large external tensors at a page-aligned offset and at an odd offset', async () => {
    const dir = tempDir();
    const n = 256;
    const big1 = randArray(n * n, 21, 0.1);
    const big2 = randArray(n * n, 22, 0.1);
    // Choose the header pad so that big1 starts exactly at 4096 and big2 at an odd offset.
    const probeHeader = JSON.stringify({
      big1: { dtype: 'F32', shape: [big1.length], data_offsets: [0, big1.byteLength] },
      big2: { dtype: 'F32', shape: [big2.length], data_offsets: [big1.byteLength + 3, 2 * big1.byteLength + 3] },
    });
    const pad = 4096 - 8 - Buffer.byteLength(probeHeader);
    const offs = writeSafetensorsLike(join(dir, 'big.safetensors'), [['big1', big1], ['big2', big2]], pad, { big2: 3 });
    expect(offs.big1!.offset).toBe(4096);
    expect(offs.big2!.offset % 2).toBe(1);

    const g = new GraphBuilder('big');
    const x = g.input('x', 'FLOAT', ['B', n]);
    const w1 = g.initializer('big1', 'FLOAT', [n, n], { externalFile: 'big.safetensors', ...offs.big1! });
    const w2 = g.initializer('big2', 'FLOAT', [n, n], { externalFile: 'big.safetensors', ...offs.big2! });
    g.output(g.matmul(g.matmul(x, w1), w2), 'FLOAT', ['B', n], 'y');
    const modelPath = join(dir, 'big.onnx');
    writeFileSync(modelPath, g.toModel());
    const session = await ort.InferenceSession.create(modelPath, SESSION_OPTS);
    const xs = randArray(2 * n, 23, 1);
    const out = await session.run({ x: new ort.Tensor('float32', xs, [2, n]) });
    expectClose(floatData(out.y), matmulRef(matmulRef(xs, big1, 2, n, n), big2, 2, n, n), 1e-5);
    await session.release();
  });

  it('(b3) initializers straight from a project-written model.safetensors (F32 + F16) in a subdirectory', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'weights'));
    const f16Vals = [0.5, -1.25, 2, 0.125, -3, 1];
    const f16 = Uint16Array.from(f16Vals, toHalfBits);
    const data: Record<string, Uint8Array> = {
      'enc.w': new Uint8Array(W.buffer),
      'enc.b': new Uint8Array(BIAS.buffer),
      'enc.ln.weight': new Uint8Array(LN_G.buffer),
      'enc.ln.bias': new Uint8Array(LN_B.buffer),
      'enc.shift': new Uint8Array(f16.buffer),
    };
    const specs: TensorSpec[] = [
      { name: 'enc.b', dtype: 'F32', shape: [D_OUT] },
      { name: 'enc.shift', dtype: 'F16', shape: [D_OUT] },
      { name: 'enc.w', dtype: 'F32', shape: [D_IN * D_OUT] }, // flat on disk, reshaped via dims
      { name: 'enc.ln.weight', dtype: 'F32', shape: [D_OUT] },
      { name: 'enc.ln.bias', dtype: 'F32', shape: [D_OUT] },
    ];
    const stPath = join(dir, 'weights', 'model.safetensors');
    await writeSafetensors(stPath, specs, async (spec) => data[spec.name]!);
    const st = await openSafetensors(stPath);
    try {
      expect(st.range('enc.w').offset % 8).toBe(4); // F16 tensor of 12 bytes shifts the following tensors off 8-byte alignment
      const g = new GraphBuilder('from_safetensors');
      const loc = 'weights/model.safetensors';
      const x = g.input('x', 'FLOAT', ['B', D_IN]);
      const w = safetensorsInitializer(g, st, loc, 'enc.w', { dims: [D_IN, D_OUT] });
      const b = safetensorsInitializer(g, st, loc, 'enc.b');
      const lg = safetensorsInitializer(g, st, loc, 'enc.ln.weight', { onnxName: 'ln_g' });
      const lb = safetensorsInitializer(g, st, loc, 'enc.ln.bias', { onnxName: 'ln_b' });
      const shift = g.cast(safetensorsInitializer(g, st, loc, 'enc.shift'), 'FLOAT');
      g.output(g.add(g.layerNorm(g.linear(x, w, b), lg, lb, EPS), shift), 'FLOAT', ['B', D_OUT], 'y');
      const modelPath = join(dir, 'model.onnx');
      writeFileSync(modelPath, g.toModel());
      const session = await ort.InferenceSession.create(modelPath, SESSION_OPTS);
      const xs = randArray(3 * D_IN, 51, 2);
      const out = await session.run({ x: new ort.Tensor('float32', xs, [3, D_IN]) });
      const ref = mlpRef(xs, 3).ln.map((v, i) => v + (f16Vals[i % D_OUT] as number));
      expectClose(floatData(out.y), ref);
      await session.release();
    } finally {
      await st.close();
    }
  });

  it('(c) symbolic batch dim B runs with batch 1 and 4', async () => {
    const session = await ort.InferenceSession.create(buildMlp((_n, d) => d), SESSION_OPTS);
    await checkMlp(session, 1, 31);
    await checkMlp(session, 4, 32);
    await session.release();
  });

  it('(d) multi-head attention (heads 2, head dim 4) with Gather/Cast/Unsqueeze mask, Slice, Concat', async () => {
    const H = 2;
    const HD = 4;
    const D = H * HD;
    const V = 10;
    const emb = randArray(V * D, 41, 1);
    const wq = randArray(D * D, 42, 0.5);
    const wk = randArray(D * D, 43, 0.5);
    const wv = randArray(D * D, 44, 0.5);

    const g = new GraphBuilder('attn');
    const ids = g.input('input_ids', 'INT64', ['B', 'S']);
    const mask = g.input('attention_mask', 'INT64', ['B', 'S']);
    const x = g.gather(g.initializer('emb', 'FLOAT', [V, D], emb), ids, 0); // [B,S,D]
    const heads = (t: string, perm: number[]): string => g.transpose(g.reshape(t, [0, 0, H, HD]), perm);
    const out = g.scope('attn', () => {
      const q = heads(g.matmul(x, g.initializer('wq', 'FLOAT', [D, D], wq)), [0, 2, 1, 3]); // [B,H,S,HD]
      const kT = heads(g.matmul(x, g.initializer('wk', 'FLOAT', [D, D], wk)), [0, 2, 3, 1]); // [B,H,HD,S]
      const v = heads(g.matmul(x, g.initializer('wv', 'FLOAT', [D, D], wv)), [0, 2, 1, 3]);
      const addMask = g.unsqueeze(g.mul(g.sub(g.scalar(1), g.cast(mask, 'FLOAT')), g.scalar(-10000)), [1, 2]); // [B,1,1,S]
      const scores = g.add(g.div(g.matmul(q, kT), g.scalar(Math.sqrt(HD))), addMask);
      const ctx = g.matmul(g.softmax(scores, -1), v); // [B,H,S,HD]
      return g.reshape(g.transpose(ctx, [0, 2, 1, 3]), [0, 0, D]); // [B,S,D]
    });
    g.output(out, 'FLOAT', ['B', 'S', D], 'context');
    const first = g.slice(out, [0], [1], [1]); // [B,1,D]
    g.output(g.concat([first, out], 1), 'FLOAT', ['B', 'S_plus_1', D], 'with_cls');
    const bytes = g.toModel();

    const B = 2;
    const S = 5;
    const idsData = BigInt64Array.from({ length: B * S }, (_, i) => BigInt((i * 7 + 3) % V));
    const maskData = BigInt64Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], (v) => BigInt(v));

    // float64 reference
    const ref = new Float64Array(B * S * D);
    for (let b = 0; b < B; b++) {
      const xb = new Float64Array(S * D);
      for (let s = 0; s < S; s++) for (let d = 0; d < D; d++) xb[s * D + d] = emb[Number(idsData[b * S + s]) * D + d] as number;
      const q = matmulRef(xb, wq, S, D, D);
      const k = matmulRef(xb, wk, S, D, D);
      const v = matmulRef(xb, wv, S, D, D);
      for (let h = 0; h < H; h++) {
        const sc = new Float64Array(S * S);
        for (let i = 0; i < S; i++)
          for (let j = 0; j < S; j++) {
            let dot = 0;
            for (let e = 0; e < HD; e++) dot += (q[i * D + h * HD + e] as number) * (k[j * D + h * HD + e] as number);
            sc[i * S + j] = dot / Math.sqrt(HD) + (1 - Number(maskData[b * S + j])) * -10000;
          }
        const p = softmaxRef(sc, S);
        for (let i = 0; i < S; i++)
          for (let e = 0; e < HD; e++) {
            let acc = 0;
            for (let j = 0; j < S; j++) acc += (p[i * S + j] as number) * (v[j * D + h * HD + e] as number);
            ref[(b * S + i) * D + h * HD + e] = acc;
          }
      }
    }
    const withCls = new Float64Array(B * (S + 1) * D);
    for (let b = 0; b < B; b++) {
      withCls.set(ref.subarray(b * S * D, b * S * D + D), b * (S + 1) * D);
      withCls.set(ref.subarray(b * S * D, (b + 1) * S * D), b * (S + 1) * D + D);
    }

    for (const level of ['disabled', 'all'] as const) {
      const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, graphOptimizationLevel: level });
      const res = await session.run({
        input_ids: new ort.Tensor('int64', idsData, [B, S]),
        attention_mask: new ort.Tensor('int64', maskData, [B, S]),
      });
      expect(res.context?.dims).toEqual([B, S, D]);
      expect(res.with_cls?.dims).toEqual([B, S + 1, D]);
      expectClose(floatData(res.context), ref);
      expectClose(floatData(res.with_cls), withCls);
      await session.release();
    }
  });

  it('(e) encoder round-trips: decoded ModelProto has the expected fields', () => {
    const bytes = buildMlp((name, d) => (name === 'w' ? { externalFile: 'weights.safetensors', offset: 1234567, length: d.byteLength } : d));
    const model = new DecodedMessage(bytes);
    expect(model.int(1)).toBe(DEFAULT_IR_VERSION);
    expect(model.string(2)).toBe('onnx-model.test');
    const opset = model.messages(8);
    expect(opset).toHaveLength(1);
    expect(opset[0]!.string(1)).toBe('');
    expect(opset[0]!.int(2)).toBe(DEFAULT_OPSET);

    const graph = model.message(7)!;
    expect(graph.string(2)).toBe('mlp');
    const nodes = graph.messages(1);
    const opTypes = nodes.map((n) => n.string(4));
    // linear (MatMul, Add), LN, gelu (Div, Erf, Add, Mul, Mul), Identity->ln_out, Identity->gelu_out, Softmax, Identity->probs
    expect(opTypes).toEqual(['MatMul', 'Add', 'LayerNormalization', 'Div', 'Erf', 'Add', 'Mul', 'Mul', 'Identity', 'Identity', 'Softmax', 'Identity']);
    const ln = nodes[2]!;
    const lnAttrs = new Map(ln.messages(5).map((a) => [a.string(1), a]));
    expect(lnAttrs.get('axis')!.int(3)).toBe(-1);
    expect(lnAttrs.get('axis')!.int(20)).toBe(2); // INT
    expect(lnAttrs.get('epsilon')!.float(2)).toBeCloseTo(EPS, 10);
    expect(lnAttrs.get('epsilon')!.int(20)).toBe(1); // FLOAT
    expect(nodes[0]!.strings(1)).toEqual(['x', 'w']);
    expect(nodes[0]!.string(2)).toMatch(/^block\//);

    const inits = new Map(graph.messages(5).map((t) => [t.string(8), t]));
    expect([...inits.keys()]).toEqual(['w', 'b', 'ln_g', 'ln_b', 'scalar_f', 'scalar_f_1', 'scalar_f_2']);
    const w = inits.get('w')!;
    expect(w.ints(1)).toEqual([D_IN, D_OUT]);
    expect(w.int(2)).toBe(DataType.FLOAT);
    expect(w.int(14)).toBe(1); // EXTERNAL
    expect(w.has(9)).toBe(false);
    const ext = Object.fromEntries(w.messages(13).map((e) => [e.string(1), e.string(2)]));
    expect(ext).toEqual({ location: 'weights.safetensors', offset: '1234567', length: String(W.byteLength) });
    const b = inits.get('b')!;
    expect(b.ints(1)).toEqual([D_OUT]);
    expect(b.has(14)).toBe(false);
    expect(new Float32Array(b.bytes(9)!.slice().buffer)).toEqual(BIAS);
    expect(inits.get('scalar_f')!.ints(1)).toEqual([]); // 0-d scalar: no dims

    const x = graph.messages(11)[0]!;
    expect(x.string(1)).toBe('x');
    const tt = x.message(2)!.message(1)!;
    expect(tt.int(1)).toBe(DataType.FLOAT);
    const dims = tt.message(2)!.messages(1);
    expect(dims.map((d) => d.string(2) ?? d.int(1))).toEqual(['B', D_IN]);
    expect(graph.messages(12).map((o) => o.string(1))).toEqual(['ln_out', 'gelu_out', 'probs']);
  });

  it('protobuf primitives: varints (incl. negative int64), fixed, packed', () => {
    const w = new ProtoWriter(1);
    w.varint(1, 300).varint(2, -1).varint(3, 2n ** 40n).float(4, 1.5).double(5, -2.25).packedVarints(6, [1, -2, 150]).packedFloats(7, [0.5, -3]).string(8, 'héllo');
    const bytes = w.finish();
    // 300 -> ac 02 ; -1 -> ten bytes ff..01
    expect([...bytes.slice(0, 3)]).toEqual([0x08, 0xac, 0x02]);
    expect([...bytes.slice(3, 14)]).toEqual([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    const m = new DecodedMessage(bytes);
    expect(m.int(1)).toBe(300);
    expect(m.int(2)).toBe(-1);
    expect(m.int(3)).toBe(2 ** 40);
    expect(m.float(4)).toBe(1.5);
    const f5 = m.all(5)[0]!;
    expect(f5.wire).toBe(1);
    if (f5.wire === 1) expect(new DataView(f5.bytes.slice().buffer).getFloat64(0, true)).toBe(-2.25);
    expect(m.ints(6)).toEqual([1, -2, 150]);
    expect(m.floats(7)).toEqual([0.5, -3]);
    expect(m.string(8)).toBe('héllo');
    expect(decodeFields(bytes).map((f) => f.field)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('rejects inconsistent tensors and duplicate names', () => {
    expect(() => tensor('t', 'FLOAT', [2, 3], new Float32Array(5))).toThrow(/expected 24/);
    const g = new GraphBuilder();
    g.input('x', 'FLOAT', [1]);
    expect(() => g.initializer('x', 'FLOAT', [1], new Float32Array(1))).toThrow(/duplicate/);
    expect(() => g.initializer('y', 'FLOAT', [4], { externalFile: 'f', offset: 0, length: 8 })).toThrow(/expected 16/);
    expect(() => encodeModel({ graph: { name: 'g', nodes: [], inputs: [], outputs: [], initializers: [{ name: 'z', dataType: 'FLOAT', dims: [1] }] } })).toThrow(/exactly one/);
  });
});
