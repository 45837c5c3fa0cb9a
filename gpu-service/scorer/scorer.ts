// High-level ImageReward scorer: prompt + images → rewards (and ranks), the images
// scored in batched forwards on the selected backend (CUDA engine when it can run here,
// else ONNX Runtime on CPU; select-backend.ts).
//
// Image files (bytes or paths) go through preprocessImageRgb (upstream's decode, resize,
// crop and convert('RGB')) and the backend's encodeImagesRgb, which applies ToTensor +
// Normalize where the model runs — the same tensor as preprocessImage, bit for bit.
// Models whose vision.image is not 224 (the tiny test model) can only be scored through
// scoreTensors.
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { ImageRewardConfig } from '../model/architecture.js';
import { convertCheckpoint } from '../model/convert.js';
import { CONFIG_FILE, VOCAB_FILE, readModelDirConfig } from '../model/model-dir.js';
import { IMAGE_SIZE, ImageError, preprocessImageRgb } from '../preprocess/index.js';
import { loadTokenizer } from '../tokenizer.js';
import type { BackendName } from './backend.js';
import type { NativeBackendOptions } from './native-backend.js';
import type { OrtBackendOptions, TextScores } from './ort-backend.js';
import { selectBackend, type BackendChoice } from './select-backend.js';
import { rankRewards } from '../../contracts/api/ranking.js';

export { rankRewards } from '../../contracts/api/ranking.js';

export type ScorerErrorCode = 'model_not_found' | 'image_size_unsupported' | 'image_unreadable' | 'no_images';

export class ScorerError extends Error {
  override name = 'ScorerError';
  constructor(
    readonly code: ScorerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface ScorerOptions {
  /** A converted model directory, or an ImageReward.pt checkpoint (converted once, see modelDirFor). */
  model: string;
  /**
   * 'auto' (default): the CUDA engine when the addon has it and a device is usable,
   * else ONNX Runtime on CPU. 'ort' for fp32 results identical on every machine.
   */
  backend?: BackendChoice;
  native?: NativeBackendOptions;
  ort?: OrtBackendOptions;
  /** Architecture of a checkpoint given as `model` (default ImageReward-v1.0's); for tests and custom sizes. */
  config?: ImageRewardConfig;
}

export type ImageInput = Uint8Array | string;

export interface RankResult {
  rewards: number[];
  /** ranking[i]: 1-based place of image i (1 = highest reward; ties keep index order). */
  ranking: number[];
}

export interface Scorer {
  /** The model directory in use. */
  readonly modelDir: string;
  /** config.json's model_id ("ImageReward-v1.0" for the released weights). */
  readonly modelId: string;
  /** The backend in use. */
  readonly backend: BackendName;
  /** Backends tried first and why they were not used ('auto'). */
  readonly skippedBackends: readonly { name: BackendName; reason: string }[];
  score(prompt: string, images: ImageInput[]): Promise<number[]>;
  rank(prompt: string, images: ImageInput[]): Promise<RankResult>;
  /**
   * Lower level: pixel_values [B,3,S,S] (S = the model's vision.image), input_ids and
   * attention_mask [B,textLength]. Buffers are transferred to the worker (see OrtBackend).
   */
  scoreTensors(pixels: Float32Array, ids: BigInt64Array, mask: BigInt64Array): Promise<TextScores>;
  dispose(): Promise<void>;
}

/**
 * Where a checkpoint is converted: $IMAGEREWARD_HOME/models/<name>-<8 hex of the
 * checkpoint's absolute path> when IMAGEREWARD_HOME is set (two files that share
 * a name never share a directory), else <name>.model beside the checkpoint.
 * The directory is ours: when the checkpoint's content changes it is re-converted.
 */
export function modelDirFor(checkpoint: string, env: NodeJS.ProcessEnv = process.env): string {
  const name = basename(checkpoint, extname(checkpoint));
  const home = env.IMAGEREWARD_HOME;
  if (!home) return join(dirname(checkpoint), `${name}.model`);
  const tag = createHash('sha256').update(resolve(checkpoint)).digest('hex').slice(0, 8);
  return join(home, 'models', `${name}-${tag}`);
}

async function resolveModel(opts: ScorerOptions): Promise<string> {
  const model = opts.model;
  let isDir: boolean;
  try {
    isDir = statSync(model).isDirectory();
  } catch {
    throw new ScorerError(
      'model_not_found',
      `no model at ${model}: run \`imagereward fetch-model\` to download ImageReward.pt, then \`imagereward convert\` (or pass the .pt)`,
    );
  }
  if (isDir) {
    if (!existsSync(join(model, CONFIG_FILE))) {
      throw new ScorerError(
        'model_not_found',
        `${model} is not a model directory (no ${CONFIG_FILE}): create one with \`imagereward convert <ImageReward.pt> --out ${model}\` (\`imagereward fetch-model\` downloads the checkpoint)`,
      );
    }
    return model;
  }
  // force: the derived directory belongs to this checkpoint path; a changed file replaces it.
  const { dir } = await convertCheckpoint({ checkpoint: model, out: modelDirFor(model), force: true, ...(opts.config ? { config: opts.config } : {}) });
  return dir;
}

async function readImage(image: ImageInput, index: number): Promise<{ bytes: Uint8Array; label: string }> {
  if (typeof image !== 'string') return { bytes: image, label: `image ${index}` };
  try {
    return { bytes: await readFile(image), label: image };
  } catch (err) {
    throw new ScorerError('image_unreadable', `cannot read ${image}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/** Images per forward in score()/rank(): the service's default batch sizes (score-service.ts). */
export const SCORE_CHUNK_NATIVE = 64;
export const SCORE_CHUNK_ORT = 8;

export async function createScorer(opts: ScorerOptions): Promise<Scorer> {
  if (opts.backend !== undefined && !['auto', 'ort', 'native'].includes(opts.backend)) throw new TypeError(`unknown backend "${String(opts.backend)}"`);
  const modelDir = await resolveModel(opts);
  const { model_id: modelId } = await readModelDirConfig(modelDir);
  const tokenizer = await loadTokenizer(join(modelDir, VOCAB_FILE));
  const { backend, skipped } = await selectBackend(modelDir, { backend: opts.backend, ort: opts.ort, native: opts.native });
  const S = backend.imageSize;
  const L = backend.textLength;

  const scoreTensors = async (pixels: Float32Array, ids: BigInt64Array, mask: BigInt64Array): Promise<TextScores> => {
    const per = 3 * S * S;
    const batch = pixels.length / per;
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`pixels must hold B x 3 x ${S} x ${S} floats (got ${pixels.length})`);
    const embeds = await backend.encodeImages(pixels, batch);
    return backend.scoreText(ids, mask, embeds, batch);
  };

  const score = async (prompt: string, images: ImageInput[]): Promise<number[]> => {
    if (images.length === 0) throw new ScorerError('no_images', 'no images to score');
    if (S !== IMAGE_SIZE) {
      throw new ScorerError(
        'image_size_unsupported',
        `${modelDir} takes ${S}x${S} images; image files are preprocessed to ${IMAGE_SIZE}x${IMAGE_SIZE} only (use scoreTensors)`,
      );
    }
    // In chunks, so any number of files works: the CUDA engine refuses batches above its
    // maxBatch (256), and memory stays bounded (one chunk of RGB crops, 150 KB an image).
    // The rewards do not depend on the chunking (each pair is scored on its own).
    const per = 3 * S * S;
    const chunk = backend.name === 'native' ? SCORE_CHUNK_NATIVE : SCORE_CHUNK_ORT;
    const enc = tokenizer.encode(prompt, L);
    const rewards: number[] = [];
    for (let start = 0; start < images.length; start += chunk) {
      const part = images.slice(start, start + chunk);
      const rgb = new Uint8Array(part.length * per);
      await Promise.all(
        part.map(async (image, j) => {
          const { bytes, label } = await readImage(image, start + j);
          let t: Uint8Array;
          try {
            t = await preprocessImageRgb(bytes);
          } catch (err) {
            if (err instanceof ImageError) throw new ImageError(err.code, `${label}: ${err.message}`, { cause: err });
            throw err;
          }
          rgb.set(t, j * per);
        }),
      );
      const ids = new BigInt64Array(part.length * L);
      const mask = new BigInt64Array(part.length * L);
      for (let i = 0; i < part.length; i++) {
        for (let j = 0; j < L; j++) {
          ids[i * L + j] = BigInt(enc.input_ids[j] ?? 0);
          mask[i * L + j] = BigInt(enc.attention_mask[j] ?? 0);
        }
      }
      const embeds = await backend.encodeImagesRgb(rgb, part.length);
      const { reward } = await backend.scoreText(ids, mask, embeds, part.length);
      rewards.push(...reward);
    }
    return rewards;
  };

  return {
    modelDir,
    modelId,
    backend: backend.name,
    skippedBackends: skipped,
    score,
    async rank(prompt, images) {
      const rewards = await score(prompt, images);
      return { rewards, ranking: rankRewards(rewards) };
    },
    scoreTensors,
    dispose: () => backend.dispose(),
  };
}
