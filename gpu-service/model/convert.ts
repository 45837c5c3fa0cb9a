// ImageReward.pt (torch.save zip state_dict) → a model directory
// (model.safetensors + config.json + vocab.txt; see model-dir.ts).
// Every needed tensor is validated before anything is written; tensors are
// streamed one at a time; the directory appears atomically (temp dir beside
// the target, fsync, rename) or not at all.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { IMAGEREWARD_CONFIG, UNUSED_TENSOR_PREFIXES, checkConfig, requiredTensors, validateCheckpoint, type ImageRewardConfig } from './architecture.js';
import { openCheckpoint } from './checkpoint.js';
import { hashFile } from './fetch.js';
import { writeSafetensors } from './safetensors.js';
import {
  CONFIG_FILE,
  MODEL_DIR_FILES,
  MODEL_DIR_FORMAT,
  MODEL_DIR_FORMAT_VERSION,
  MODEL_ID,
  REWARD_NORMALIZATION,
  VOCAB_FILE,
  WEIGHTS_FILE,
  readModelDirConfig,
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

function tempSibling(target: string, tag: string): string {
  return `${target}.${tag}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } catch (err) {
    // Some filesystems refuse fsync on directories; file data is what matters.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw err;
  } finally {
    await fh.close();
  }
}

/** True when `dir` holds every model-dir file and its config.json records `sha256` and `config`. */
async function isSameConversion(dir: string, sha256: string, config: ImageRewardConfig): Promise<boolean> {
  let existing: ModelDirConfig;
  try {
    existing = await readModelDirConfig(dir);
  } catch {
    return false;
  }
  if (existing.source.sha256 !== sha256) return false;
  if (JSON.stringify(existing.config) !== JSON.stringify(config)) return false;
  for (const f of MODEL_DIR_FILES) {
    const s = await stat(join(dir, f)).catch(() => undefined);
    if (!s?.isFile()) return false;
  }
  return true;
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

  progress({ phase: 'hashing', file: checkpointPath, bytes: ckStat.size });
  const sha256 = await hashFile(checkpointPath);

  const outStat = await stat(out).catch(() => undefined);
  if (outStat) {
    if (!outStat.isDirectory()) throw new ConvertError(`${out} exists and is not a directory`, 'convert_out_not_dir');
    if (await isSameConversion(out, sha256, config)) {
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
      { format: 'pt', source_sha256: sha256, model_id: MODEL_ID },
    );
    await copyFile(vocabPath, join(tmp, VOCAB_FILE));
    const dirConfig: ModelDirConfig = {
      format: MODEL_DIR_FORMAT,
      format_version: MODEL_DIR_FORMAT_VERSION,
      model_id: MODEL_ID,
      config,
      normalization: { ...REWARD_NORMALIZATION },
      dtype: 'F32',
      tensors: kept.length,
      source: { file: basename(checkpointPath), bytes: ckStat.size, sha256 },
      vocab: { file: VOCAB_FILE, sha256: await hashFile(vocabPath) },
    };
    await writeFile(join(tmp, CONFIG_FILE), `${JSON.stringify(dirConfig, null, 2)}\n`);
    for (const f of MODEL_DIR_FILES) await fsyncPath(join(tmp, f));
    await fsyncPath(tmp);
    await ckpt.close();

    if (outStat) {
      // Replace: move the old one aside, move the new one in, then delete the old.
      const old = tempSibling(out, 'old');
      await rename(out, old);
      try {
        await rename(tmp, out);
      } catch (err) {
        await rename(old, out).catch(() => {});
        throw err;
      }
      tmp = undefined;
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, out);
      tmp = undefined;
    }
    await fsyncPath(dirname(out));
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
