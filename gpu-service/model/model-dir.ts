// The converted model directory: what `imagereward convert` writes and the
// runtime loads. Three files, all written together (atomically):
//   model.safetensors  fp32 tensors under their upstream state_dict names
//   config.json        architecture, normalization, provenance (ModelDirConfig)
//   vocab.txt          the BERT vocab the tokenizer uses
import { createHash } from 'node:crypto';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageRewardConfig } from './architecture.js';

export const MODEL_DIR_FORMAT = 'imagereward-model-dir';
export const MODEL_DIR_FORMAT_VERSION = 1;
export const MODEL_ID = 'ImageReward-v1.0';
/** sha256 of the released ImageReward.pt (THUDM/ImageReward on the Hub): only this file is labelled MODEL_ID. */
export const IMAGEREWARD_V1_SHA256 = 'd71dc8d4912bc633c06ab8ef1ef6a81e8199d4369f14b47b29baf1d19de561f6';

export const WEIGHTS_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.json';
export const VOCAB_FILE = 'vocab.txt';
export const MODEL_DIR_FILES = [WEIGHTS_FILE, CONFIG_FILE, VOCAB_FILE] as const;

/** ImageReward's reward normalization: score = (raw - mean) / std (ImageReward.py). */
export const REWARD_NORMALIZATION = { mean: 0.16717362830052426, std: 1.0333394966054072 } as const;

export interface ModelDirSource {
  /** Basename of the converted checkpoint. */
  file: string;
  bytes: number;
  sha256: string;
  /**
   * Absolute path and modification time of the checkpoint when it was converted:
   * a re-run on an unchanged file (same path, size, mtime) skips re-hashing 1.8 GB.
   */
  path?: string;
  mtime_ms?: number;
  /** Present for random-weight models (`imagereward demo-model`): how they were generated. Their scores mean nothing. */
  generated?: { by: string; seed: number; init: string; init_version: number; note?: string };
}

export interface ModelDirConfig {
  format: typeof MODEL_DIR_FORMAT;
  format_version: number;
  model_id: string;
  /** Architecture hyper-parameters. */
  config: ImageRewardConfig;
  normalization: { mean: number; std: number };
  /** Data type of every tensor in model.safetensors. */
  dtype: 'F32';
  tensors: number;
  source: ModelDirSource;
  vocab: { file: string; sha256: string };
}

export class ModelDirError extends Error {
  override name = 'ModelDirError';
}

/** Reads and sanity-checks `<dir>/config.json`. */
export async function readModelDirConfig(dir: string): Promise<ModelDirConfig> {
  const path = join(dir, CONFIG_FILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new ModelDirError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const c = parsed as Partial<ModelDirConfig> | null;
  if (typeof c !== 'object' || c === null || c.format !== MODEL_DIR_FORMAT) {
    throw new ModelDirError(`${path} is not an imagereward model directory config (format must be "${MODEL_DIR_FORMAT}")`);
  }
  if (c.format_version !== MODEL_DIR_FORMAT_VERSION) {
    throw new ModelDirError(`${path} has format_version ${String(c.format_version)}; this version reads ${MODEL_DIR_FORMAT_VERSION}`);
  }
  if (typeof c.source?.sha256 !== 'string' || typeof c.config !== 'object' || c.config === null) {
    throw new ModelDirError(`${path} lacks source.sha256 or config`);
  }
  return c as ModelDirConfig;
}

/**
 * Writes vocab.txt (copied from `vocabPath`) and config.json into `dir` (the temp
 * directory a conversion or a random model is assembled in), filling in the fields
 * every model directory has the same way. Returns the config written.
 */
export async function writeModelDirMeta<T extends ModelDirConfig>(
  dir: string,
  vocabPath: string,
  fields: Pick<T, 'model_id' | 'config' | 'tensors' | 'source'>,
): Promise<ModelDirConfig> {
  const vocab = await readFile(vocabPath);
  await copyFile(vocabPath, join(dir, VOCAB_FILE));
  const dirConfig: ModelDirConfig = {
    format: MODEL_DIR_FORMAT,
    format_version: MODEL_DIR_FORMAT_VERSION,
    model_id: fields.model_id,
    config: fields.config,
    normalization: { ...REWARD_NORMALIZATION },
    dtype: 'F32',
    tensors: fields.tensors,
    source: fields.source,
    vocab: { file: VOCAB_FILE, sha256: createHash('sha256').update(vocab).digest('hex') },
  };
  await writeFile(join(dir, CONFIG_FILE), `${JSON.stringify(dirConfig, null, 2)}\n`);
  return dirConfig;
}
