// The smallest model the CUDA engine's shapes allow that still has upstream's input sizes:
// 224-px images (197 image tokens), 64-wide heads, 2 vision + 2 text layers, the real
// 30,524-row vocab. Used with the engine's CPU emulation (test/node/native-*-emu.test.ts),
// where a full-size model would take minutes per pair.
import { join } from 'node:path';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { writeRandomModel } from '../../gpu-service/model/random-model.js';
import { writeEngineRefs } from './engine-refs.js';

export const SMALL_ENGINE_CONFIG: ImageRewardConfig = {
  vision: { width: 128, layers: 2, heads: 2, patch: 16, image: 224, mlpRatio: 4 },
  text: { hidden: 128, layers: 2, heads: 2, intermediate: 512, vocab: 30524, maxPositions: 64, encoderWidth: 128 },
  mlp: [128, 64, 32, 16, 8, 1],
};

/** The preprocessing fixtures' folder (real files of every format). */
export const FIXTURE_IMAGES = join(import.meta.dirname, '..', 'fixtures', 'preprocess', 'images');

/** The engine checks' pairs: 4 real images of different formats × 3 prompts (one truncated). */
export const ENGINE_CHECK_IMAGES = ['rgb_lossy_300x280.webp', 'rgb_900x700.jpg', 'p_300x250.png', 'gif_trns_230x240.gif'];
export const ENGINE_CHECK_PROMPTS = [
  'a cat',
  'a painting of an ocean with clouds and birds, day time, low depth field effect',
  // longer than 35 tokens: truncated, every mask position 1
  'an extremely detailed matte painting of a futuristic city at dusk, neon lights reflecting on wet streets, flying cars, cinematic, trending on artstation, octane render, 8k, volumetric fog',
];

/**
 * The small random model (seed 4242) in <work>/model and ONNX Runtime fp32 references for
 * the engine checks' 12 pairs in <work>/refs (tools/engine_check.cc reads both).
 */
export async function writeSmallEngineCheck(work: string): Promise<{ model: string; refs: string }> {
  const model = (await writeRandomModel({ out: join(work, 'model'), config: SMALL_ENGINE_CONFIG, seed: 4242 })).dir;
  const refs = join(work, 'refs');
  await writeEngineRefs({
    modelDir: model,
    config: SMALL_ENGINE_CONFIG,
    out: refs,
    images: ENGINE_CHECK_IMAGES.map((n) => join(FIXTURE_IMAGES, n)),
    prompts: ENGINE_CHECK_PROMPTS,
  });
  return { model, refs };
}
