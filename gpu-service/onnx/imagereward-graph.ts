// ImageReward as two ONNX graphs, built from a converted model directory
// (config.json + model.safetensors) and written into that directory:
//
//   vision.onnx  pixel_values f32 [B,3,S,S]                        -> image_embeds f32 [B,Nimg,W]
//   text.onnx    input_ids i64 [B,L], attention_mask i64 [B,L],
//                image_embeds f32 [B,Nimg,W]                       -> reward f32 [B], raw f32 [B], text_cls f32 [B,H]
//
// The forward pass follows test/fixtures/model/architecture.md: pre-norm ViT
// (LayerNorm eps 1e-6), post-norm multimodal BERT (eps 1e-12) with the additive
// self-attention mask (1 - m)·-10000 over keys and unmasked cross-attention over
// all image tokens, no [ENC] substitution, exact erf GELU, and a head of five
// Linear layers without activations; reward = (raw - mean) / std.
//
// Every weight is an external-data initializer pointing into model.safetensors
// (no copy): `location` is the bare file name, so the .onnx files must stay in
// the model directory and be loaded by path. PyTorch Linear weights are stored
// [out, in]; a Linear is com.microsoft FusedMatMul(x, W, transB=1) + Add(bias), so
// ORT packs W for MLAS straight from the [out, in] layout (no Transpose node that
// session creation would constant-fold into another full copy of the weights).
//
// Opt-in int8 (precision 'int8'): vision.int8.onnx / text.int8.onnx, where every
// transformer Linear is com.microsoft DynamicQuantizeMatMul (activations quantized
// per call to u8, weights int8 per output column from model.int8.bin, see
// quantize.ts) + the fp32 bias; LayerNorm, softmax, GELU, embeddings, the patch
// conv and the reward head stay fp32.
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageRewardConfig } from '../model/architecture.js';
import { MLP_LINEAR_INDICES } from '../model/architecture.js';
import { WEIGHTS_FILE, readModelDirConfig } from '../model/model-dir.js';
import { openSafetensors, type SafetensorsFile } from '../model/safetensors.js';
import { safetensorsInitializer } from './external.js';
import { DEFAULT_IR_VERSION, DEFAULT_OPSET, GraphBuilder, attr } from './model.js';
import { INT8_WEIGHTS_FILE, ensureInt8Weights, type Int8Manifest, type Int8TensorEntry } from './quantize.js';

export const VISION_ONNX_FILE = 'vision.onnx';
export const TEXT_ONNX_FILE = 'text.onnx';
export const VISION_INT8_ONNX_FILE = 'vision.int8.onnx';
export const TEXT_INT8_ONNX_FILE = 'text.int8.onnx';
export const MS_DOMAIN = 'com.microsoft';

export type Precision = 'fp32' | 'int8';
/**
 * How an fp32 Linear is expressed: 'fusedmatmul' (default) FusedMatMul(transB=1) + Add;
 * 'transpose' MatMul(x, Transpose(W)) + Add (the original form, folded by ORT at load);
 * 'gemm' Reshape to 2-D, Gemm(transB=1) with the bias, Reshape back.
 */
export type LinearForm = 'fusedmatmul' | 'transpose' | 'gemm';

/** The graph files for a precision. */
export function graphFiles(precision: Precision = 'fp32'): { vision: string; text: string } {
  return precision === 'int8' ? { vision: VISION_INT8_ONNX_FILE, text: TEXT_INT8_ONNX_FILE } : { vision: VISION_ONNX_FILE, text: TEXT_ONNX_FILE };
}
/** Upstream tokenizes with padding='max_length', max_length=35. */
export const DEFAULT_TEXT_LENGTH = 35;

export const VIT_LN_EPS = 1e-6;
export const BERT_LN_EPS = 1e-12;
export const MASK_NEG = -10000;

export interface BuildGraphsOptions {
  /** Default-domain opset (>= 17, for LayerNormalization). Default DEFAULT_OPSET. */
  opset?: number;
  /** Fixed text length L of input_ids / attention_mask (default 35, must be <= maxPositions). */
  textLength?: number;
  /** 'fp32' (default): vision.onnx / text.onnx; 'int8': vision.int8.onnx / text.int8.onnx (+ model.int8.bin). */
  precision?: Precision;
  /** fp32 Linear form (benchmarks); default 'fusedmatmul'. */
  linearForm?: LinearForm;
}

interface GraphWeightsOptions {
  linearForm?: LinearForm;
  /** int8 mode: the side file's manifest; Linears listed there become DynamicQuantizeMatMul. */
  int8?: Int8Manifest;
}

export interface BuiltGraphs {
  vision: string;
  text: string;
  /** Per file: false when the file already held exactly these bytes (nothing written). */
  written: { vision: boolean; text: boolean };
}

export class GraphBuildError extends Error {
  override name = 'GraphBuildError';
}

/** Resolves weights from the safetensors file, checking shape and dtype against the config. */
class Weights {
  private readonly quantized: Map<string, Int8TensorEntry>;
  private readonly form: LinearForm;

  constructor(
    private readonly g: GraphBuilder,
    private readonly file: SafetensorsFile,
    opts: GraphWeightsOptions = {},
  ) {
    this.quantized = new Map((opts.int8?.tensors ?? []).map((t) => [t.linear, t]));
    this.form = opts.linearForm ?? 'fusedmatmul';
  }

  /** Initializer for `name` (expected shape `dims`, F32). */
  get(name: string, dims: readonly number[]): string {
    this.check(name, dims);
    return safetensorsInitializer(this.g, this.file, WEIGHTS_FILE, name);
  }

  private check(name: string, dims: readonly number[]): void {
    const t = this.file.get(name);
    if (t.dtype !== 'F32') throw new GraphBuildError(`${name}: dtype ${t.dtype}, expected F32`);
    if (t.shape.length !== dims.length || t.shape.some((d, i) => d !== dims[i])) {
      throw new GraphBuildError(`${name}: shape [${t.shape.join(',')}], expected [${dims.join(',')}]`);
    }
  }

  /** y = x·Wᵀ + b for a PyTorch Linear `prefix`.weight [out,in] / `prefix`.bias [out]. */
  linear(x: string, prefix: string, inDim: number, outDim: number): string {
    const g = this.g;
    const q = this.quantized.get(prefix);
    const b = this.get(`${prefix}.bias`, [outDim]);
    if (q !== undefined) {
      this.check(`${prefix}.weight`, [outDim, inDim]);
      if (q.inDim !== inDim || q.outDim !== outDim) throw new GraphBuildError(`${prefix}: int8 entry [${q.inDim},${q.outDim}], expected [${inDim},${outDim}]`);
      const qw = g.initializer(`${prefix}.weight_int8`, 'INT8', [inDim, outDim], { externalFile: INT8_WEIGHTS_FILE, ...q.weight });
      const qs = g.initializer(`${prefix}.weight_scale`, 'FLOAT', [outDim], { externalFile: INT8_WEIGHTS_FILE, ...q.scale });
      // A, B, b_scale, b_zero_point (absent: symmetric), bias.
      return g.op1('DynamicQuantizeMatMul', [x, qw, qs, '', b], [], { domain: MS_DOMAIN });
    }
    const w = this.get(`${prefix}.weight`, [outDim, inDim]);
    switch (this.form) {
      case 'transpose':
        return g.linear(x, g.transpose(w, [1, 0]), b);
      case 'gemm': {
        const flat = g.reshape(x, [-1, inDim]);
        const y = g.op1('Gemm', [flat, w, b], [attr.int('transB', 1)]);
        // Back to x's leading dims with the last one replaced by outDim.
        const lead = g.op1('Shape', [x], [attr.int('start', 0), attr.int('end', -1)]);
        return g.reshape(y, g.concat([lead, g.int64s([outDim], 'out_dim')], 0));
      }
      case 'fusedmatmul':
        return g.add(g.op1('FusedMatMul', [x, w], [attr.int('transB', 1)], { domain: MS_DOMAIN }), b);
    }
  }

  layerNorm(x: string, prefix: string, dim: number, eps: number): string {
    return this.g.layerNorm(x, this.get(`${prefix}.weight`, [dim]), this.get(`${prefix}.bias`, [dim]), eps);
  }
}

/** [B,N,heads*hd] -> [B,heads,N,hd] (or [B,heads,hd,N] when `keyT`). */
function splitHeads(g: GraphBuilder, x: string, heads: number, hd: number, keyT = false): string {
  return g.transpose(g.reshape(x, [0, 0, heads, hd]), keyT ? [0, 2, 3, 1] : [0, 2, 1, 3]);
}

/** [B,heads,N,hd] -> [B,N,heads*hd]. */
function mergeHeads(g: GraphBuilder, x: string, width: number): string {
  return g.reshape(g.transpose(x, [0, 2, 1, 3]), [0, 0, width]);
}

function checkDivisible(what: string, width: number, heads: number): number {
  if (!Number.isInteger(width / heads)) throw new GraphBuildError(`${what}: width ${width} is not divisible by ${heads} heads`);
  return width / heads;
}

/** The vision encoder graph (not yet encoded). */
export function buildVisionGraph(config: ImageRewardConfig, file: SafetensorsFile, opts: GraphWeightsOptions = {}): GraphBuilder {
  const v = config.vision;
  const W = v.width;
  const P = v.patch;
  if (v.image % P !== 0) throw new GraphBuildError(`vision: image ${v.image} is not a multiple of patch ${P}`);
  const grid = v.image / P;
  const N = grid * grid + 1;
  const hd = checkDivisible('vision', W, v.heads);
  const M = Math.round(W * v.mlpRatio);
  const g = new GraphBuilder('imagereward_vision');
  const w = new Weights(g, file, opts);
  const pv = 'blip.visual_encoder.';

  const pixels = g.input('pixel_values', 'FLOAT', ['B', 3, v.image, v.image]);
  let x = g.scope('patch_embed', () => {
    const conv = g.op1(
      'Conv',
      [pixels, w.get(`${pv}patch_embed.proj.weight`, [W, 3, P, P]), w.get(`${pv}patch_embed.proj.bias`, [W])],
      [attr.ints('kernel_shape', [P, P]), attr.ints('strides', [P, P])],
    );
    // [B,W,g,g] -> [B,W,g²] -> [B,g²,W] (row-major over row, then column)
    const patches = g.transpose(g.reshape(conv, [0, 0, -1]), [0, 2, 1]);
    // cls_token [1,1,W] expanded to [B,1,W]
    const batch = g.op1('Shape', [pixels], [attr.int('start', 0), attr.int('end', 1)]);
    const clsShape = g.concat([batch, g.int64s([1, W], 'cls_shape')], 0);
    const cls = g.op1('Expand', [w.get(`${pv}cls_token`, [1, 1, W]), clsShape]);
    return g.add(g.concat([cls, patches], 1), w.get(`${pv}pos_embed`, [1, N, W]));
  });

  const scale = g.scalar(hd ** -0.5);
  for (let i = 0; i < v.layers; i++) {
    const b = `${pv}blocks.${i}.`;
    x = g.scope(`block${i}`, () => {
      let h = w.layerNorm(x, `${b}norm1`, W, VIT_LN_EPS);
      const qkv = w.linear(h, `${b}attn.qkv`, W, 3 * W); // [B,N,3W]
      // reshape [B,N,3,heads,hd] -> [3,B,heads,N,hd]
      const parts = g.transpose(g.reshape(qkv, [0, 0, 3, v.heads, hd]), [2, 0, 3, 1, 4]);
      const q = g.gather(parts, g.scalar(0, 'INT64'), 0);
      const k = g.gather(parts, g.scalar(1, 'INT64'), 0);
      const val = g.gather(parts, g.scalar(2, 'INT64'), 0);
      const scores = g.mul(g.matmul(q, g.transpose(k, [0, 1, 3, 2])), scale);
      const o = mergeHeads(g, g.matmul(g.softmax(scores, -1), val), W);
      const x1 = g.add(x, w.linear(o, `${b}attn.proj`, W, W));
      h = w.layerNorm(x1, `${b}norm2`, W, VIT_LN_EPS);
      h = w.linear(g.gelu(w.linear(h, `${b}mlp.fc1`, W, M)), `${b}mlp.fc2`, M, W);
      return g.add(x1, h);
    });
  }
  const out = w.layerNorm(x, `${pv}norm`, W, VIT_LN_EPS);
  g.output(out, 'FLOAT', ['B', N, W], 'image_embeds');
  return g;
}

/** The text encoder + head graph (not yet encoded). */
export function buildTextGraph(
  config: ImageRewardConfig,
  file: SafetensorsFile,
  normalization: { mean: number; std: number },
  textLength = DEFAULT_TEXT_LENGTH,
  opts: GraphWeightsOptions = {},
): GraphBuilder {
  const t = config.text;
  const H = t.hidden;
  const E = t.encoderWidth;
  const L = textLength;
  if (!Number.isInteger(L) || L < 1 || L > t.maxPositions) throw new GraphBuildError(`text: length ${L} must be in 1..${t.maxPositions}`);
  if (E !== config.vision.width) throw new GraphBuildError(`text: encoderWidth ${E} differs from the vision width ${config.vision.width}`);
  const grid = config.vision.image / config.vision.patch;
  const N = grid * grid + 1;
  const hd = checkDivisible('text', H, t.heads);
  const mlp = config.mlp;
  if (mlp.length !== MLP_LINEAR_INDICES.length + 1 || mlp[0] !== H || mlp[mlp.length - 1] !== 1) {
    throw new GraphBuildError(`mlp widths [${mlp.join(',')}] must be [${H}, …, 1] with ${MLP_LINEAR_INDICES.length} layers`);
  }
  const g = new GraphBuilder('imagereward_text');
  const w = new Weights(g, file, opts);
  const pt = 'blip.text_encoder.';

  const ids = g.input('input_ids', 'INT64', ['B', L]);
  const mask = g.input('attention_mask', 'INT64', ['B', L]);
  const image = g.input('image_embeds', 'FLOAT', ['B', N, E]);

  let x = g.scope('embeddings', () => {
    const words = g.gather(w.get(`${pt}embeddings.word_embeddings.weight`, [t.vocab, H]), ids, 0); // [B,L,H]
    const pos = g.slice(w.get(`${pt}embeddings.position_embeddings.weight`, [t.maxPositions, H]), [0], [L], [0]); // [L,H]
    return w.layerNorm(g.add(words, pos), `${pt}embeddings.LayerNorm`, H, BERT_LN_EPS);
  });

  // (1 - m)·-10000 as [B,1,1,L], added to the scaled scores.
  const ext = g.scope('mask', () => {
    const m = g.unsqueeze(g.cast(mask, 'FLOAT'), [1, 2]);
    return g.mul(g.sub(g.scalar(1), m), g.scalar(MASK_NEG));
  });
  const sqrtHd = g.scalar(Math.sqrt(hd));

  const attention = (hidden: string, kvSource: string, kvWidth: number, prefix: string, extMask?: string): string => {
    const q = splitHeads(g, w.linear(hidden, `${prefix}.self.query`, H, H), t.heads, hd);
    const kT = splitHeads(g, w.linear(kvSource, `${prefix}.self.key`, kvWidth, H), t.heads, hd, true);
    const v = splitHeads(g, w.linear(kvSource, `${prefix}.self.value`, kvWidth, H), t.heads, hd);
    let scores = g.div(g.matmul(q, kT), sqrtHd);
    if (extMask !== undefined) scores = g.add(scores, extMask);
    const ctx = mergeHeads(g, g.matmul(g.softmax(scores, -1), v), H);
    const out = w.linear(ctx, `${prefix}.output.dense`, H, H);
    return w.layerNorm(g.add(out, hidden), `${prefix}.output.LayerNorm`, H, BERT_LN_EPS);
  };

  for (let i = 0; i < t.layers; i++) {
    const b = `${pt}encoder.layer.${i}.`;
    x = g.scope(`layer${i}`, () => {
      let y = g.scope('self', () => attention(x, x, H, `${b}attention`, ext));
      y = g.scope('cross', () => attention(y, image, E, `${b}crossattention`));
      return g.scope('ffn', () => {
        const h = w.linear(g.gelu(w.linear(y, `${b}intermediate.dense`, H, t.intermediate)), `${b}output.dense`, t.intermediate, H);
        return w.layerNorm(g.add(h, y), `${b}output.LayerNorm`, H, BERT_LN_EPS);
      });
    });
  }

  const cls = g.gather(x, g.scalar(0, 'INT64'), 1); // [B,H]
  const raw = g.scope('head', () => {
    let r = cls;
    // The head is never quantized (not in the int8 manifest).
    MLP_LINEAR_INDICES.forEach((idx, j) => {
      r = w.linear(r, `mlp.layers.${idx}`, mlp[j] as number, mlp[j + 1] as number);
    });
    return g.squeeze(r, [1]); // [B]
  });
  const reward = g.div(g.sub(raw, g.scalar(normalization.mean)), g.scalar(normalization.std));

  g.output(reward, 'FLOAT', ['B'], 'reward');
  g.output(raw, 'FLOAT', ['B'], 'raw');
  g.output(cls, 'FLOAT', ['B', H], 'text_cls');
  return g;
}

/** Writes `bytes` to `path` via a temp sibling + rename, unless the file already holds exactly them. */
async function writeIfChanged(path: string, bytes: Uint8Array): Promise<boolean> {
  const existing = await readFile(path).catch(() => undefined);
  if (existing !== undefined && Buffer.compare(existing, bytes) === 0) return false;
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  return true;
}

/**
 * Builds vision.onnx and text.onnx (precision 'int8': vision.int8.onnx and
 * text.int8.onnx, after making sure model.int8.bin is current) for the model
 * directory `modelDir` from its config.json and model.safetensors, writing them
 * into `modelDir`. Idempotent: a file is rewritten (atomically) only when its
 * bytes would change.
 */
export async function buildImageRewardGraphs(modelDir: string, opts: BuildGraphsOptions = {}): Promise<BuiltGraphs & { int8Written?: boolean }> {
  const opset = opts.opset ?? DEFAULT_OPSET;
  if (!Number.isInteger(opset) || opset < 17) throw new GraphBuildError(`opset ${opset} is not supported (need >= 17 for LayerNormalization)`);
  const precision = opts.precision ?? 'fp32';
  const dirConfig = await readModelDirConfig(modelDir);
  const file = await openSafetensors(join(modelDir, WEIGHTS_FILE));
  let visionBytes: Uint8Array;
  let textBytes: Uint8Array;
  let int8Written: boolean | undefined;
  try {
    const gw: GraphWeightsOptions = { ...(opts.linearForm !== undefined ? { linearForm: opts.linearForm } : {}) };
    if (precision === 'int8') {
      const ensured = await ensureInt8Weights(modelDir, file);
      gw.int8 = ensured.manifest;
      int8Written = ensured.written;
    }
    const common = {
      // ONNX IR 8 covers opsets up to 18, IR 9 up to 20, IR 10 from 21.
      irVersion: opset >= 21 ? 10 : opset >= 19 ? 9 : DEFAULT_IR_VERSION,
      opsetImports: [
        { domain: '', version: opset },
        { domain: MS_DOMAIN, version: 1 },
      ],
      metadata: {
        model_id: dirConfig.model_id,
        source_sha256: dirConfig.source.sha256,
        config: JSON.stringify(dirConfig.config),
        precision,
      },
    };
    const tag = precision === 'int8' ? ', int8 dynamic quantization' : '';
    visionBytes = buildVisionGraph(dirConfig.config, file, gw).toModel({ ...common, docString: `ImageReward vision encoder (BLIP ViT${tag})` });
    textBytes = buildTextGraph(dirConfig.config, file, dirConfig.normalization, opts.textLength, gw).toModel({
      ...common,
      docString: `ImageReward text encoder (BERT, cross-attention${tag}) + reward head`,
    });
  } finally {
    await file.close();
  }
  const names = graphFiles(precision);
  const vision = join(modelDir, names.vision);
  const text = join(modelDir, names.text);
  const written = { vision: await writeIfChanged(vision, visionBytes), text: await writeIfChanged(text, textBytes) };
  return { vision, text, written, ...(int8Written !== undefined ? { int8Written } : {}) };
}
