// End to end, the way a user runs it from a clean clone: a torch-written
// checkpoint at upstream's input sizes (tiny224.pt: 224-px images, 197 image
// tokens, the real vocabulary, tiny widths) → `imagereward convert` → `imagereward
// score` on image files (WebP, JPEG, PNG, GIF, RGBA PNG) with real prompts,
// through the real binary, the real tokenizer, real preprocessing and ONNX Runtime.
//
// Expected rewards: test/fixtures/model/tiny224-e2e.json, computed by the
// independent PyTorch reference over Pillow + torchvision preprocessing and the
// slow-Python tokenizer restatement (regenerate with
// /usr/bin/python3 test/fixtures/checkpoint/generate.py && /usr/bin/python3 test/fixtures/model/generate.py).
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { readModelDirConfig } from '../../gpu-service/model/model-dir.js';
import { createScorer } from '../../gpu-service/scorer/scorer.js';
import { loadTokenizer } from '../../gpu-service/tokenizer.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'imagereward.js');
const DIST = join(ROOT, 'dist', 'gpu-service', 'cli', 'main.js');
const CHECKPOINT = join(ROOT, 'test', 'fixtures', 'checkpoint', 'tiny224.pt');

interface E2eFixture {
  checkpointSha256: string;
  config: ImageRewardConfig;
  images: string[];
  cases: { prompt: string; input_ids: number[]; rewards: number[]; rewards_f64: number[]; ranking: number[] }[];
}
const fixture = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'model', 'tiny224-e2e.json'), 'utf8')) as E2eFixture;
const images = fixture.images.map((p) => join(ROOT, p));
/** The bar for fp32 scores; measured agreement is ~1e-6. */
const TOLERANCE = 1e-4;

const run = promisify(execFile);
async function cli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { encoding: 'utf8', env, maxBuffer: 1 << 24 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let work: string;
let configFile: string;
let modelDir: string;
beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} missing: run \`npm run build\` (npm test does)`);
  work = await mkdtemp(join(tmpdir(), 'ir-e2e-'));
  configFile = join(work, 'tiny224-config.json');
  await writeFile(configFile, JSON.stringify(fixture.config));
  modelDir = join(work, 'model');
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('convert → score on image files (tiny224.pt, real tokenizer and preprocessing)', () => {
  it('the fixture is meaningful: rewards spread out and rankings differ between prompts', () => {
    for (const c of fixture.cases) {
      expect(Math.max(...c.rewards) - Math.min(...c.rewards)).toBeGreaterThan(0.3);
      expect(Math.max(...c.rewards.map((r, i) => Math.abs(r - (c.rewards_f64[i] ?? NaN))))).toBeLessThan(1e-5);
    }
    expect(new Set(fixture.cases.map((c) => c.ranking.join())).size).toBeGreaterThan(1);
  });

  it('our tokenizer gives the reference ids for every prompt', async () => {
    const tok = await loadTokenizer();
    for (const c of fixture.cases) expect(tok.encode(c.prompt, 35).input_ids, c.prompt).toEqual(c.input_ids);
  });

  it('`imagereward convert` writes the model directory', async () => {
    const r = await cli(['convert', CHECKPOINT, '--out', modelDir, '--config', configFile]);
    expect(r.stderr).toMatch(/writing/);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(modelDir);
    const cfg = await readModelDirConfig(modelDir);
    expect(cfg.source.sha256).toBe(fixture.checkpointSha256);
    expect(cfg.model_id).toBe('tiny224');
  });

  it.each(fixture.cases.map((c, i) => [i, c] as const))('`imagereward score --json` matches the reference (prompt %i)', async (_i, c) => {
    const r = await cli(['score', '--model', modelDir, '--prompt', c.prompt, '--json', '--backend', 'ort', '--threads', '1', ...images]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { model: string; model_dir: string; backend: string; images: string[]; rewards: number[]; ranking: number[] };
    expect(out.model).toBe('tiny224');
    expect(out.backend).toBe('ort');
    expect(out.model_dir).toBe(modelDir);
    expect(out.images).toEqual(images);
    expect(out.rewards).toHaveLength(c.rewards.length);
    out.rewards.forEach((r, i) => expect(Math.abs(r - (c.rewards[i] as number)), `${c.prompt} / ${images[i]}`).toBeLessThanOrEqual(TOLERANCE));
    expect(out.ranking).toEqual(c.ranking);
  });

  it('plain output: one "<reward>  <path>" line per image, input order', async () => {
    const c = fixture.cases[0]!;
    const r = await cli(['score', '--model', modelDir, '--backend', 'ort', '--prompt', c.prompt, ...images]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(images.length);
    lines.forEach((line, i) => {
      const [reward, path] = line.split('  ');
      expect(path).toBe(images[i]);
      expect(Math.abs(Number(reward) - (c.rewards[i] as number))).toBeLessThanOrEqual(1e-6 + 5e-7);
    });
  });

  it('the library scores a .pt directly, converting it once into <name>.model beside it', async () => {
    const pt = join(work, 'tiny224.pt');
    await copyFile(CHECKPOINT, pt);
    const c = fixture.cases[1]!;
    const env = process.env.IMAGEREWARD_HOME;
    delete process.env.IMAGEREWARD_HOME;
    try {
      for (let round = 0; round < 2; round++) {
        const scorer = await createScorer({ model: pt, config: fixture.config, backend: 'ort', ort: { intraOpNumThreads: 1 } });
        try {
          expect(scorer.modelDir).toBe(join(work, 'tiny224.model'));
          const rewards = await scorer.score(c.prompt, images);
          rewards.forEach((r, i) => expect(Math.abs(r - (c.rewards[i] as number))).toBeLessThanOrEqual(TOLERANCE));
        } finally {
          await scorer.dispose();
        }
      }
    } finally {
      if (env !== undefined) process.env.IMAGEREWARD_HOME = env;
    }
  });

  it('the library gives the same rewards for paths and for bytes, batched and one at a time', async () => {
    const scorer = await createScorer({ model: modelDir, backend: 'ort', ort: { intraOpNumThreads: 1 } });
    try {
      expect(scorer.modelId).toBe('tiny224');
      for (const c of fixture.cases) {
        const fromPaths = await scorer.rank(c.prompt, images);
        const fromBytes = await scorer.score(c.prompt, await Promise.all(images.map((p) => readFile(p))));
        expect(fromBytes).toEqual(fromPaths.rewards);
        expect(fromPaths.ranking).toEqual(c.ranking);
        for (let i = 0; i < images.length; i++) {
          const [alone] = await scorer.score(c.prompt, [images[i]!]);
          expect(Math.abs((alone as number) - (c.rewards[i] as number))).toBeLessThanOrEqual(TOLERANCE);
        }
      }
    } finally {
      await scorer.dispose();
    }
  });

  it('a bad image among good ones fails the call with its code and path (exit 1)', async () => {
    const bad = join(work, 'broken.png');
    // A real PNG cut short: right signature, missing data.
    await writeFile(bad, (await readFile(images[2]!)).subarray(0, 200));
    const r = await cli(['score', '--model', modelDir, '--prompt', 'a cat', images[0]!, bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error image_decode_failed: .*broken\.png/);
    expect(r.stdout).toBe('');
  });
});
