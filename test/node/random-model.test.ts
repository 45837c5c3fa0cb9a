// Random-weight model directories (gpu-service/model/random-model.ts) and the
// `imagereward demo-model` command: determinism, layout, scoring end to end.
// Tiny models only (~4 MB); the full-size one is exercised by `npm run bench`.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requiredTensors, validateCheckpoint } from '../../gpu-service/model/architecture.js';
import { readModelDirConfig } from '../../gpu-service/model/model-dir.js';
import {
  RANDOM_MODEL_ID,
  RandomModelError,
  TINY_RANDOM_CONFIG,
  fillNormal,
  writeRandomModel,
  type RandomModelConfig,
} from '../../gpu-service/model/random-model.js';
import { openSafetensors } from '../../gpu-service/model/safetensors.js';
import { createScorer } from '../../gpu-service/scorer/scorer.js';
import { main } from '../../gpu-service/cli/main.js';
import type { Io } from '../../gpu-service/cli/io.js';
import { ROOT } from '../support/tiny-model.js';

const IMAGES = ['rgb_900x700.jpg', 'rgb_300x301.png', 'rgba_lossless_260x250.webp', 'cmyk_240x230.jpg'].map((f) =>
  join(ROOT, 'test/fixtures/preprocess/images', f),
);

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ir-random-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

describe('fillNormal', () => {
  it('is deterministic per (seed, name) and has the requested moments', () => {
    const a = new Float32Array(200_000);
    const b = new Float32Array(200_000);
    fillNormal(a, 7, 'x.weight', 0.02);
    fillNormal(b, 7, 'x.weight', 0.02);
    expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer))).toBe(0);
    fillNormal(b, 7, 'y.weight', 0.02);
    expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer))).not.toBe(0);
    fillNormal(b, 8, 'x.weight', 0.02);
    expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer))).not.toBe(0);
    let sum = 0;
    let sq = 0;
    for (const v of a) {
      sum += v;
      sq += v * v;
    }
    const mean = sum / a.length;
    expect(Math.abs(mean)).toBeLessThan(2e-4);
    expect(Math.sqrt(sq / a.length - mean * mean)).toBeCloseTo(0.02, 3);
    // Pinned values: the same bytes on every machine (integer PRNG, no libm).
    const c = new Float32Array(3);
    fillNormal(c, 0, 'pin', 1);
    expect(Array.from(c)).toEqual([2.4385507106781006, 0.00021143197955098003, 1.4232280254364014]);
  });
});

describe('writeRandomModel (tiny)', () => {
  let dir: string;
  let sha: string;
  beforeAll(async () => {
    dir = join(work, 'tiny-0');
    const r = await writeRandomModel({ out: dir, config: TINY_RANDOM_CONFIG, seed: 0 });
    expect(r.written).toBe(true);
    sha = r.sha256;
  });

  it('writes exactly the tensors the forward pass needs, with their shapes', async () => {
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors', 'vocab.txt']);
    const f = await openSafetensors(join(dir, 'model.safetensors'));
    try {
      validateCheckpoint(f.tensors, TINY_RANDOM_CONFIG);
      expect(f.tensors.map((t) => t.name).sort()).toEqual(requiredTensors(TINY_RANDOM_CONFIG).map((t) => t.name).sort());
      expect(f.metadata.model_id).toBe(RANDOM_MODEL_ID);
      expect(f.metadata.seed).toBe('0');
      const ln = new Float32Array((await f.read('blip.visual_encoder.norm.weight')).buffer.slice(0));
      expect(Math.abs(ln.reduce((a, b) => a + b, 0) / ln.length - 1)).toBeLessThan(0.02);
    } finally {
      await f.close();
    }
  });

  it('records that it is random in a config.json readModelDirConfig accepts', async () => {
    const c = (await readModelDirConfig(dir)) as RandomModelConfig;
    expect(c.model_id).toBe('random-demo');
    expect(c.config).toEqual(TINY_RANDOM_CONFIG);
    expect(c.source.sha256).toBe(sha);
    expect(c.source.sha256).toBe(sha256(join(dir, 'model.safetensors')));
    expect(c.source.bytes).toBe(readFileSync(join(dir, 'model.safetensors')).length);
    expect(c.source.generated).toMatchObject({ by: 'imagereward demo-model', seed: 0 });
    expect(c.source.file).toMatch(/random weights .*not a trained ImageReward model/);
    expect(readFileSync(join(dir, 'vocab.txt'), 'utf8')).toBe(readFileSync(join(ROOT, 'contracts/tokenizer/vocab.txt'), 'utf8'));
  });

  it('is deterministic: same seed → same bytes, other seed → other bytes; same options are a no-op', async () => {
    const again = await writeRandomModel({ out: join(work, 'tiny-0b'), config: TINY_RANDOM_CONFIG, seed: 0 });
    expect(again.sha256).toBe(sha);
    expect(sha256(join(work, 'tiny-0b', 'model.safetensors'))).toBe(sha);
    const other = await writeRandomModel({ out: join(work, 'tiny-1'), config: TINY_RANDOM_CONFIG, seed: 1 });
    expect(other.sha256).not.toBe(sha);
    const noop = await writeRandomModel({ out: dir, config: TINY_RANDOM_CONFIG, seed: 0 });
    expect(noop).toMatchObject({ written: false, sha256: sha });
  });

  it('refuses to replace something else without force, and replaces it with force', async () => {
    await expect(writeRandomModel({ out: dir, config: TINY_RANDOM_CONFIG, seed: 2 })).rejects.toBeInstanceOf(RandomModelError);
    const file = join(work, 'a-file');
    await writeFile(file, 'x');
    await expect(writeRandomModel({ out: file, config: TINY_RANDOM_CONFIG })).rejects.toThrow(/not a directory/);
    await expect(writeRandomModel({ out: join(work, 'bad'), config: TINY_RANDOM_CONFIG, seed: -1 })).rejects.toThrow(/seed/);
    const forced = join(work, 'tiny-forced');
    await writeRandomModel({ out: forced, config: TINY_RANDOM_CONFIG, seed: 2 });
    const r = await writeRandomModel({ out: forced, config: TINY_RANDOM_CONFIG, seed: 3, force: true });
    expect(r.written).toBe(true);
    expect(((await readModelDirConfig(forced)) as RandomModelConfig).source.generated.seed).toBe(3);
    expect(readdirSync(work).filter((n) => n.includes('.tmp-') || n.includes('.old-'))).toEqual([]);
  });

  it('scores image files end to end (finite rewards that differ across images)', async () => {
    const scorer = await createScorer({ model: dir, ort: { intraOpNumThreads: 1 } });
    try {
      const rewards = await scorer.score('a painting of an ocean with clouds and birds', IMAGES);
      expect(rewards).toHaveLength(IMAGES.length);
      for (const r of rewards) expect(Number.isFinite(r)).toBe(true);
      expect(new Set(rewards.map((r) => r.toFixed(6))).size).toBe(IMAGES.length);
      const spread = Math.max(...rewards) - Math.min(...rewards);
      expect(spread).toBeGreaterThan(1e-3);
      // One image alone scores as it does in the batch.
      const [single] = await scorer.score('a painting of an ocean with clouds and birds', [IMAGES[0]!]);
      expect(Math.abs(single! - rewards[0]!)).toBeLessThan(1e-5);
    } finally {
      await scorer.dispose();
    }
  }, 60_000);
});

describe('imagereward demo-model (CLI)', () => {
  it('--help prints the usage', async () => {
    const r = await run(['demo-model', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/imagereward demo-model --out <dir>/);
    expect(r.stdout).toMatch(/RANDOM, UNTRAINED/);
  });

  it('usage errors exit 2', async () => {
    for (const argv of [
      ['demo-model'],
      ['demo-model', '--out', join(work, 'u'), '--size', 'huge'],
      ['demo-model', '--out', join(work, 'u'), '--seed', '-3'],
      ['demo-model', '--out', join(work, 'u'), '--seed', '1.5'],
      ['demo-model', '--out', join(work, 'u'), 'extra'],
      ['demo-model', '--bogus'],
    ]) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
    }
  });

  it('writes a tiny model, is a no-op the second time, and exits 1 on a different existing dir', async () => {
    const out = join(work, 'cli-tiny');
    const first = await run(['demo-model', '--out', out, '--seed', '5']);
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(`${out}\n`);
    expect(first.stderr).toMatch(/scores mean nothing/);
    const second = await run(['demo-model', '--out', out, '--seed', '5', '--size', 'tiny']);
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(/nothing to do/);
    const other = await run(['demo-model', '--out', out, '--seed', '6']);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/--force/);
  });
});
