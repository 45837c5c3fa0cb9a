// The opt-in int8 CPU mode (OrtBackendOptions.precision 'int8'): model.int8.bin
// (int8 weights per output column, streamed, with a manifest that detects a stale
// file), vision.int8.onnx / text.int8.onnx (DynamicQuantizeMatMul for every
// transformer Linear), and how far its rewards move from fp32 on the tiny224
// checkpoint (224-px images, the real vocabulary, tiny widths) with the cases of
// test/fixtures/model/tiny224-e2e.json. fp32 stays the default and is untouched.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { convertCheckpoint } from '../../gpu-service/model/convert.js';
import { WEIGHTS_FILE, readModelDirConfig } from '../../gpu-service/model/model-dir.js';
import {
  TEXT_INT8_ONNX_FILE,
  TEXT_ONNX_FILE,
  VISION_INT8_ONNX_FILE,
  VISION_ONNX_FILE,
  buildImageRewardGraphs,
} from '../../gpu-service/onnx/imagereward-graph.js';
import { INT8_WEIGHTS_FILE, ensureInt8Weights, planInt8, quantizeLinearWeight, quantizedLinears } from '../../gpu-service/onnx/quantize.js';
import { createScorer, rankRewards } from '../../gpu-service/scorer/scorer.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CHECKPOINT = join(ROOT, 'test', 'fixtures', 'checkpoint', 'tiny224.pt');

interface E2eFixture {
  config: ImageRewardConfig;
  images: string[];
  cases: { prompt: string; rewards: number[]; ranking: number[] }[];
}
const fixture = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'model', 'tiny224-e2e.json'), 'utf8')) as E2eFixture;
const images = fixture.images.map((p) => join(ROOT, p));
/** Sanity bound for int8 vs fp32 rewards (measured on this model: see the logged figure and docs/benchmarks.md). */
const INT8_BOUND = 0.05;

let work: string;
let modelDir: string;
const fp32: number[][] = [];
const int8: number[][] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ir-int8-'));
  modelDir = join(work, 'model');
  await convertCheckpoint({ checkpoint: CHECKPOINT, out: modelDir, config: fixture.config });
}, 120_000);
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('quantizeLinearWeight', () => {
  it('quantizes per output row of W [out,in], stores q transposed [in,out], symmetric', () => {
    const out = 3;
    const inn = 4;
    // rows: a generic one, an all-zero one, one with a single large value
    const w = Float32Array.from([0.5, -1, 0.25, 0.75, 0, 0, 0, 0, 0.001, 0, 0, 2]);
    const { q, scale } = quantizeLinearWeight(w, inn, out);
    expect(Array.from(scale)).toEqual([Math.fround(1 / 127), 1, Math.fround(2 / 127)]);
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < inn; i++) {
        const v = q[i * out + o]!;
        expect(Math.abs(v)).toBeLessThanOrEqual(127);
        expect(Math.abs(v * scale[o]! - w[o * inn + i]!)).toBeLessThanOrEqual(scale[o]! / 2 + 1e-7);
      }
    }
    expect(q[1 * out + 0]).toBe(-127); // W[0,1] = -1 = max |row 0|
    expect(q[3 * out + 2]).toBe(127);
  });
});

describe('int8 CPU mode on tiny224', () => {
  it('fp32 stays the default: vision.onnx / text.onnx, no int8 files, fixture rewards', async () => {
    const scorer = await createScorer({ model: modelDir, backend: 'ort', ort: { intraOpNumThreads: 1 } });
    try {
      for (const c of fixture.cases) fp32.push(await scorer.score(c.prompt, images));
    } finally {
      await scorer.dispose();
    }
    expect(existsSync(join(modelDir, VISION_ONNX_FILE)) && existsSync(join(modelDir, TEXT_ONNX_FILE))).toBe(true);
    for (const f of [INT8_WEIGHTS_FILE, VISION_INT8_ONNX_FILE, TEXT_INT8_ONNX_FILE]) expect(existsSync(join(modelDir, f))).toBe(false);
    fixture.cases.forEach((c, k) => c.rewards.forEach((r, i) => expect(Math.abs(fp32[k]![i]! - r)).toBeLessThanOrEqual(1e-4)));
  }, 120_000);

  it("precision 'int8' builds the side file and int8 graphs, rewards stay close to fp32 with the same ranking", async () => {
    const scorer = await createScorer({ model: modelDir, backend: 'ort', ort: { intraOpNumThreads: 1, precision: 'int8' } });
    try {
      for (const c of fixture.cases) int8.push(await scorer.score(c.prompt, images));
    } finally {
      await scorer.dispose();
    }
    for (const f of [INT8_WEIGHTS_FILE, VISION_INT8_ONNX_FILE, TEXT_INT8_ONNX_FILE]) expect(existsSync(join(modelDir, f))).toBe(true);
    // Every transformer Linear (4 per ViT block, 10 per BERT layer) is DynamicQuantizeMatMul; the head is not.
    const count = (file: string) => readFileSync(join(modelDir, file)).toString('latin1').split('DynamicQuantizeMatMul').length - 1;
    const c = fixture.config;
    expect(count(VISION_INT8_ONNX_FILE)).toBe(2 * 4 * c.vision.layers); // node op type + node name
    expect(count(TEXT_INT8_ONNX_FILE)).toBe(2 * 10 * c.text.layers);
    expect(quantizedLinears(c)).toHaveLength(4 * c.vision.layers + 10 * c.text.layers);

    let worst = 0;
    fixture.cases.forEach((cs, k) => {
      fp32[k]!.forEach((r, i) => (worst = Math.max(worst, Math.abs(int8[k]![i]! - r))));
      expect(rankRewards(int8[k]!)).toEqual(rankRewards(fp32[k]!));
      expect(rankRewards(fp32[k]!)).toEqual(cs.ranking);
    });
    console.log(`int8 vs fp32 on tiny224 (${fixture.cases.length} cases x ${images.length} images): max |Δreward| = ${worst.toExponential(3)}`);
    expect(worst).toBeGreaterThan(0); // it is really quantized
    expect(worst).toBeLessThanOrEqual(INT8_BOUND);
  }, 120_000);

  it('rebuilding is idempotent: nothing is rewritten', async () => {
    const before = (await stat(join(modelDir, INT8_WEIGHTS_FILE))).mtimeMs;
    const r = await buildImageRewardGraphs(modelDir, { precision: 'int8' });
    expect(r.written).toEqual({ vision: false, text: false });
    expect(r.int8Written).toBe(false);
    expect((await stat(join(modelDir, INT8_WEIGHTS_FILE))).mtimeMs).toBe(before);
    // and the fp32 graphs are untouched by int8 builds
    const f = await buildImageRewardGraphs(modelDir);
    expect(f.written).toEqual({ vision: false, text: false });
  }, 60_000);

  it('a stale or truncated side file is rebuilt on load, giving the same rewards', async () => {
    const path = join(modelDir, INT8_WEIGHTS_FILE);
    const good = await readFile(path);
    const dirConfig = await readModelDirConfig(modelDir);
    const weightsBytes = (await stat(join(modelDir, WEIGHTS_FILE))).size;
    // Same layout, but made from another source checkpoint: the manifest differs.
    const { header } = planInt8(dirConfig.config, 'f'.repeat(64), weightsBytes);
    expect(header.length).toBe(planInt8(dirConfig.config, dirConfig.source.sha256, weightsBytes).header.length);
    const stale = Buffer.from(good);
    header.copy(stale, 0);
    stale.fill(0, header.length); // garbage weights
    await writeFile(path, stale);
    const scorer = await createScorer({ model: modelDir, backend: 'ort', ort: { intraOpNumThreads: 1, precision: 'int8' } });
    try {
      expect(await scorer.score(fixture.cases[0]!.prompt, images)).toEqual(int8[0]);
    } finally {
      await scorer.dispose();
    }
    expect((await readFile(path)).equals(good)).toBe(true);

    // Truncated (an interrupted copy): detected by size.
    const fh = await open(path, 'r+');
    await fh.truncate(good.length - 100);
    await fh.close();
    const r = await ensureInt8Weights(modelDir);
    expect(r.written).toBe(true);
    expect((await readFile(path)).equals(good)).toBe(true);
  }, 120_000);
});
