// Writes the fp32 references the standing GPU check compares the CUDA engine
// with (native/scripts/gpu-check.sh): the full-size deterministic random model
// (gpu-service/model/random-model.ts, seed GPU_REFS_SEED), real images through
// our Pillow-exact preprocessing, real prompts through our tokenizer, scored by
// ONNX Runtime on CPU in fp32 (test/support/engine-refs.ts writes the files).
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
import { join, relative, resolve } from 'node:path';
import { IMAGEREWARD_CONFIG } from '../gpu-service/model/architecture.js';
import { writeRandomModel } from '../gpu-service/model/random-model.js';
import { writeEngineRefs } from '../test/support/engine-refs.js';

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
  const imgDir = join(ROOT, 'test', 'fixtures', 'preprocess', 'images');
  const shared = join(ROOT, '..', 'shared', 'images');
  const images = [
    ...['rgb_lossy_300x280.webp', 'rgb_900x700.jpg', 'p_300x250.png', 'gif_trns_230x240.gif', 'rgba_premultiplied_300x260.png'].map((n) => join(imgDir, n)),
    ...(existsSync(shared) ? readdirSync(shared).filter((n) => n.endsWith('.webp')).sort().map((n) => join(shared, n)) : []),
  ];
  const refs = await writeEngineRefs({
    modelDir,
    config: IMAGEREWARD_CONFIG,
    out,
    images,
    prompts: PROMPTS,
    seed: GPU_REFS_SEED,
    modelSha256: model.sha256,
    label: (p) => relative(ROOT, p),
  });
  console.error(`wrote ${out}/refs.{json,bin}: ${refs.pairs} pairs, rewards ${Array.from(refs.rewards, (r) => r.toFixed(3)).join(' ')}`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  await main();
}
