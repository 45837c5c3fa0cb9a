// The C++ port of the random-model generator (native/tools/random_model.cc,
// built as native/build/tools/ir_random_model) must give bit-identical tensors to
// gpu-service/model/random-model.ts: the GPU check regenerates the full model
// with it on a machine without Node and trusts fp32 references computed here.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_RANDOM_CONFIG, writeRandomModel } from '../../gpu-service/model/random-model.js';
import { openSafetensors, tensorsSha256 } from '../../gpu-service/model/safetensors.js';
import { requiredTensors } from '../../gpu-service/model/architecture.js';

const TOOL = join(import.meta.dirname, '..', '..', 'native', 'build', 'tools', 'ir_random_model');
const required = process.env.IMAGEREWARD_NATIVE_REQUIRED === '1';
const missing = !existsSync(TOOL);
const run = promisify(execFile);

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ir-port-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('ir_random_model (C++) vs writeRandomModel (TypeScript)', () => {
  it('the tool is built with the addon', () => {
    if (required) expect(existsSync(TOOL), `${TOOL} missing`).toBe(true);
  });

  it.skipIf(missing)(`same tensors, bit for bit, for two seeds${missing ? ' — skipped: ir_random_model not built (npm run build:native)' : ''}`, async () => {
    for (const seed of [0, 20261127]) {
      const cpp = join(work, `cpp-${seed}`);
      const ts = join(work, `ts-${seed}`);
      await run(TOOL, ['--out', cpp, '--seed', String(seed), '--size', 'tiny']);
      await writeRandomModel({ out: ts, config: TINY_RANDOM_CONFIG, seed });
      expect(await tensorsSha256(join(cpp, 'model.safetensors'))).toBe(await tensorsSha256(join(ts, 'model.safetensors')));
      const st = await openSafetensors(join(cpp, 'model.safetensors'));
      try {
        expect(st.tensors.map((t) => t.name).sort()).toEqual(requiredTensors(TINY_RANDOM_CONFIG).map((t) => t.name).sort());
      } finally {
        await st.close();
      }
    }
    // Different seeds differ (the comparison above can fail).
    expect(await tensorsSha256(join(work, 'cpp-0', 'model.safetensors'))).not.toBe(await tensorsSha256(join(work, 'cpp-20261127', 'model.safetensors')));
  });

  it.skipIf(missing)('usage errors exit 2', async () => {
    await expect(run(TOOL, ['--size', 'huge', '--out', join(work, 'x')])).rejects.toMatchObject({ code: 2 });
  });
});
