// ImageReward.pt (torch.save zip state_dict) → a model directory
// (model.safetensors + config.json + vocab.txt; see model-dir.ts).
// Every needed tensor is validated before anything is written; tensors are
// streamed one at a time; the directory appears atomically (temp dir beside
// the target, fsync, rename) or not at all.
import { installDir, removeStaleTemps, tempSibling } from './atomic-dir.js';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { IMAGEREWARD_CONFIG, UNUSED_TENSOR_PREFIXES, checkConfig, requiredTensors, validateCheckpoint, type ImageRewardConfig } from './architecture.js';
import { openCheckpoint } from './checkpoint.js';
import { hashFile } from './fetch.js';
import { writeSafetensors } from './safetensors.js';
import {
  CONFIG_FILE,
  IMAGEREWARD_V1_SHA256,
  MODEL_DIR_FILES,
  MODEL_ID,
  WEIGHTS_FILE,
  readModelDirConfig,
  writeModelDirMeta,
  type ModelDirConfig,
} from './model-dir.js';
import { defaultVocabPath } from '../tokenizer.js';

export type ConvertErrorCode = 'convert_no_checkpoint' | 'convert_out_exists' | 'convert_out_not_dir';

export class ConvertError extends Error {
  override name = 'ConvertError';
  constructor(
    message: string,
    readonly code: ConvertErrorCode,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export type ConvertProgress =
  | { phase: 'hashing'; file: string; bytes: number }
  | { phase: 'up-to-date'; dir: string }
  | { phase: 'validating'; tensors: number }
  | { phase: 'writing'; dir: string; tensors: number; bytes: number }
  | { phase: 'tensor'; index: number; tensors: number; name: string }
  | { phase: 'done'; dir: string };

export interface ConvertOptions {
  checkpoint: string;
  out: string;
  /** Architecture to validate against and record (default: IMAGEREWARD_CONFIG). */
  config?: ImageRewardConfig;
  /** vocab.txt to copy (default: the bundled bert-base-uncased vocab). */
  vocab?: string;
  /**
   * model_id recorded in config.json. Default: "ImageReward-v1.0" for the released
   * checkpoint (by sha256), else the checkpoint's file name without extension, so a
   * fine-tune or a test model is never labelled as the release.
   */
  modelId?: string;
  /** Replace an existing, different `out` directory. */
  force?: boolean;
  onProgress?: (p: ConvertProgress) => void;
}

export interface ConvertResult {
  dir: string;
  /** False when `out` already held this checkpoint's conversion (nothing was written). */
  converted: boolean;
}

function isUnused(name: string): boolean {
  return UNUSED_TENSOR_PREFIXES.some((p) => name.startsWith(p));
}

interface SourceIdentity {
  /** Content hash; undefined = not hashed yet (then path, size and mtime must match). */
  sha256?: string;
  path: string;
  bytes: number;
  mtimeMs: number;
}

/**
 * True when `dir` holds every model-dir file and its config.json records this
 * checkpoint (by sha256, or by unchanged path + size + mtime when not hashed),
 * `config` and, when given, `modelId`.
 */
async function isSameConversion(dir: string, source: SourceIdentity, config: ImageRewardConfig, modelId: string | undefined): Promise<boolean> {
  let existing: ModelDirConfig;
  try {
    existing = await readModelDirConfig(dir);
  } catch {
    return false;
  }
  const s = existing.source;
  if (source.sha256 !== undefined) {
    if (s.sha256 !== source.sha256) return false;
  } else if (s.path !== source.path || s.bytes !== source.bytes || s.mtime_ms !== source.mtimeMs) {
    return false;
  }
  if (modelId !== undefined && existing.model_id !== modelId) return false;
  if (JSON.stringify(existing.config) !== JSON.stringify(config)) return false;
  for (const f of MODEL_DIR_FILES) {
    const s = await stat(join(dir, f)).catch(() => undefined);
    if (!s?.isFile()) return false;
  }
  return true;
}

/** Records a moved or touched (but identical) checkpoint's path and mtime, so the next run skips hashing. */
async function restampSource(dir: string, id: SourceIdentity): Promise<void> {
  const existing = await readModelDirConfig(dir);
  if (existing.source.path === id.path && existing.source.mtime_ms === id.mtimeMs) return;
  const updated: ModelDirConfig = { ...existing, source: { ...existing.source, path: id.path, mtime_ms: id.mtimeMs } };
  const tmp = tempSibling(join(dir, CONFIG_FILE), 'tmp');
  try {
    await writeFile(tmp, `${JSON.stringify(updated, null, 2)}\n`);
    await rename(tmp, join(dir, CONFIG_FILE));
  } catch {
    // Read-only model dirs are fine: the stamp is only a shortcut.
    await rm(tmp, { force: true }).catch(() => {});
  }
}

/** Only the architecture fields (drops extras such as a fixture's `embedDim`). */
function pickConfig(c: ImageRewardConfig): ImageRewardConfig {
  return { vision: { ...c.vision }, text: { ...c.text }, mlp: [...c.mlp] };
}

export async function convertCheckpoint(opts: ConvertOptions): Promise<ConvertResult> {
  const config = pickConfig(opts.config ?? IMAGEREWARD_CONFIG);
  checkConfig(config);
  const progress = opts.onProgress ?? (() => {});
  const checkpointPath = resolve(opts.checkpoint);
  const out = resolve(opts.out);
  const vocabPath = resolve(opts.vocab ?? defaultVocabPath());

  const ckStat = await stat(checkpointPath).catch((err: NodeJS.ErrnoException) => {
    throw new ConvertError(`checkpoint ${opts.checkpoint} not found (${err.code ?? err.message})`, 'convert_no_checkpoint', { cause: err });
  });
  if (!ckStat.isFile()) throw new ConvertError(`checkpoint ${opts.checkpoint} is not a file`, 'convert_no_checkpoint');
  // The vocab must be readable too before anything is written.
  const vocabStat = await stat(vocabPath).catch((err: NodeJS.ErrnoException) => {
    throw new ConvertError(`vocab ${vocabPath} not found (${err.code ?? err.message})`, 'convert_no_checkpoint', { cause: err });
  });
  if (!vocabStat.isFile()) throw new ConvertError(`vocab ${vocabPath} is not a file`, 'convert_no_checkpoint');

  const identity: SourceIdentity = { path: checkpointPath, bytes: ckStat.size, mtimeMs: ckStat.mtimeMs };
  let outStat = await stat(out).catch(() => undefined);
  // Unchanged file already converted here: no need to hash 1.8 GB again.
  if (outStat?.isDirectory() && (await isSameConversion(out, identity, config, opts.modelId))) {
    progress({ phase: 'up-to-date', dir: out });
    return { dir: out, converted: false };
  }

  progress({ phase: 'hashing', file: checkpointPath, bytes: ckStat.size });
  const sha256 = await hashFile(checkpointPath);
  const modelId = opts.modelId ?? (sha256 === IMAGEREWARD_V1_SHA256 ? MODEL_ID : basename(checkpointPath, extname(checkpointPath)));

  outStat = await stat(out).catch(() => undefined);
  if (outStat) {
    if (!outStat.isDirectory()) throw new ConvertError(`${out} exists and is not a directory`, 'convert_out_not_dir');
    if (await isSameConversion(out, { ...identity, sha256 }, config, opts.modelId)) {
      await restampSource(out, identity);
      progress({ phase: 'up-to-date', dir: out });
      return { dir: out, converted: false };
    }
    if (!opts.force) {
      throw new ConvertError(`${out} already exists and does not hold this checkpoint's conversion; pass --force to replace it`, 'convert_out_exists');
    }
  }

  const ckpt = await openCheckpoint(checkpointPath);
  let tmp: string | undefined;
  try {
    const specs = requiredTensors(config);
    progress({ phase: 'validating', tensors: specs.length });
    validateCheckpoint(ckpt.tensors, config);
    // Guard against a config/architecture drift: nothing needed may be an "unused" tensor.
    const kept = specs.filter((s) => !isUnused(s.name));

    await mkdir(dirname(out), { recursive: true });
    await removeStaleTemps(out);
    tmp = tempSibling(out, 'tmp');
    await mkdir(tmp);
    const bytes = kept.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1) * 4, 0);
    progress({ phase: 'writing', dir: out, tensors: kept.length, bytes });
    let index = 0;
    await writeSafetensors(
      join(tmp, WEIGHTS_FILE),
      kept,
      async (spec) => {
        progress({ phase: 'tensor', index: index++, tensors: kept.length, name: spec.name });
        return ckpt.readTensor(spec.name);
      },
      { format: 'pt', source_sha256: sha256, model_id: modelId },
    );
    await writeModelDirMeta(tmp, vocabPath, {
      model_id: modelId,
      config,
      tensors: kept.length,
      source: { file: basename(checkpointPath), bytes: ckStat.size, sha256, path: checkpointPath, mtime_ms: ckStat.mtimeMs },
    });
    await ckpt.close();
    await installDir(tmp, out, MODEL_DIR_FILES, outStat !== undefined);
    tmp = undefined;
    progress({ phase: 'done', dir: out });
    return { dir: out, converted: true };
  } catch (err) {
    await ckpt.close().catch(() => {});
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

/** Leftover `<out>.tmp-*` / `<out>.old-*` siblings (e.g. from a killed run); for diagnostics and tests. */
export async function strayTempDirs(out: string): Promise<string[]> {
  const abs = resolve(out);
  const base = basename(abs);
  const names = await readdir(dirname(abs)).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith(`${base}.tmp-`) || n.startsWith(`${base}.old-`)).map((n) => join(dirname(abs), n));
}
