// Writes the fp32 references the standing GPU check compares the CUDA engine
// with (native/scripts/gpu-check.sh): the full-size deterministic random model
// (gpu-service/model/random-model.ts, seed GPU_REFS_SEED), real images through
// our Pillow-exact preprocessing, real prompts through our tokenizer, scored by
// ONNX Runtime on CPU in fp32.
//
//   node --import tsx bench/gpu-refs.ts [outDir]      (default native/build-gpu/refs)
//
// Output (small enough to carry to the GPU machine, which has no Node):
//   refs.json  {seed, model_sha256, tensors_sha256, config, pairs, prompts, images,
//               pixels|input_ids|attention_mask|rewards|raw|image_embeds0: {dtype, shape, offset}}
//   refs.bin   the arrays, little-endian, at those byte offsets
// The GPU machine regenerates the same weights bit for bit (native/tools/random_model.cc
// ports the generator) and checks `tensors_sha256` before trusting the comparison.
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { IMAGEREWARD_CONFIG } from '../gpu-service/model/architecture.js';
import { tensorsSha256 } from '../gpu-service/model/safetensors.js';
import { writeRandomModel } from '../gpu-service/model/random-model.js';
import { preprocessImage } from '../gpu-service/preprocess/index.js';
import { OrtBackend } from '../gpu-service/scorer/ort-backend.js';
import { loadTokenizer } from '../gpu-service/tokenizer.js';

export const GPU_REFS_SEED = 20261127;
const ROOT = resolve(import.meta.dirname, '..');
const PROMPTS = [
  'a painting of an ocean with clouds and birds, day time, low depth field effect',
  'a cat wearing a tiny wizard hat, studio lighting, 85mm',
  'an extremely detailed matte painting of a futuristic city at dusk, neon lights reflecting on wet streets, flying cars, cinematic',
];

async function main(): Promise<void> {
  const out = resolve(process.argv[2] ?? join(ROOT, 'native', 'build-gpu', 'refs'));
  const modelDir = join(ROOT, 'bench', 'out', `random-full-${GPU_REFS_SEED}`);
  console.error(`model: ${modelDir}`);
  const model = await writeRandomModel({ out: modelDir, config: IMAGEREWARD_CONFIG, seed: GPU_REFS_SEED });
  const tensorsSha = await tensorsSha256(join(modelDir, 'model.safetensors'));

  const imgDir = join(ROOT, 'test', 'fixtures', 'preprocess', 'images');
  const shared = join(ROOT, '..', 'shared', 'images');
  const images = [
    ...['rgb_lossy_300x280.webp', 'rgb_900x700.jpg', 'p_300x250.png', 'gif_trns_230x240.gif', 'rgba_premultiplied_300x260.png'].map((n) => join(imgDir, n)),
    ...(existsSync(shared) ? readdirSync(shared).filter((n) => n.endsWith('.webp')).sort().map((n) => join(shared, n)) : []),
  ];
  const per = 3 * 224 * 224;
  const pix1 = new Float32Array(images.length * per);
  for (let i = 0; i < images.length; i++) pix1.set(await preprocessImage(await readFile(images[i]!)), i * per);

  const tok = await loadTokenizer();
  const P = PROMPTS.length;
  const N = images.length * P;
  const L = 35;
  const pixels = new Float32Array(N * per);
  const ids = new Int32Array(N * L);
  const mask = new Int32Array(N * L);
  for (let p = 0; p < P; p++) {
    const enc = tok.encode(PROMPTS[p]!, L);
    for (let i = 0; i < images.length; i++) {
      const k = p * images.length + i;
      pixels.set(pix1.subarray(i * per, (i + 1) * per), k * per);
      for (let j = 0; j < L; j++) {
        ids[k * L + j] = enc.input_ids[j] ?? 0;
        mask[k * L + j] = enc.attention_mask[j] ?? 0;
      }
    }
  }

  const backend = await OrtBackend.load(modelDir);
  let embeds0: Float32Array;
  const rewards = new Float32Array(N);
  const raw = new Float32Array(N);
  try {
    const embeds = await backend.encodeImages(pix1.slice(), images.length);
    const E = embeds.length / images.length;
    embeds0 = embeds.slice(0, E);
    for (let p = 0; p < P; p++) {
      const n = images.length;
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
    ['pixels', pixels, 'F32', [N, 3, 224, 224]],
    ['input_ids', ids, 'I32', [N, L]],
    ['attention_mask', mask, 'I32', [N, L]],
    ['rewards', rewards, 'F32', [N]],
    ['raw', raw, 'F32', [N]],
    ['image_embeds0', embeds0, 'F32', [1, 197, 1024]],
  ];
  const meta: Record<string, unknown> = {
    _comment: 'written by bench/gpu-refs.ts (ONNX Runtime fp32 on CPU); consumed by native/scripts/gpu-check.sh',
    seed: GPU_REFS_SEED,
    model_sha256: model.sha256,
    tensors_sha256: tensorsSha,
    config: IMAGEREWARD_CONFIG,
    pairs: N,
    prompts: PROMPTS,
    images: images.map((p) => p.slice(ROOT.length + 1)),
  };
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, arr, dtype, shape] of parts) {
    const b = Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength);
    meta[name] = { dtype, shape, offset };
    chunks.push(b);
    offset += b.length;
  }
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'refs.bin'), Buffer.concat(chunks));
  await writeFile(join(out, 'refs.json'), `${JSON.stringify(meta, null, 1)}\n`);
  console.error(`wrote ${out}/refs.{json,bin}: ${N} pairs, rewards ${Array.from(rewards, (r) => r.toFixed(3)).join(' ')}`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  await main();
}
