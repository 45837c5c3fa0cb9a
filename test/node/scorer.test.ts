// The scorer (gpu-service/scorer): OrtBackend in a worker thread on the tiny
// checkpoint against the PyTorch reference in test/fixtures/model/tiny-io.json,
// rank semantics, createScorer, and the `imagereward score` CLI.
import { copyFileSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint } from '../../gpu-service/model/convert.js';
import { TEXT_ONNX_FILE, VISION_ONNX_FILE } from '../../gpu-service/onnx/imagereward-graph.js';
import { OrtBackend } from '../../gpu-service/scorer/ort-backend.js';
import { normalizeRgb } from '../../gpu-service/preprocess/index.js';
import { rankRewards } from '../../contracts/api/ranking.js';
import { ScorerError, createScorer, modelDirFor } from '../../gpu-service/scorer/scorer.js';
import { scoreCommand } from '../../gpu-service/cli/score.js';
import { CliError, type Io } from '../../gpu-service/cli/io.js';
import { ROOT, TINY, TINY_CONFIG, f32, maxAbsDiff, tinyIo, type TinyCase as Case } from '../support/tiny-model.js';

const fixture = tinyIo;
const batch = fixture.batch;
const B = batch.input_ids.length;

/** A fresh Float32Array on its own buffer (the backend transfers, i.e. detaches, its inputs). */
function pixels(c: Case = batch): Float32Array {
  return f32(c.pixel_values);
}
function i64(rows: number[][]): BigInt64Array {
  return BigInt64Array.from(rows.flat(), (v) => BigInt(v));
}

let work: string;
let modelDir: string;
let backend: OrtBackend;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ir-scorer-'));
  modelDir = join(work, 'model');
  await convertCheckpoint({ checkpoint: TINY, out: modelDir, config: TINY_CONFIG });
  backend = await OrtBackend.load(modelDir, { intraOpNumThreads: 1 });
}, 120_000);

afterAll(async () => {
  await backend?.dispose();
  await rm(work, { recursive: true, force: true });
});

describe('OrtBackend (worker thread, tiny checkpoint)', () => {
  it('builds the missing graphs on load and reports the model geometry', () => {
    const files = readdirSync(modelDir);
    expect(files).toContain(VISION_ONNX_FILE);
    expect(files).toContain(TEXT_ONNX_FILE);
    expect(backend.imageSize).toBe(TINY_CONFIG.vision.image);
    expect(backend.textLength).toBe(35);
    expect(backend.embedWidth).toBe(TINY_CONFIG.vision.width);
    expect(backend.embedTokens).toBe((TINY_CONFIG.vision.image / TINY_CONFIG.vision.patch) ** 2 + 1);
  });

  it('matches the PyTorch rewards on the B=3 batch within 1e-6', async () => {
    const px = pixels();
    const embeds = await backend.encodeImages(px, B);
    expect(px.buffer.byteLength).toBe(0); // transferred, not copied
    expect(embeds.length).toBe(B * backend.embedTokens * backend.embedWidth);
    const { reward, raw } = await backend.scoreText(i64(batch.input_ids), i64(batch.attention_mask), embeds, B);
    expect(maxAbsDiff(reward, batch.reward)).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(raw, batch.raw)).toBeLessThanOrEqual(1e-6);
  });

  it('encodeImagesRgb: ToTensor + Normalize in the worker, embeds bit-identical to encodeImages of the normalized pixels', async () => {
    const S = backend.imageSize;
    const rgb = Uint8Array.from({ length: 2 * S * S * 3 }, (_, i) => (i * 2654435761) >>> 24);
    const viaRgb = await backend.encodeImagesRgb(rgb.slice(), 2);
    const viaF32 = await backend.encodeImages(normalizeRgb(rgb, 2, S, 'reference'), 2);
    expect(viaRgb.length).toBe(2 * backend.embedTokens * backend.embedWidth);
    expect(Buffer.from(viaRgb.buffer).equals(Buffer.from(viaF32.buffer))).toBe(true);
    // a wrong length is a rejection that says what was expected; the worker keeps working
    await expect(backend.encodeImagesRgb(new Uint8Array(S * S * 3 - 1), 1)).rejects.toThrow(/rgb must hold 1 x/);
    expect((await backend.encodeImagesRgb(rgb.slice(0, S * S * 3), 1)).length).toBe(backend.embedTokens * backend.embedWidth);
  });

  it('copies (does not detach) a view into a larger buffer', async () => {
    const px = pixels();
    const big = new Float32Array(px.length + 8);
    big.set(px, 4);
    const view = big.subarray(4, 4 + px.length);
    const embeds = await backend.encodeImages(view, B);
    expect(big.buffer.byteLength).toBe(big.length * 4);
    const { reward } = await backend.scoreText(i64(batch.input_ids), i64(batch.attention_mask), embeds, B);
    expect(maxAbsDiff(reward, batch.reward)).toBeLessThanOrEqual(1e-6);
  });

  it('keeps the event loop responsive during a forward', async () => {
    // A bigger batch (the fixture repeated) so the forward takes a while.
    const reps = 1024;
    const one = pixels();
    const px = new Float32Array(one.length * reps);
    for (let r = 0; r < reps; r++) px.set(one, r * one.length);
    let immediates = 0;
    let timers = 0;
    let done = false;
    const spinImmediate = (): void => {
      if (done) return;
      immediates++;
      setImmediate(spinImmediate);
    };
    const interval = setInterval(() => timers++, 1);
    setImmediate(spinImmediate);
    const t0 = performance.now();
    const embeds = await backend.encodeImages(px, B * reps);
    const ms = performance.now() - t0;
    done = true;
    clearInterval(interval);
    expect(embeds.length).toBe(B * reps * backend.embedTokens * backend.embedWidth);
    // The main thread kept turning while the worker computed.
    console.log(`forward of B=${B * reps} (32x32) took ${ms.toFixed(1)} ms; meanwhile ${immediates} setImmediate turns, ${timers} 1 ms timer ticks`);
    expect(immediates).toBeGreaterThan(1);
    if (ms > 20) expect(timers).toBeGreaterThan(0);
  });

  it('turns errors inside the worker into rejections and keeps working', async () => {
    await expect(backend.encodeImages(new Float32Array(10), 1)).rejects.toThrow(/pixels must hold 1x3x32x32/);
    await expect(backend.scoreText(new BigInt64Array(35), new BigInt64Array(35), new Float32Array(3), 1)).rejects.toThrow(/image embeds must hold/);
    const embeds = await backend.encodeImages(pixels(), B);
    const { reward } = await backend.scoreText(i64(batch.input_ids), i64(batch.attention_mask), embeds, B);
    expect(maxAbsDiff(reward, batch.reward)).toBeLessThanOrEqual(1e-6);
  });

  it('rejects pending calls when the worker dies', async () => {
    const b = await OrtBackend.load(modelDir, { intraOpNumThreads: 1 });
    // The worker exits (as a crash would) before it reaches the queued encode.
    // (Terminating it mid-run instead can abort the whole process inside
    // onnxruntime-node; see the 'exit' op in protocol.ts.)
    (b as unknown as { worker: { postMessage(m: unknown): void } }).worker.postMessage({ id: -1, op: 'exit', code: 70 });
    const pending = b.encodeImages(pixels(), B);
    await expect(pending).rejects.toThrow(/ORT worker exited \(code 70\)/);
    await expect(b.encodeImages(pixels(), B)).rejects.toThrow(/ORT worker exited/);
    await b.dispose();
  });

  it('dispose releases the worker; later calls reject; dispose is idempotent', async () => {
    const b = await OrtBackend.load(modelDir, { intraOpNumThreads: 1 });
    const embeds = await b.encodeImages(pixels(), B);
    await b.dispose();
    await b.dispose();
    await expect(b.encodeImages(pixels(), B)).rejects.toThrow(/disposed/);
    await expect(b.scoreText(i64(batch.input_ids), i64(batch.attention_mask), embeds, B)).rejects.toThrow(/disposed/);
  });

  it('fails load with a clear message for a directory that is not a model', async () => {
    await expect(OrtBackend.load(join(work, 'nope'))).rejects.toThrow(/cannot read .*config\.json/);
  });
});

describe('rankRewards (upstream inference_rank semantics)', () => {
  it('gives each image its 1-based place by descending reward', () => {
    expect(rankRewards([0.1, 0.5, 0.3])).toEqual([3, 1, 2]);
    expect(rankRewards([-2, -1, 0, 1])).toEqual([4, 3, 2, 1]);
    expect(rankRewards([7])).toEqual([1]);
    expect(rankRewards([])).toEqual([]);
    expect(rankRewards(Float32Array.from([0.25, -0.5]))).toEqual([1, 2]);
  });

  it('breaks ties by index order (earlier image first)', () => {
    expect(rankRewards([1, 1, 0])).toEqual([1, 2, 3]);
    expect(rankRewards([0, 1, 1])).toEqual([3, 1, 2]);
    expect(rankRewards([0.5, 0.5, 0.5])).toEqual([1, 2, 3]);
    expect(rankRewards([2, 3, 2, 3])).toEqual([3, 1, 4, 2]);
  });

  it('places NaN last, after -Infinity', () => {
    expect(rankRewards([Number.NaN, 0, -Infinity])).toEqual([3, 1, 2]);
  });
});

describe('createScorer', () => {
  it('scores tensors of a model directory in one batch', async () => {
    const scorer = await createScorer({ model: modelDir, backend: 'ort', ort: { intraOpNumThreads: 1 } });
    try {
      expect(scorer.modelDir).toBe(modelDir);
      const { reward } = await scorer.scoreTensors(pixels(), i64(batch.input_ids), i64(batch.attention_mask));
      expect(maxAbsDiff(reward, batch.reward)).toBeLessThanOrEqual(1e-6);
      // Image files are preprocessed at 224x224 only: the 32x32 tiny model says so.
      await expect(scorer.score('a cat', [new Uint8Array([1, 2, 3])])).rejects.toMatchObject({ code: 'image_size_unsupported' });
      await expect(scorer.rank('a cat', [])).rejects.toMatchObject({ code: 'no_images' });
    } finally {
      await scorer.dispose();
    }
    await expect(scorer.scoreTensors(pixels(), i64(batch.input_ids), i64(batch.attention_mask))).rejects.toThrow(/disposed/);
  });

  it('converts a checkpoint path once into <name>.model beside it', async () => {
    const dir = join(work, 'ckpt');
    await mkdir(dir);
    const pt = join(dir, 'tiny.pt');
    copyFileSync(TINY, pt);
    const env = { ...process.env };
    delete env.IMAGEREWARD_HOME;
    expect(modelDirFor(pt, env)).toBe(join(dir, 'tiny.model'));
    expect(modelDirFor(pt, { IMAGEREWARD_HOME: '/h' })).toMatch(new RegExp(`^/h/models/tiny-[0-9a-f]{8}$`));
    // Same file name, other folder: another directory.
    expect(modelDirFor(join(work, 'tiny.pt'), { IMAGEREWARD_HOME: '/h' })).not.toBe(modelDirFor(pt, { IMAGEREWARD_HOME: '/h' }));
    const saved = process.env.IMAGEREWARD_HOME;
    delete process.env.IMAGEREWARD_HOME;
    try {
      const scorer = await createScorer({ model: pt, config: TINY_CONFIG, backend: 'ort', ort: { intraOpNumThreads: 1 } });
      try {
        expect(scorer.modelDir).toBe(join(dir, 'tiny.model'));
        const { reward } = await scorer.scoreTensors(pixels(), i64(batch.input_ids), i64(batch.attention_mask));
        expect(maxAbsDiff(reward, batch.reward)).toBeLessThanOrEqual(1e-6);
      } finally {
        await scorer.dispose();
      }
    } finally {
      if (saved !== undefined) process.env.IMAGEREWARD_HOME = saved;
    }
  });

  it('says how to get a model when there is none', async () => {
    const missing = createScorer({ model: join(work, 'missing') });
    await expect(missing).rejects.toBeInstanceOf(ScorerError);
    await expect(missing).rejects.toThrow(/imagereward fetch-model/);
    await mkdir(join(work, 'empty'));
    await expect(createScorer({ model: join(work, 'empty') })).rejects.toThrow(/imagereward convert/);
  });
});

describe('imagereward score (CLI)', () => {
  async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const io: Io = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) };
    try {
      return { code: await scoreCommand(argv, io, { IMAGEREWARD_HOME: join(work, 'empty-home') }), stdout, stderr };
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      return { code: err.exitCode, stdout, stderr: stderr + err.message };
    }
  }

  it('--help prints the usage and exits 0', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/imagereward score \[--model/);
    expect(r.stdout).toMatch(/--json/);
  });

  it('usage errors exit 2', async () => {
    expect((await run([])).code).toBe(2);
    const noModel = await run(['--prompt', 'x', 'a.png']);
    expect(noModel.code).toBe(1);
    expect(noModel.stderr).toMatch(/no model given: pass --model .*IMAGEREWARD_MODEL.*imagereward fetch-model/);
    expect((await run(['--model', modelDir, 'a.png'])).stderr).toMatch(/--prompt/);
    const noImages = await run(['--model', modelDir, '--prompt', 'x']);
    expect(noImages.code).toBe(2);
    expect(noImages.stderr).toMatch(/at least one image/);
    expect((await run(['--model', modelDir, '--prompt', 'x', '--threads', '0', 'a.png'])).code).toBe(2);
    expect((await run(['--model', modelDir, '--bogus'])).code).toBe(2);
  });

  it('a missing model exits 1 and points at fetch-model / convert', async () => {
    const r = await run(['--model', join(work, 'missing'), '--prompt', 'x', 'a.png']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/imagereward fetch-model/);
    const empty = await run(['--model', join(work, 'empty2-not-there'), '--prompt', 'x', 'a.png']);
    expect(empty.code).toBe(1);
  });

  it('the 32x32 tiny model cannot score image files: exit 1 with the reason', async () => {
    const r = await run(['--model', modelDir, '--prompt', 'x', join(work, 'a.png')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/takes 32x32 images/);
  });
});

describe('OrtBackend dispose with runs in flight', () => {
  it('waits for the runs to finish (they resolve), then releases the sessions', async () => {
    const b = await OrtBackend.load(modelDir, { intraOpNumThreads: 1 });
    const runs = Array.from({ length: 4 }, () => b.encodeImages(pixels(), B));
    const disposed = b.dispose();
    const results = await Promise.allSettled(runs);
    await disposed;
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    await expect(b.encodeImages(pixels(), B)).rejects.toThrow(/disposed/);
  });
});
