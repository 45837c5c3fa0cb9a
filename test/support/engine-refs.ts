// fp32 references for the CUDA engine (native/src/cuda): a model directory, real images
// through our Pillow-exact preprocessing, real prompts through our tokenizer, scored by
// ONNX Runtime on CPU in fp32, written as the refs.{json,bin} pair that
// native/tools/engine_check.cc reads (`--refs <dir>`):
//   refs.json  {seed?, model_sha256, tensors_sha256, config, pairs, prompts, images,
//               pixels|input_ids|attention_mask|rewards|raw|image_embeds0: {dtype, shape, offset}}
//   refs.bin   the arrays, little-endian, at those byte offsets
// Pairs are prompt-major: pair p·images + i = (prompts[p], images[i]).
// Used by bench/gpu-refs.ts (the full-size model, for the standing GPU check) and by
// test/node/native-engine-emu.test.ts (a small model, for the CPU emulation of the engine).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tensorsSha256 } from '../../gpu-service/model/safetensors.js';
import { preprocessImage } from '../../gpu-service/preprocess/index.js';
import { OrtBackend } from '../../gpu-service/scorer/ort-backend.js';
import { loadTokenizer } from '../../gpu-service/tokenizer.js';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';

export interface EngineRefsOptions {
  modelDir: string;
  config: ImageRewardConfig;
  out: string;
  images: string[];
  prompts: string[];
  /** Recorded in refs.json (the GPU check regenerates the random model from it). */
  seed?: number;
  modelSha256?: string;
  /** How image paths are written into refs.json (default: as given). */
  label?: (path: string) => string;
}

export interface EngineRefs {
  pairs: number;
  rewards: Float32Array;
}

export async function writeEngineRefs(o: EngineRefsOptions): Promise<EngineRefs> {
  const S = o.config.vision.image;
  const tokens = (S / o.config.vision.patch) ** 2 + 1;
  const per = 3 * S * S;
  const pix1 = new Float32Array(o.images.length * per);
  for (let i = 0; i < o.images.length; i++) pix1.set(await preprocessImage(await readFile(o.images[i]!)), i * per);

  const tok = await loadTokenizer();
  const P = o.prompts.length;
  const n = o.images.length;
  const N = n * P;
  const L = 35;
  const pixels = new Float32Array(N * per);
  const ids = new Int32Array(N * L);
  const mask = new Int32Array(N * L);
  for (let p = 0; p < P; p++) {
    const enc = tok.encode(o.prompts[p]!, L);
    for (let i = 0; i < n; i++) {
      const k = p * n + i;
      pixels.set(pix1.subarray(i * per, (i + 1) * per), k * per);
      for (let j = 0; j < L; j++) {
        ids[k * L + j] = enc.input_ids[j] ?? 0;
        mask[k * L + j] = enc.attention_mask[j] ?? 0;
      }
    }
  }

  const backend = await OrtBackend.load(o.modelDir);
  let embeds0: Float32Array;
  const rewards = new Float32Array(N);
  const raw = new Float32Array(N);
  try {
    const embeds = await backend.encodeImages(pix1.slice(), n);
    const E = embeds.length / n;
    embeds0 = embeds.slice(0, E);
    for (let p = 0; p < P; p++) {
      const r = await backend.scoreText(
        BigInt64Array.from(ids.subarray(p * n * L, (p + 1) * n * L), (v) => BigInt(v)),
        BigInt64Array.from(mask.subarray(p * n * L, (p + 1) * n * L), (v) => BigInt(v)),
        embeds.slice(),
        n,
      );
      rewards.set(r.reward, p * n);
      raw.set(r.raw, p * n);
    }
  } finally {
    await backend.dispose();
  }

  const parts: [string, ArrayBufferView, string, number[]][] = [
    ['pixels', pixels, 'F32', [N, 3, S, S]],
    ['input_ids', ids, 'I32', [N, L]],
    ['attention_mask', mask, 'I32', [N, L]],
    ['rewards', rewards, 'F32', [N]],
    ['raw', raw, 'F32', [N]],
    ['image_embeds0', embeds0, 'F32', [1, tokens, o.config.vision.width]],
  ];
  const meta: Record<string, unknown> = {
    _comment: 'written by test/support/engine-refs.ts (ONNX Runtime fp32 on CPU); read by native/tools/engine_check.cc',
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    ...(o.modelSha256 ? { model_sha256: o.modelSha256 } : {}),
    tensors_sha256: await tensorsSha256(join(o.modelDir, 'model.safetensors')),
    config: o.config,
    pairs: N,
    prompts: o.prompts,
    images: o.images.map(o.label ?? ((p) => p)),
  };
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, arr, dtype, shape] of parts) {
    const b = Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength);
    meta[name] = { dtype, shape, offset };
    chunks.push(b);
    offset += b.length;
  }
  await mkdir(o.out, { recursive: true });
  await writeFile(join(o.out, 'refs.bin'), Buffer.concat(chunks));
  await writeFile(join(o.out, 'refs.json'), `${JSON.stringify(meta, null, 1)}\n`);
  return { pairs: N, rewards };
}
