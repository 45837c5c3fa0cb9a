// The tensors ImageReward's scoring forward pass needs, named exactly as in the
// upstream state_dict (ImageReward.py wraps BLIP: `blip.visual_encoder` is
// BLIP's vit.py VisionTransformer, `blip.text_encoder` is med.py's BertModel
// with cross-attention and no pooler, `mlp.layers` is an nn.Sequential of
// Linear/Dropout whose Linear layers sit at indices 0, 2, 4, 6 and 7).
import type { DType } from './dtypes.js';
import type { TensorSpec } from './safetensors.js';

export interface VisionConfig {
  width: number;
  layers: number;
  heads: number;
  patch: number;
  image: number;
  mlpRatio: number;
}

export interface TextConfig {
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  vocab: number;
  maxPositions: number;
  /** Width of the image embeddings the cross-attention reads (the vision width). */
  encoderWidth: number;
}

export interface ImageRewardConfig {
  vision: VisionConfig;
  text: TextConfig;
  /** Widths through the reward head, text hidden first, 1 last: five Linear layers. */
  mlp: number[];
}

export const IMAGEREWARD_CONFIG: ImageRewardConfig = {
  vision: { width: 1024, layers: 24, heads: 16, patch: 16, image: 224, mlpRatio: 4 },
  text: { hidden: 768, layers: 12, heads: 12, intermediate: 3072, vocab: 30524, maxPositions: 512, encoderWidth: 1024 },
  mlp: [768, 1024, 128, 64, 16, 1],
};

/** Indices of the Linear layers inside upstream's `mlp.layers` Sequential. */
export const MLP_LINEAR_INDICES = [0, 2, 4, 6, 7] as const;

/** In the upstream checkpoint but not used for scoring. */
export const UNUSED_TENSOR_PREFIXES = ['blip.vision_proj.', 'blip.text_proj.', 'blip.text_encoder.embeddings.position_ids'] as const;

export class CheckpointValidationError extends Error {
  override name = 'CheckpointValidationError';
}

function positive(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v <= 0) throw new CheckpointValidationError(`config ${what} must be a positive integer (got ${v})`);
}

export function checkConfig(c: ImageRewardConfig): void {
  for (const [k, v] of Object.entries(c.vision)) positive(v, `vision.${k}`);
  for (const [k, v] of Object.entries(c.text)) positive(v, `text.${k}`);
  if (c.vision.width % c.vision.heads !== 0) throw new CheckpointValidationError('config vision.width must be divisible by vision.heads');
  if (c.text.hidden % c.text.heads !== 0) throw new CheckpointValidationError('config text.hidden must be divisible by text.heads');
  if (c.vision.image % c.vision.patch !== 0) throw new CheckpointValidationError('config vision.image must be divisible by vision.patch');
  if (c.text.encoderWidth !== c.vision.width) throw new CheckpointValidationError('config text.encoderWidth must equal vision.width');
  if (c.mlp.length !== MLP_LINEAR_INDICES.length + 1) {
    throw new CheckpointValidationError(`config mlp must list ${MLP_LINEAR_INDICES.length + 1} widths (got ${c.mlp.length})`);
  }
  c.mlp.forEach((v, i) => positive(v, `mlp[${i}]`));
  if (c.mlp[0] !== c.text.hidden) throw new CheckpointValidationError('config mlp[0] must equal text.hidden');
  if (c.mlp[c.mlp.length - 1] !== 1) throw new CheckpointValidationError('config mlp must end in 1');
}

/** Every tensor the forward pass reads, with its expected shape (all float32 upstream). */
export function requiredTensors(c: ImageRewardConfig, dtype: DType = 'F32'): TensorSpec[] {
  checkConfig(c);
  const out: TensorSpec[] = [];
  const add = (name: string, ...shape: number[]): void => {
    out.push({ name, dtype, shape });
  };
  const linear = (prefix: string, outF: number, inF: number): void => {
    add(`${prefix}.weight`, outF, inF);
    add(`${prefix}.bias`, outF);
  };
  const norm = (prefix: string, n: number): void => {
    add(`${prefix}.weight`, n);
    add(`${prefix}.bias`, n);
  };

  const v = c.vision;
  const patches = (v.image / v.patch) ** 2;
  const vp = 'blip.visual_encoder';
  add(`${vp}.cls_token`, 1, 1, v.width);
  add(`${vp}.pos_embed`, 1, patches + 1, v.width);
  add(`${vp}.patch_embed.proj.weight`, v.width, 3, v.patch, v.patch);
  add(`${vp}.patch_embed.proj.bias`, v.width);
  for (let i = 0; i < v.layers; i++) {
    const b = `${vp}.blocks.${i}`;
    norm(`${b}.norm1`, v.width);
    linear(`${b}.attn.qkv`, 3 * v.width, v.width);
    linear(`${b}.attn.proj`, v.width, v.width);
    norm(`${b}.norm2`, v.width);
    linear(`${b}.mlp.fc1`, v.width * v.mlpRatio, v.width);
    linear(`${b}.mlp.fc2`, v.width, v.width * v.mlpRatio);
  }
  norm(`${vp}.norm`, v.width);

  const t = c.text;
  const tp = 'blip.text_encoder';
  add(`${tp}.embeddings.word_embeddings.weight`, t.vocab, t.hidden);
  add(`${tp}.embeddings.position_embeddings.weight`, t.maxPositions, t.hidden);
  norm(`${tp}.embeddings.LayerNorm`, t.hidden);
  for (let i = 0; i < t.layers; i++) {
    const b = `${tp}.encoder.layer.${i}`;
    linear(`${b}.attention.self.query`, t.hidden, t.hidden);
    linear(`${b}.attention.self.key`, t.hidden, t.hidden);
    linear(`${b}.attention.self.value`, t.hidden, t.hidden);
    linear(`${b}.attention.output.dense`, t.hidden, t.hidden);
    norm(`${b}.attention.output.LayerNorm`, t.hidden);
    linear(`${b}.crossattention.self.query`, t.hidden, t.hidden);
    linear(`${b}.crossattention.self.key`, t.hidden, t.encoderWidth);
    linear(`${b}.crossattention.self.value`, t.hidden, t.encoderWidth);
    linear(`${b}.crossattention.output.dense`, t.hidden, t.hidden);
    norm(`${b}.crossattention.output.LayerNorm`, t.hidden);
    linear(`${b}.intermediate.dense`, t.intermediate, t.hidden);
    linear(`${b}.output.dense`, t.hidden, t.intermediate);
    norm(`${b}.output.LayerNorm`, t.hidden);
  }

  MLP_LINEAR_INDICES.forEach((idx, i) => linear(`mlp.layers.${idx}`, c.mlp[i + 1]!, c.mlp[i]!));
  return out;
}

export interface TensorDescription {
  name: string;
  dtype: DType;
  shape: readonly number[];
}

/** Throws CheckpointValidationError naming the first needed tensor that is missing or has the wrong shape or dtype. */
export function validateCheckpoint(tensors: readonly TensorDescription[], c: ImageRewardConfig, dtype: DType = 'F32'): void {
  const have = new Map(tensors.map((t) => [t.name, t]));
  for (const want of requiredTensors(c, dtype)) {
    const got = have.get(want.name);
    if (!got) throw new CheckpointValidationError(`checkpoint is missing tensor ${want.name} (expected ${want.dtype} ${JSON.stringify(want.shape)})`);
    if (got.shape.length !== want.shape.length || got.shape.some((d, i) => d !== want.shape[i])) {
      throw new CheckpointValidationError(`tensor ${want.name} has shape ${JSON.stringify(got.shape)}, expected ${JSON.stringify(want.shape)}`);
    }
    if (got.dtype !== want.dtype) throw new CheckpointValidationError(`tensor ${want.name} has dtype ${got.dtype}, expected ${want.dtype}`);
  }
}
