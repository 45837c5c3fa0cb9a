// Backend choice (gpu-service/scorer/select-backend.ts) on the machine the tests
// run on: where the CUDA engine cannot run (no CUDA build, or no device), 'native'
// fails with a typed error and 'auto' falls back to ONNX Runtime, saying why.
// On a machine with a usable GPU the first two cases check the engine instead.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../native/index.js';
import { convertCheckpoint } from '../../gpu-service/model/convert.js';
import { NativeBackendError, nativeEngineUnavailable } from '../../gpu-service/scorer/native-backend.js';
import { selectBackend } from '../../gpu-service/scorer/select-backend.js';
import { TINY, TINY_CONFIG } from '../support/tiny-model.js';

let work: string;
let modelDir: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ir-select-'));
  modelDir = (await convertCheckpoint({ checkpoint: TINY, out: join(work, 'model'), config: TINY_CONFIG })).dir;
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const cudaBuilt = native?.buildInfo().cuda === true;

describe('selectBackend', () => {
  it('names why the CUDA engine is unavailable when the addon has none', () => {
    const why = nativeEngineUnavailable();
    if (cudaBuilt) expect(why).toBeNull();
    else expect(why).toMatch(/without CUDA|not loaded/);
  });

  it("'native' rejects with a typed error where the engine cannot run", async () => {
    const attempt = selectBackend(modelDir, { backend: 'native' });
    const err = await attempt.then(
      async (s) => {
        await s.backend.dispose();
        return undefined;
      },
      (e: unknown) => e,
    );
    if (err === undefined) {
      // A usable GPU: nothing to assert here (the engine's own tests cover it).
      expect(cudaBuilt).toBe(true);
      return;
    }
    expect(err).toBeInstanceOf(NativeBackendError);
    const code = (err as NativeBackendError).code;
    expect(cudaBuilt ? ['ENGINE_NO_DEVICE', 'ENGINE_CUBLAS_MISSING'] : ['NATIVE_UNAVAILABLE']).toContain(code);
  });

  it("'auto' falls back to ONNX Runtime and records the reason", async () => {
    const { backend, skipped } = await selectBackend(modelDir, { ort: { intraOpNumThreads: 1 } });
    try {
      if (backend.name === 'ort') {
        expect(skipped).toHaveLength(1);
        expect(skipped[0]!.name).toBe('native');
        expect(skipped[0]!.reason.length).toBeGreaterThan(10);
      } else {
        expect(skipped).toEqual([]);
      }
      expect(backend.imageSize).toBe(TINY_CONFIG.vision.image);
    } finally {
      await backend.dispose();
    }
  });

  it("'ort' is ONNX Runtime with nothing skipped", async () => {
    const { backend, skipped } = await selectBackend(modelDir, { backend: 'ort', ort: { intraOpNumThreads: 1 } });
    try {
      expect(backend.name).toBe('ort');
      expect(skipped).toEqual([]);
    } finally {
      await backend.dispose();
    }
  });
});
