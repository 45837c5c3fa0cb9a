// The smallest model the CUDA engine's shapes allow that still has upstream's input sizes:
// 224-px images (197 image tokens), 64-wide heads, 2 vision + 2 text layers, the real
// 30,524-row vocab. Used with the engine's CPU emulation (test/node/native-*-emu.test.ts),
// where a full-size model would take minutes per pair.
import { join } from 'node:path';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';

export const SMALL_ENGINE_CONFIG: ImageRewardConfig = {
  vision: { width: 128, layers: 2, heads: 2, patch: 16, image: 224, mlpRatio: 4 },
  text: { hidden: 128, layers: 2, heads: 2, intermediate: 512, vocab: 30524, maxPositions: 64, encoderWidth: 128 },
  mlp: [128, 64, 32, 16, 8, 1],
};

/** The preprocessing fixtures' folder (real files of every format). */
export const FIXTURE_IMAGES = join(import.meta.dirname, '..', 'fixtures', 'preprocess', 'images');
