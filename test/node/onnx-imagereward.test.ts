// ImageReward ONNX graphs (gpu-service/onnx/imagereward-graph.ts) run through
// onnxruntime-node (CPU) on the tiny checkpoint, against the PyTorch reference
// outputs in test/fixtures/model/tiny-io.json (see architecture.md).
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { convertCheckpoint } from '../../gpu-service/model/convert.js';
import { TEXT_ONNX_FILE, VISION_ONNX_FILE, buildImageRewardGraphs } from '../../gpu-service/onnx/imagereward-graph.js';
import { TINY, TINY_CONFIG, f32, maxAbsDiff, tinyIo, type TinyCase as Case } from '../support/tiny-model.js';

const io = tinyIo;

function int64Tensor(rows: number[][]): ort.Tensor {
  const flat = rows.flat();
  return new ort.Tensor('int64', BigInt64Array.from(flat, (v) => BigInt(v)), [rows.length, rows[0]?.length ?? 0]);
}

function out(r: ort.InferenceSession.OnnxValueMapType, name: string): Float32Array {
  const t = r[name];
  if (!t) throw new Error(`missing output ${name}`);
  return t.data as Float32Array;
}

const SESSION_OPTS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, graphOptimizationLevel: 'all' };

interface Result {
  imageEmbeds: Float32Array;
  textCls: Float32Array;
  raw: Float32Array;
  reward: Float32Array;
}

let work: string;
let modelDir: string;
let vision: ort.InferenceSession;
let text: ort.InferenceSession;
const diffs: Record<string, number> = {};

async function run(c: Case, mask = c.attention_mask): Promise<Result> {
  const pv = c.pixel_values;
  const v = await vision.run({ pixel_values: new ort.Tensor('float32', f32(pv), pv.shape) });
  const imageEmbeds = out(v, 'image_embeds');
  const embTensor = v.image_embeds as ort.Tensor;
  const t = await text.run({ input_ids: int64Tensor(c.input_ids), attention_mask: int64Tensor(mask), image_embeds: embTensor });
  return { imageEmbeds, textCls: out(t, 'text_cls'), raw: out(t, 'raw'), reward: out(t, 'reward') };
}

function checkCase(name: string, c: Case, r: Result): void {
  const B = c.input_ids.length;
  expect(r.imageEmbeds.length).toBe(f32(c.image_embeds).length);
  expect(r.textCls.length).toBe(B * TINY_CONFIG.text.hidden);
  expect(r.raw.length).toBe(B);
  expect(r.reward.length).toBe(B);
  const d = {
    image_embeds: maxAbsDiff(r.imageEmbeds, f32(c.image_embeds)),
    text_cls: maxAbsDiff(r.textCls, f32(c.text_hidden_cls)),
    raw: maxAbsDiff(r.raw, c.raw),
    reward: maxAbsDiff(r.reward, c.reward),
  };
  for (const [k, val] of Object.entries(d)) diffs[`${name}.${k}`] = val;
  expect(d.image_embeds).toBeLessThanOrEqual(1e-5);
  expect(d.text_cls).toBeLessThanOrEqual(1e-5);
  expect(d.raw).toBeLessThanOrEqual(1e-6);
  expect(d.reward).toBeLessThanOrEqual(1e-6);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ir-onnx-'));
  modelDir = join(work, 'model');
  await convertCheckpoint({ checkpoint: TINY, out: modelDir, config: TINY_CONFIG });
  const built = await buildImageRewardGraphs(modelDir);
  expect(built.written).toEqual({ vision: true, text: true });
  vision = await ort.InferenceSession.create(built.vision, SESSION_OPTS);
  text = await ort.InferenceSession.create(built.text, SESSION_OPTS);
}, 60_000);

afterAll(async () => {
  await vision?.release();
  await text?.release();
  if (Object.keys(diffs).length) console.log('onnx-imagereward max abs diffs', diffs);
  await rm(work, { recursive: true, force: true });
});

describe('ImageReward ONNX graphs (tiny checkpoint, onnxruntime-node CPU)', () => {
  it('declares the expected inputs and outputs', () => {
    expect(vision.inputNames).toEqual(['pixel_values']);
    expect(vision.outputNames).toEqual(['image_embeds']);
    expect(text.inputNames).toEqual(['input_ids', 'attention_mask', 'image_embeds']);
    expect(text.outputNames).toEqual(['reward', 'raw', 'text_cls']);
  });

  it('keeps the weights external (small .onnx files, no copies of model.safetensors)', async () => {
    const weights = (await stat(join(modelDir, 'model.safetensors'))).size;
    const v = (await stat(join(modelDir, VISION_ONNX_FILE))).size;
    const t = (await stat(join(modelDir, TEXT_ONNX_FILE))).size;
    // Graph structure only: far smaller than the weights they reference.
    expect(v + t).toBeLessThan(weights / 2);
    expect(readFileSync(join(modelDir, TEXT_ONNX_FILE)).includes('model.safetensors')).toBe(true);
  });

  it('matches the PyTorch reference on the batch (B=3)', async () => {
    checkCase('batch', io.batch, await run(io.batch));
  });

  it('matches the PyTorch reference on the single item (B=1)', async () => {
    checkCase('single', io.single, await run(io.single));
  });

  it('is batch independent: B=1 equals the corresponding batch row', async () => {
    const b = await run(io.batch);
    const s = await run(io.single);
    const i = io.single.fromBatchIndex;
    const H = TINY_CONFIG.text.hidden;
    const per = s.imageEmbeds.length;
    const d = {
      image_embeds: maxAbsDiff(s.imageEmbeds, b.imageEmbeds.subarray(i * per, (i + 1) * per)),
      text_cls: maxAbsDiff(s.textCls, b.textCls.subarray(i * H, (i + 1) * H)),
      reward: Math.abs((s.reward[0] as number) - (b.reward[i] as number)),
    };
    for (const [k, val] of Object.entries(d)) diffs[`batchIndependence.${k}`] = val;
    expect(d.image_embeds).toBeLessThanOrEqual(1e-6);
    expect(d.text_cls).toBeLessThanOrEqual(1e-6);
    expect(d.reward).toBeLessThanOrEqual(1e-7);
  });

  it('is sensitive to the attention mask and ignores padded token ids', async () => {
    // A wrong mask (all ones: padding attended) must move text_cls well beyond the tolerance.
    const allOnes = io.single.attention_mask.map((row) => row.map(() => 1));
    const wrong = await run(io.single, allOnes);
    expect(maxAbsDiff(wrong.textCls, f32(io.single.text_hidden_cls))).toBeGreaterThan(1e-3);
    // Changing ids under mask 0 changes nothing the CLS row can see (beyond ~1e-4·e^-10000).
    const ids = io.single.input_ids.map((row, r) => row.map((id, j) => ((io.single.attention_mask[r] as number[])[j] === 0 ? 7 : id)));
    const padded = await run({ ...io.single, input_ids: ids });
    const base = await run(io.single);
    expect(maxAbsDiff(padded.textCls, base.textCls)).toBeLessThanOrEqual(1e-7);
  });

  it('rebuilding is idempotent and leaves no temp files', async () => {
    const again = await buildImageRewardGraphs(modelDir);
    expect(again.written).toEqual({ vision: false, text: false });
    const files = (await readdir(modelDir)).sort();
    expect(files).toEqual(['config.json', 'model.safetensors', TEXT_ONNX_FILE, VISION_ONNX_FILE, 'vocab.txt'].sort());
  });

  it('builds for a newer opset (20) with the same results, and rejects opsets below 17', async () => {
    await expect(buildImageRewardGraphs(modelDir, { opset: 16 })).rejects.toThrow(/opset 16/);
    const built = await buildImageRewardGraphs(modelDir, { opset: 20 });
    expect(built.written).toEqual({ vision: true, text: true });
    await vision.release();
    await text.release();
    vision = await ort.InferenceSession.create(built.vision, SESSION_OPTS);
    text = await ort.InferenceSession.create(built.text, SESSION_OPTS);
    checkCase('opset20.batch', io.batch, await run(io.batch));
  });
});
