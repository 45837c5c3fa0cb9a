// A model directory with random (untrained) weights in ImageReward's layout:
// for demos, benchmarks and GPU parity tests where the real 1.8 GB checkpoint
// is not available. Its scores mean nothing; config.json says so (model_id
// "random-demo", source.generated with the seed).
//
// Deterministic on every machine: every tensor has its own generator, seeded
// from (seed, tensor name) through splitmix64, running xoshiro128** (32-bit
// integer ops only). A normal-ish sample is the Irwin–Hall sum of four 16-bit
// uniforms, centred and scaled to unit variance (bounded at ±3.46σ, like the
// truncated normal ViT initializes with); the only float operations are one
// subtraction and one multiplication, rounded to float32, so the bytes do not
// depend on the platform's libm.
//
// Init (BERT/ViT style): weights and embeddings N(0, σ) with σ = 0.02 for the
// full-size model (σ grows as 0.55/√fan_in for narrow test models, so a
// 32-wide model propagates signal like a 768-wide one), biases N(0, 0.02),
// LayerNorm weight 1 + N(0, 0.02) and bias N(0, 0.02); the reward head
// (mlp.layers.*) gets σ = 1/√fan_in so rewards of different inputs differ by
// O(0.1–1) instead of collapsing to one value.
//
// Streamed: one tensor is generated and written at a time (the largest, the
// word embeddings, is 94 MB); the directory appears atomically (temp dir +
// rename) and re-running with the same (seed, config, model id) is a no-op.
import { installDir, tempSibling } from './atomic-dir.js';
import { createHash } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { IMAGEREWARD_CONFIG, checkConfig, requiredTensors, type ImageRewardConfig } from './architecture.js';
import { buildSafetensorsHeader, writeSafetensors, type TensorSpec } from './safetensors.js';
import {
  MODEL_DIR_FILES,
  WEIGHTS_FILE,
  writeModelDirMeta,
  readModelDirConfig,
  type ModelDirConfig,
  type ModelDirSource,
} from './model-dir.js';
import { defaultVocabPath } from '../tokenizer.js';

export const RANDOM_MODEL_ID = 'random-demo';
/** Bump when the generator or the init scheme changes (the bytes for a seed would change). */
export const RANDOM_INIT_VERSION = 1;
export const RANDOM_INIT_SCHEME = 'irwin-hall-4x16bit/xoshiro128**-splitmix64/v1';
const GENERATOR = 'imagereward demo-model';

/** A small architecture with the real vocab (the real tokenizer works) and 224-px images (image files can be scored). */
export const TINY_RANDOM_CONFIG: ImageRewardConfig = {
  vision: { width: 32, layers: 2, heads: 2, patch: 16, image: 224, mlpRatio: 4 },
  text: { hidden: 32, layers: 2, heads: 2, intermediate: 128, vocab: 30524, maxPositions: 64, encoderWidth: 32 },
  mlp: [32, 32, 16, 8, 4, 1],
};

export class RandomModelError extends Error {
  override name = 'RandomModelError';
  constructor(
    message: string,
    readonly code: 'random_out_exists' | 'random_out_not_dir' | 'random_bad_seed',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** What config.json records under source.generated (an extension of ModelDirSource). */
export interface GeneratedSource {
  by: string;
  seed: number;
  init: string;
  init_version: number;
  note: string;
}

export type RandomModelConfig = ModelDirConfig & { source: ModelDirSource & { generated: GeneratedSource } };

export interface RandomModelOptions {
  out: string;
  config?: ImageRewardConfig;
  /** Non-negative safe integer (default 0). */
  seed?: number;
  /** Default "random-demo". */
  modelId?: string;
  /** Replace an existing directory that holds something else. */
  force?: boolean;
  onProgress?: (p: { phase: 'up-to-date' | 'writing' | 'done'; dir: string; bytes?: number; tensors?: number }) => void;
}

export interface RandomModelResult {
  dir: string;
  /** False when `out` already held this (seed, config, model id): nothing was written. */
  written: boolean;
  sha256: string;
  bytes: number;
}

// ---------------------------------------------------------------- generator

const M64 = (1n << 64n) - 1n;

function splitmix64(state: bigint): [bigint, bigint] {
  const s = (state + 0x9e3779b97f4a7c15n) & M64;
  let z = s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return [s, z ^ (z >> 31n)];
}

/** FNV-1a 64 of a string's UTF-8 bytes. */
function fnv1a64(text: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(text, 'utf8')) h = ((h ^ BigInt(b)) * 0x100000001b3n) & M64;
  return h;
}

/**
 * Fills `out` with samples of N(mean, std) (Irwin–Hall approximation) from a
 * xoshiro128** stream seeded by (seed, name). Exported for tests.
 */
export function fillNormal(out: Float32Array, seed: number, name: string, std: number, mean = 0): void {
  let st = (BigInt(seed) ^ fnv1a64(name)) & M64;
  const words: number[] = [];
  for (let i = 0; i < 2; i++) {
    let z: bigint;
    [st, z] = splitmix64(st);
    words.push(Number(z & 0xffffffffn), Number(z >> 32n));
  }
  let s0 = words[0]! | 0;
  let s1 = words[1]! | 0;
  let s2 = words[2]! | 0;
  let s3 = words[3]! | 0;
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  // Sum of four U{0..65535} has mean 131070 and variance 4·(65536²−1)/12.
  const scale = std / Math.sqrt((4 * (65536 * 65536 - 1)) / 12);
  const n = out.length;
  for (let i = 0; i < n; i++) {
    // two xoshiro128** outputs → four 16-bit uniforms
    let r = Math.imul(s1, 5);
    r = Math.imul((r << 7) | (r >>> 25), 9) >>> 0;
    let t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    let q = Math.imul(s1, 5);
    q = Math.imul((q << 7) | (q >>> 25), 9) >>> 0;
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    const sum = (r & 0xffff) + (r >>> 16) + (q & 0xffff) + (q >>> 16);
    out[i] = mean + (sum - 131070) * scale;
  }
}

/** σ and mean of a tensor under the init scheme above. */
export function initFor(spec: TensorSpec): { std: number; mean: number } {
  const { name, shape } = spec;
  if (name.startsWith('mlp.layers.')) {
    // Reward head: LeCun-style so the head neither shrinks nor blows up its input.
    if (name.endsWith('.weight')) return { std: 1 / Math.sqrt(shape[1]!), mean: 0 };
    return { std: 0.02, mean: 0 };
  }
  const isNorm = /(?:^|\.)(?:norm\d?|LayerNorm)\.(?:weight|bias)$/.test(name);
  if (isNorm) return { std: 0.02, mean: name.endsWith('.weight') ? 1 : 0 };
  if (name.endsWith('.bias')) return { std: 0.02, mean: 0 };
  // Weights (Linear [out,in], Conv [out,c,k,k]) and embeddings / cls / pos.
  const fanIn = shape.length >= 2 && !name.includes('embed') && !name.endsWith('cls_token') ? shape.slice(1).reduce((a, b) => a * b, 1) : 768;
  return { std: Math.max(0.02, 0.55 / Math.sqrt(fanIn)), mean: 0 };
}

// ---------------------------------------------------------------- directory

function pickConfig(c: ImageRewardConfig): ImageRewardConfig {
  return { vision: { ...c.vision }, text: { ...c.text }, mlp: [...c.mlp] };
}

async function existingMatch(dir: string, seed: number, config: ImageRewardConfig, modelId: string): Promise<RandomModelConfig | undefined> {
  let existing: ModelDirConfig;
  try {
    existing = await readModelDirConfig(dir);
  } catch {
    return undefined;
  }
  const gen = (existing.source as Partial<RandomModelConfig['source']>).generated;
  if (!gen || gen.by !== GENERATOR || gen.seed !== seed || gen.init_version !== RANDOM_INIT_VERSION) return undefined;
  if (existing.model_id !== modelId || JSON.stringify(existing.config) !== JSON.stringify(config)) return undefined;
  for (const f of MODEL_DIR_FILES) {
    const s = await stat(join(dir, f)).catch(() => undefined);
    if (!s?.isFile()) return undefined;
    if (f === WEIGHTS_FILE && s.size !== existing.source.bytes) return undefined;
  }
  return existing as RandomModelConfig;
}

/** Writes a complete model directory of random weights (see the file comment). */
export async function writeRandomModel(opts: RandomModelOptions): Promise<RandomModelResult> {
  const config = pickConfig(opts.config ?? IMAGEREWARD_CONFIG);
  checkConfig(config);
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RandomModelError(`seed must be a non-negative integer (got ${seed})`, 'random_bad_seed');
  const modelId = opts.modelId ?? RANDOM_MODEL_ID;
  const out = resolve(opts.out);
  const progress = opts.onProgress ?? (() => {});
  const vocabPath = defaultVocabPath();

  const outStat = await stat(out).catch(() => undefined);
  if (outStat) {
    if (!outStat.isDirectory()) throw new RandomModelError(`${out} exists and is not a directory`, 'random_out_not_dir');
    const same = await existingMatch(out, seed, config, modelId);
    if (same) {
      progress({ phase: 'up-to-date', dir: out });
      return { dir: out, written: false, sha256: same.source.sha256, bytes: same.source.bytes };
    }
    if (!opts.force) {
      throw new RandomModelError(`${out} already exists and does not hold this random model (seed ${seed}); pass --force to replace it`, 'random_out_exists');
    }
  }

  const specs = requiredTensors(config);
  const metadata = {
    format: 'pt',
    model_id: modelId,
    generated_by: GENERATOR,
    seed: String(seed),
    init: RANDOM_INIT_SCHEME,
    note: 'random weights, not a trained ImageReward model',
  };
  // Hash while writing: the length prefix and header exactly as writeSafetensors writes them, then each tensor.
  const hash = createHash('sha256');
  const { header, tensors } = buildSafetensorsHeader(specs, metadata);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  hash.update(len).update(header);
  const bytes = 8 + header.length + (tensors.at(-1)?.dataOffsets[1] ?? 0);

  await mkdir(dirname(out), { recursive: true });
  let tmp: string | undefined = tempSibling(out, 'tmp');
  await mkdir(tmp);
  try {
    progress({ phase: 'writing', dir: out, bytes, tensors: specs.length });
    let buf = new Float32Array(0);
    await writeSafetensors(
      join(tmp, WEIGHTS_FILE),
      specs,
      async (spec) => {
        const n = spec.shape.reduce((a, b) => a * b, 1);
        if (buf.length < n) buf = new Float32Array(n);
        const view = buf.subarray(0, n);
        const { std, mean } = initFor(spec);
        fillNormal(view, seed, spec.name, std, mean);
        const data = new Uint8Array(view.buffer, 0, n * 4);
        hash.update(data);
        return data;
      },
      metadata,
    );
    const sha256 = hash.digest('hex');
    await writeModelDirMeta<RandomModelConfig>(tmp, vocabPath, {
      model_id: modelId,
      config,
      tensors: specs.length,
      source: {
        file: `random weights (seed ${seed}), generated by \`${GENERATOR}\`: not a trained ImageReward model`,
        bytes,
        sha256,
        generated: {
          by: GENERATOR,
          seed,
          init: RANDOM_INIT_SCHEME,
          init_version: RANDOM_INIT_VERSION,
          note: 'Random, untrained weights in the ImageReward layout, for demos, benchmarks and parity tests. Its scores mean nothing.',
        },
      },
    });
    await installDir(tmp, out, MODEL_DIR_FILES, outStat !== undefined);
    tmp = undefined;
    progress({ phase: 'done', dir: out });
    return { dir: out, written: true, sha256, bytes };
  } catch (err) {
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}
