// Int8 weights for the opt-in int8 CPU mode: every transformer Linear of the
// model (ViT qkv / proj / fc1 / fc2, BERT query / key / value / dense /
// intermediate / output, cross-attention key / value included) quantized to int8,
// symmetric, one fp32 scale per output column, stored transposed ([in, out], the
// layout com.microsoft DynamicQuantizeMatMul takes as B) in ONE side file next to
// model.safetensors:
//
//   model.int8.bin
//     bytes 0..7    magic "IRINT8\0\0"
//     bytes 8..15   u64 LE: byte length n of the manifest
//     bytes 16..    manifest, UTF-8 JSON (Int8Manifest), then zero padding
//     from 4096·k   tensors: weights page-aligned, scales 64-byte aligned (absolute offsets in the manifest)
//
// The manifest names the model's source sha256 (config.json source.sha256), the
// weights file's size and the quantization scheme; a file whose manifest differs
// from the one the current model would produce, or whose size is wrong, is stale
// and rebuilt. The file is written tensor by tensor to a temp sibling and renamed
// into place (never the whole model in memory); biases, LayerNorms, embeddings,
// the patch conv and the reward head stay fp32 in model.safetensors.
import { randomBytes } from 'node:crypto';
import { open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageRewardConfig } from '../model/architecture.js';
import { WEIGHTS_FILE, readModelDirConfig } from '../model/model-dir.js';
import { openSafetensors, type SafetensorsFile } from '../model/safetensors.js';

export const INT8_WEIGHTS_FILE = 'model.int8.bin';
export const INT8_MAGIC = Buffer.from('IRINT8\0\0', 'latin1');
export const INT8_FORMAT_VERSION = 1;
export const INT8_SCHEME = 'int8 symmetric per output column (scale = max|w| / 127, zero point 0), weight stored [in, out]';
const DATA_ALIGN = 64;
const PAGE = 4096;
const HEADER_ALIGN = PAGE;

export class QuantizeError extends Error {
  override name = 'QuantizeError';
}

export interface Int8TensorEntry {
  /** The Linear's prefix in model.safetensors (its `.weight` is quantized). */
  linear: string;
  inDim: number;
  outDim: number;
  /** int8 [inDim, outDim]: absolute byte range in the side file. */
  weight: { offset: number; length: number };
  /** float32 [outDim]. */
  scale: { offset: number; length: number };
}

export interface Int8Manifest {
  format: 'imagereward-int8-weights';
  version: number;
  scheme: string;
  /** config.json source.sha256 of the model these weights come from. */
  source_sha256: string;
  /** Size of model.safetensors when the file was written. */
  weights_bytes: number;
  /** Total size of the side file. */
  file_bytes: number;
  tensors: Int8TensorEntry[];
}

/** [prefix, in, out] of every Linear the int8 mode quantizes, in graph order. */
export function quantizedLinears(config: ImageRewardConfig): Array<[string, number, number]> {
  const out: Array<[string, number, number]> = [];
  const v = config.vision;
  const W = v.width;
  const M = Math.round(W * v.mlpRatio);
  for (let i = 0; i < v.layers; i++) {
    const b = `blip.visual_encoder.blocks.${i}.`;
    out.push([`${b}attn.qkv`, W, 3 * W], [`${b}attn.proj`, W, W], [`${b}mlp.fc1`, W, M], [`${b}mlp.fc2`, M, W]);
  }
  const t = config.text;
  const H = t.hidden;
  const E = t.encoderWidth;
  for (let i = 0; i < t.layers; i++) {
    const b = `blip.text_encoder.encoder.layer.${i}.`;
    for (const [kind, kv] of [['attention', H], ['crossattention', E]] as const) {
      out.push([`${b}${kind}.self.query`, H, H], [`${b}${kind}.self.key`, kv, H], [`${b}${kind}.self.value`, kv, H], [`${b}${kind}.output.dense`, H, H]);
    }
    out.push([`${b}intermediate.dense`, H, t.intermediate], [`${b}output.dense`, t.intermediate, H]);
  }
  return out;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** The manifest (and header bytes) the model would produce; offsets are deterministic. */
export function planInt8(config: ImageRewardConfig, sourceSha256: string, weightsBytes: number): { manifest: Int8Manifest; header: Buffer } {
  const linears = quantizedLinears(config);
  // The data start depends on the manifest's length, which depends on the offsets: iterate until stable.
  let dataStart = HEADER_ALIGN;
  for (;;) {
    let pos = dataStart;
    const tensors: Int8TensorEntry[] = linears.map(([linear, inDim, outDim]) => {
      // Weights start on a page (ORT memory-maps page-aligned external data on CPU).
      pos = alignUp(pos, PAGE);
      const weight = { offset: pos, length: inDim * outDim };
      pos = alignUp(pos + weight.length, DATA_ALIGN);
      const scale = { offset: pos, length: outDim * 4 };
      pos = alignUp(pos + scale.length, DATA_ALIGN);
      return { linear, inDim, outDim, weight, scale };
    });
    const manifest: Int8Manifest = {
      format: 'imagereward-int8-weights',
      version: INT8_FORMAT_VERSION,
      scheme: INT8_SCHEME,
      source_sha256: sourceSha256,
      weights_bytes: weightsBytes,
      file_bytes: pos,
      tensors,
    };
    const json = Buffer.from(JSON.stringify(manifest), 'utf8');
    const need = alignUp(16 + json.length, HEADER_ALIGN);
    if (need !== dataStart) {
      dataStart = need;
      continue;
    }
    const header = Buffer.alloc(dataStart);
    INT8_MAGIC.copy(header, 0);
    header.writeBigUInt64LE(BigInt(json.length), 8);
    json.copy(header, 16);
    return { manifest, header };
  }
}

/**
 * Quantizes W [out, in] (PyTorch Linear layout, row-major) to q [in, out] int8 and
 * scale [out]: scale[o] = max_i |W[o,i]| / 127 (1 for an all-zero row), q = round(W / scale).
 */
export function quantizeLinearWeight(w: Float32Array, inDim: number, outDim: number): { q: Int8Array; scale: Float32Array } {
  if (w.length !== inDim * outDim) throw new QuantizeError(`weight holds ${w.length} floats, expected ${outDim}x${inDim}`);
  const q = new Int8Array(inDim * outDim);
  const scale = new Float32Array(outDim);
  for (let o = 0; o < outDim; o++) {
    const row = o * inDim;
    let amax = 0;
    for (let i = 0; i < inDim; i++) {
      const a = Math.abs(w[row + i]!);
      if (a > amax) amax = a;
    }
    const s = amax > 0 ? Math.fround(amax / 127) : 1;
    scale[o] = s;
    const inv = 1 / s;
    for (let i = 0; i < inDim; i++) {
      let v = Math.round(w[row + i]! * inv);
      if (v > 127) v = 127;
      else if (v < -127) v = -127;
      q[i * outDim + o] = v;
    }
  }
  return { q, scale };
}

/** Reads the manifest of an existing side file, or undefined when it is missing or unreadable. */
export async function readInt8Header(path: string): Promise<{ header: Buffer; size: number } | undefined> {
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return undefined;
  try {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(16);
    if ((await fh.read(head, 0, 16, 0)).bytesRead !== 16 || !head.subarray(0, 8).equals(INT8_MAGIC)) return undefined;
    const n = Number(head.readBigUInt64LE(8));
    if (n > size - 16 || n > 64 << 20) return undefined;
    const len = alignUp(16 + n, HEADER_ALIGN);
    if (len > size) return undefined;
    const header = Buffer.alloc(len);
    if ((await fh.read(header, 0, len, 0)).bytesRead !== len) return undefined;
    return { header, size };
  } finally {
    await fh.close();
  }
}

export function parseInt8Manifest(header: Buffer): Int8Manifest {
  const n = Number(header.readBigUInt64LE(8));
  return JSON.parse(header.subarray(16, 16 + n).toString('utf8')) as Int8Manifest;
}

async function writeQuantized(path: string, file: SafetensorsFile, manifest: Int8Manifest, header: Buffer): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'w');
  try {
    await fh.write(header, 0, header.length, 0);
    for (const t of manifest.tensors) {
      const name = `${t.linear}.weight`;
      const spec = file.get(name);
      if (spec.dtype !== 'F32' || spec.shape.length !== 2 || spec.shape[0] !== t.outDim || spec.shape[1] !== t.inDim) {
        throw new QuantizeError(`${name}: ${spec.dtype} [${spec.shape.join(',')}], expected F32 [${t.outDim},${t.inDim}]`);
      }
      let bytes = await file.read(name);
      if (bytes.byteOffset % 4 !== 0) bytes = Buffer.from(bytes);
      const w = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
      const { q, scale } = quantizeLinearWeight(w, t.inDim, t.outDim);
      await fh.write(new Uint8Array(q.buffer, q.byteOffset, q.byteLength), 0, q.byteLength, t.weight.offset);
      await fh.write(new Uint8Array(scale.buffer, scale.byteOffset, scale.byteLength), 0, scale.byteLength, t.scale.offset);
    }
    await fh.truncate(manifest.file_bytes);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}

export interface EnsuredInt8 {
  path: string;
  manifest: Int8Manifest;
  /** false when an up-to-date side file was already there. */
  written: boolean;
}

/**
 * Makes sure `modelDir`/model.int8.bin holds the int8 weights of the model in
 * `modelDir`: kept when its manifest and size match what this model would produce,
 * else (missing, other source sha256, other format version, truncated) rewritten.
 */
export async function ensureInt8Weights(modelDir: string, file?: SafetensorsFile): Promise<EnsuredInt8> {
  const dirConfig = await readModelDirConfig(modelDir);
  const weightsPath = join(modelDir, WEIGHTS_FILE);
  const weightsBytes = (await stat(weightsPath)).size;
  const { manifest, header } = planInt8(dirConfig.config, dirConfig.source.sha256, weightsBytes);
  const path = join(modelDir, INT8_WEIGHTS_FILE);
  const existing = await readInt8Header(path);
  if (existing && existing.size === manifest.file_bytes && existing.header.equals(header)) return { path, manifest, written: false };
  const st = file ?? (await openSafetensors(weightsPath));
  try {
    await writeQuantized(path, st, manifest, header);
  } finally {
    if (!file) await st.close();
  }
  return { path, manifest, written: true };
}
