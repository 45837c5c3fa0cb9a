// The CUDA engine as the addon exposes it (native/src/engine_binding.cc over
// native/src/cuda/engine.h), on the machine the tests run on. CI has nvcc but no
// GPU and no cuBLAS: the engine must compile in (IMAGEREWARD_CUDA=ON in CI), its
// JS surface must validate arguments, and loading must fail with a typed error
// instead of crashing. The C++ tools built beside it are exercised on the CPU:
// model validation (weights.cc), and the per-op test driver's no-device exit.
// GPU-side behaviour is proven by native/scripts/gpu-check.sh on a lent GPU.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../native/index.js';
import { writeRandomModel, TINY_RANDOM_CONFIG } from '../../gpu-service/model/random-model.js';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';

const TOOLS = join(import.meta.dirname, '..', '..', 'native', 'build', 'tools');
const run = promisify(execFile);
const cudaBuilt = native?.buildInfo().cuda === true;
const mustBuild = process.env.IMAGEREWARD_CUDA === 'ON';
const why = cudaBuilt ? '' : ' — skipped: the addon was built without CUDA (IMAGEREWARD_CUDA=ON requires it)';

/** Smallest model the engine accepts: 64-wide heads, 224-px images, the real vocab. */
const HEAD64: ImageRewardConfig = {
  vision: { width: 64, layers: 1, heads: 1, patch: 16, image: 224, mlpRatio: 4 },
  text: { hidden: 64, layers: 1, heads: 1, intermediate: 128, vocab: 30524, maxPositions: 64, encoderWidth: 64 },
  mlp: [64, 32, 16, 8, 4, 1],
};

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ir-engine-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function tool(name: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(join(TOOLS, name), args, { encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('CUDA engine (no GPU here)', () => {
  it('is compiled in where CI requires it', () => {
    if (mustBuild) expect(cudaBuilt).toBe(true);
  });

  it.skipIf(!cudaBuilt)(`reports its build: sm_80 and sm_90, CUDA runtime, cuBLASLt by dlopen${why}`, () => {
    const b = native!.engine!.buildInfo();
    expect(b.archs.split(',')).toEqual(expect.arrayContaining(['80', '90']));
    expect(b.cudaRuntimeVersion).toBeGreaterThanOrEqual(12000);
    expect(b.cublasLt).toMatch(/dlopen/);
  });

  it.skipIf(!cudaBuilt)(`validates load options synchronously${why}`, () => {
    const engine = native!.engine!;
    expect(() => engine.load({} as never)).toThrow(TypeError);
    expect(() => engine.load({ modelDir: 'x', dtype: 'fp8' as never })).toThrow(/dtype/);
    expect(() => engine.load({ modelDir: 'x', maxBatch: 0 })).toThrow(RangeError);
    expect(() => engine.load({ modelDir: 'x', streams: 1.5 })).toThrow(RangeError);
  });

  it.skipIf(!cudaBuilt)(`load rejects with a typed code instead of crashing${why}`, async () => {
    const err = (await native!.engine!.load({ modelDir: join(work, 'missing') }).then(
      async (e) => {
        await e.dispose();
        return undefined;
      },
      (e: unknown) => e,
    )) as (Error & { code?: string }) | undefined;
    // With a GPU the missing model is the problem; without one, the device.
    expect(err).toBeInstanceOf(Error);
    expect(['ENGINE_NO_DEVICE', 'ENGINE_BAD_MODEL', 'ENGINE_CUBLAS_MISSING']).toContain(err!.code);
  });

  // Where CI requires the CUDA build (IMAGEREWARD_CUDA=ON), a missing tool fails instead of skipping.
  const hasTool = (name: string): boolean => mustBuild || existsSync(join(TOOLS, name));

  it.skipIf(!hasTool('ir_engine_check'))('ir_engine_check --check-model validates weights on the CPU (head dim 64 ok, 16 refused)', async () => {
    const good = (await writeRandomModel({ out: join(work, 'head64'), config: HEAD64, seed: 3 })).dir;
    const ok = await tool('ir_engine_check', ['--model', good, '--check-model']);
    expect(ok.stderr + ok.stdout).toMatch(/all needed present/);
    expect(ok.code).toBe(0);
    const tiny = (await writeRandomModel({ out: join(work, 'tiny'), config: TINY_RANDOM_CONFIG, seed: 3 })).dir;
    const bad = await tool('ir_engine_check', ['--model', tiny, '--check-model']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr + bad.stdout).toMatch(/ENGINE_BAD_MODEL|head/i);
    const none = await tool('ir_engine_check', ['--model', join(work, 'nope'), '--check-model']);
    expect(none.code).not.toBe(0);
  });

  it.skipIf(!hasTool('ir_test_ops'))('ir_test_ops exits 77 (skip) without a device, never crashes', async () => {
    const r = await tool('ir_test_ops', []);
    if (r.code === 77) expect(r.stdout + r.stderr).toMatch(/no CUDA device/);
    else expect(r.code).toBe(0); // a GPU machine: every op passed
  });
});
