// The tiny ImageReward fixture shared by the ONNX and scorer suites:
// test/fixtures/checkpoint/tiny.pt (torch-written, upstream key names) and the
// PyTorch reference outputs in test/fixtures/model/tiny-io.json
// (regenerate with /usr/bin/python3 test/fixtures/model/generate.py).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';

export const ROOT = join(import.meta.dirname, '../..');
export const TINY = join(ROOT, 'test/fixtures/checkpoint/tiny.pt');

export interface F32Json {
  dtype: string;
  shape: number[];
  base64: string;
}
export interface TinyCase {
  pixel_values: F32Json;
  input_ids: number[][];
  attention_mask: number[][];
  image_embeds: F32Json;
  text_hidden_cls: F32Json;
  raw: number[];
  reward: number[];
}
export interface TinyIo {
  config: ImageRewardConfig;
  batch: TinyCase;
  single: TinyCase & { fromBatchIndex: number };
}

export const tinyIo = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/model/tiny-io.json'), 'utf8')) as TinyIo;
export const TINY_CONFIG: ImageRewardConfig = { vision: tinyIo.config.vision, text: tinyIo.config.text, mlp: tinyIo.config.mlp };

/** A fixture tensor as a fresh Float32Array on its own buffer (safe to transfer). */
export function f32(t: F32Json): Float32Array {
  if (t.dtype !== 'F32') throw new Error(`expected an F32 fixture tensor, got ${t.dtype}`);
  const buf = Buffer.from(t.base64, 'base64');
  const out = new Float32Array(buf.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(i * 4);
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (out.length !== n) throw new Error(`fixture tensor has ${out.length} values, shape says ${n}`);
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst;
}
