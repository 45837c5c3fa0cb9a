// `imagereward convert`: ImageReward.pt → model directory. Against the tiny
// real-torch fixture: tensors bitwise equal to torch's bytes, config.json and
// vocab.txt as specified, unused tensors dropped, idempotent re-runs, --force
// replacement, and failures (validation, truncation) leaving nothing behind.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, truncate, copyFile, writeFile, mkdir, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointValidationError, IMAGEREWARD_CONFIG, UNUSED_TENSOR_PREFIXES, requiredTensors, type ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { CheckpointError } from '../../gpu-service/model/checkpoint.js';
import { ConvertError, convertCheckpoint, strayTempDirs, type ConvertProgress } from '../../gpu-service/model/convert.js';
import { MODEL_ID, REWARD_NORMALIZATION, readModelDirConfig } from '../../gpu-service/model/model-dir.js';
import { openSafetensors } from '../../gpu-service/model/safetensors.js';
import { defaultVocabPath } from '../../gpu-service/tokenizer.js';
import { convertCommand } from '../../gpu-service/cli/convert.js';
import type { Io } from '../../gpu-service/cli/io.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/checkpoint');
const TINY = join(FIXTURES, 'tiny.pt');
const TINY_EXPECTED = join(FIXTURES, 'tiny.expected.json');
const TINY224 = join(FIXTURES, 'tiny224.pt');

interface Expected {
  config: ImageRewardConfig & { embedDim: number };
  tensors: { name: string; dtype: string; shape: number[]; sha256: string }[];
}
const expected = JSON.parse(readFileSync(TINY_EXPECTED, 'utf8')) as Expected;
const TINY_CONFIG: ImageRewardConfig = { vision: expected.config.vision, text: expected.config.text, mlp: expected.config.mlp };
const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ir-convert-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

let n = 0;
async function freshDir(): Promise<string> {
  const d = join(work, `case-${n++}`);
  await mkdir(d);
  return d;
}

function capture(): Io & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout(t: string) {
      io.out += t;
    },
    stderr(t: string) {
      io.err += t;
    },
  };
  return io;
}

describe('convertCheckpoint', () => {
  it('writes bitwise-equal fp32 tensors, config.json and vocab.txt, dropping unused tensors', async () => {
    const out = join(await freshDir(), 'model');
    const events: ConvertProgress[] = [];
    const r = await convertCheckpoint({ checkpoint: TINY, out, config: TINY_CONFIG, onProgress: (p) => events.push(p) });
    expect(r).toEqual({ dir: out, converted: true });
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'vocab.txt']);

    const st = await openSafetensors(join(out, 'model.safetensors'));
    try {
      const required = requiredTensors(TINY_CONFIG);
      expect(st.tensors.map((t) => t.name).sort()).toEqual(required.map((t) => t.name).sort());
      const byName = new Map(expected.tensors.map((t) => [t.name, t]));
      for (const t of st.tensors) {
        expect(t.dtype).toBe('F32');
        const want = byName.get(t.name);
        expect(want, t.name).toBeDefined();
        expect(t.shape).toEqual(want!.shape);
        expect(sha(await st.read(t.name)), t.name).toBe(want!.sha256);
        expect(UNUSED_TENSOR_PREFIXES.some((p) => t.name.startsWith(p))).toBe(false);
      }
      // The fixture does hold the unused tensors; they were dropped.
      expect(expected.tensors.some((t) => t.name === 'blip.vision_proj.weight')).toBe(true);
      expect(expected.tensors.some((t) => t.name === 'blip.text_encoder.embeddings.position_ids')).toBe(true);
    } finally {
      await st.close();
    }

    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({
      format: 'imagereward-model-dir',
      format_version: 1,
      // Not the released file (by sha256): labelled by its file name, never as the release.
      model_id: 'tiny',
      config: TINY_CONFIG,
      normalization: { mean: 0.16717362830052426, std: 1.0333394966054072 },
      dtype: 'F32',
      tensors: requiredTensors(TINY_CONFIG).length,
      source: { file: 'tiny.pt', bytes: (await stat(TINY)).size, sha256: sha(readFileSync(TINY)), path: TINY, mtime_ms: (await stat(TINY)).mtimeMs },
    });
    expect((config.config as Record<string, unknown>).embedDim).toBeUndefined();
    expect(MODEL_ID).toBe('ImageReward-v1.0');
    expect(REWARD_NORMALIZATION.mean).toBe(0.16717362830052426);
    expect((await readModelDirConfig(out)).source.sha256).toBe(sha(readFileSync(TINY)));

    expect(sha(await readFile(join(out, 'vocab.txt')))).toBe(sha(await readFile(defaultVocabPath())));
    expect(await strayTempDirs(out)).toEqual([]);

    const phases = events.map((e) => e.phase).filter((p) => p !== 'tensor');
    expect(phases).toEqual(['hashing', 'validating', 'writing', 'done']);
    expect(events.filter((e) => e.phase === 'tensor')).toHaveLength(requiredTensors(TINY_CONFIG).length);
  });

  it('a second run on the same checkpoint is a no-op', async () => {
    const out = join(await freshDir(), 'model');
    await convertCheckpoint({ checkpoint: TINY, out, config: TINY_CONFIG });
    const before = await Promise.all(['model.safetensors', 'config.json', 'vocab.txt'].map(async (f) => (await stat(join(out, f))).mtimeMs));
    const dirIno = (await stat(out)).ino;
    await new Promise((r) => setTimeout(r, 20));
    const r = await convertCheckpoint({ checkpoint: TINY, out, config: TINY_CONFIG });
    expect(r).toEqual({ dir: out, converted: false });
    const after = await Promise.all(['model.safetensors', 'config.json', 'vocab.txt'].map(async (f) => (await stat(join(out, f))).mtimeMs));
    expect(after).toEqual(before);
    expect((await stat(out)).ino).toBe(dirIno);
  });

  it('skips re-hashing an unchanged checkpoint; a moved or touched copy is hashed once, then re-stamped', async () => {
    const dir = await freshDir();
    const pt = join(dir, 'copy.pt');
    await copyFile(TINY, pt);
    const out = join(dir, 'model');
    await convertCheckpoint({ checkpoint: pt, out, config: TINY_CONFIG });
    const phases = async (checkpoint: string) => {
      const events: string[] = [];
      const r = await convertCheckpoint({ checkpoint, out, config: TINY_CONFIG, onProgress: (p) => events.push(p.phase) });
      expect(r.converted).toBe(false);
      return events;
    };
    expect(await phases(pt)).toEqual(['up-to-date']);
    // Same bytes, new mtime: hashed (it could have changed), found identical, re-stamped.
    await utimes(pt, new Date(), new Date(Date.now() + 5000));
    expect(await phases(pt)).toEqual(['hashing', 'up-to-date']);
    expect((await readModelDirConfig(out)).source.mtime_ms).toBe((await stat(pt)).mtimeMs);
    expect(await phases(pt)).toEqual(['up-to-date']);
    // Another checkpoint is not mistaken for it.
    const other = join(dir, 'other.pt');
    await copyFile(TINY224, other);
    await expect(convertCheckpoint({ checkpoint: other, out, config: TINY_CONFIG })).rejects.toMatchObject({ code: 'convert_out_exists' });
  });

  it('records an explicit model id, and a different id is a different conversion', async () => {
    const out = join(await freshDir(), 'model');
    await convertCheckpoint({ checkpoint: TINY, out, config: TINY_CONFIG, modelId: 'my-finetune' });
    expect((await readModelDirConfig(out)).model_id).toBe('my-finetune');
    await expect(convertCheckpoint({ checkpoint: TINY, out, config: TINY_CONFIG, modelId: 'other' })).rejects.toMatchObject({ code: 'convert_out_exists' });
    expect((await convertCheckpoint({ checkpoint: TINY, out, config: TINY_CONFIG })).converted).toBe(false);
  });

  it('refuses to overwrite a different directory without force, and replaces it with force', async () => {
    const out = join(await freshDir(), 'model');
    await mkdir(out);
    await writeFile(join(out, 'stale.txt'), 'old');
    await expect(convertCheckpoint({ checkpoint: TINY, out, config: TINY_CONFIG })).rejects.toMatchObject({ code: 'convert_out_exists' });
    expect(await readdir(out)).toEqual(['stale.txt']);

    const r = await convertCheckpoint({ checkpoint: TINY, out, config: TINY_CONFIG, force: true });
    expect(r.converted).toBe(true);
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'vocab.txt']);
    expect(await strayTempDirs(out)).toEqual([]);

    // A conversion with a missing file is not "the same": force rewrites it.
    await rm(join(out, 'vocab.txt'));
    await expect(convertCheckpoint({ checkpoint: TINY, out, config: TINY_CONFIG })).rejects.toBeInstanceOf(ConvertError);
    expect((await convertCheckpoint({ checkpoint: TINY, out, config: TINY_CONFIG, force: true })).converted).toBe(true);
    expect(existsSync(join(out, 'vocab.txt'))).toBe(true);
  });

  it('a checkpoint failing validation leaves no out dir and no temp dirs', async () => {
    const out = join(await freshDir(), 'model');
    const err = await convertCheckpoint({ checkpoint: TINY, out, config: IMAGEREWARD_CONFIG }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointValidationError);
    expect((err as Error).message).toMatch(/^tensor blip\.visual_encoder\.cls_token has shape \[1,1,32\], expected \[1,1,1024\]/);
    expect(existsSync(out)).toBe(false);
    expect(await strayTempDirs(out)).toEqual([]);
    // default config is the full one
    await expect(convertCheckpoint({ checkpoint: TINY, out })).rejects.toBeInstanceOf(CheckpointValidationError);
    expect(existsSync(out)).toBe(false);
  });

  it('a failed --force replacement keeps the old directory', async () => {
    const out = join(await freshDir(), 'model');
    await mkdir(out);
    await writeFile(join(out, 'stale.txt'), 'old');
    await expect(convertCheckpoint({ checkpoint: TINY, out, force: true })).rejects.toBeInstanceOf(CheckpointValidationError);
    expect(await readdir(out)).toEqual(['stale.txt']);
    expect(await strayTempDirs(out)).toEqual([]);
  });

  it('a truncated checkpoint fails clearly and leaves nothing', async () => {
    const dir = await freshDir();
    const bad = join(dir, 'truncated.pt');
    await copyFile(TINY, bad);
    await truncate(bad, Math.floor((await stat(TINY)).size / 2));
    const out = join(dir, 'model');
    const err = await convertCheckpoint({ checkpoint: bad, out, config: TINY_CONFIG }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toContain('truncated.pt');
    expect(existsSync(out)).toBe(false);
    expect(await strayTempDirs(out)).toEqual([]);
  });

  it('a missing checkpoint is a ConvertError', async () => {
    const out = join(await freshDir(), 'model');
    await expect(convertCheckpoint({ checkpoint: join(work, 'nope.pt'), out })).rejects.toMatchObject({ code: 'convert_no_checkpoint' });
    expect(existsSync(out)).toBe(false);
  });
});

describe('convertCommand', () => {
  it('converts with --config, prints the dir on stdout and progress on stderr', async () => {
    const out = join(await freshDir(), 'model');
    const io = capture();
    expect(await convertCommand([TINY, '--out', out, '--config', TINY_EXPECTED], io)).toBe(0);
    expect(io.out).toBe(`${out}\n`);
    expect(io.err).toMatch(/hashing .*tiny\.pt/);
    expect(io.err).toMatch(/validating \d+ tensors/);
    expect(io.err).toMatch(new RegExp(`writing ${requiredTensors(TINY_CONFIG).length} tensors`));
    expect(existsSync(join(out, 'model.safetensors'))).toBe(true);

    const again = capture();
    expect(await convertCommand([TINY, '--out', out, '--config', TINY_EXPECTED], again)).toBe(0);
    expect(again.out).toBe(`${out}\n`);
    expect(again.err).toMatch(/nothing to do/);

    // A config file holding the bare {vision, text, mlp} is the same config:
    // --force on an identical conversion is still a no-op.
    const cfg = join(await freshDir(), 'tiny-config.json');
    await writeFile(cfg, JSON.stringify(TINY_CONFIG));
    const same = capture();
    expect(await convertCommand([TINY, '--out', out, '--config', cfg, '--force'], same)).toBe(0);
    expect(same.err).toMatch(/nothing to do/);

    // A directory holding something else: refused, then replaced with --force.
    await writeFile(join(out, 'config.json'), '{}');
    await expect(convertCommand([TINY, '--out', out, '--config', cfg], capture())).rejects.toMatchObject({
      exitCode: 1,
      code: 'convert_out_exists',
      message: expect.stringMatching(/--force/),
    });
    const forced = capture();
    expect(await convertCommand([TINY, '--out', out, '--config', cfg, '--force'], forced)).toBe(0);
    expect(forced.err).toMatch(/writing/);
    expect((await readModelDirConfig(out)).model_id).toBe('tiny');
  });

  it('fails with exit 1 and clear messages', async () => {
    const dir = await freshDir();
    const out = join(dir, 'model');
    await expect(convertCommand([join(dir, 'missing.pt'), '--out', out], capture())).rejects.toMatchObject({
      exitCode: 1,
      message: expect.stringMatching(/missing\.pt not found/),
    });
    await expect(convertCommand([TINY, '--out', out], capture())).rejects.toMatchObject({
      exitCode: 1,
      message: expect.stringMatching(/does not match the ImageReward architecture: tensor blip\.visual_encoder\.cls_token has shape/),
    });
    const notCkpt = join(dir, 'notes.pt');
    await writeFile(notCkpt, 'hello, not a checkpoint');
    await expect(convertCommand([notCkpt, '--out', out, '--config', TINY_EXPECTED], capture())).rejects.toMatchObject({
      exitCode: 1,
      message: expect.stringMatching(/not a zip archive/),
    });
    const badCfg = join(dir, 'bad.json');
    await writeFile(badCfg, '{"vision": {}, "text": {}, "mlp": [1]}');
    await expect(convertCommand([TINY, '--out', out, '--config', badCfg], capture())).rejects.toMatchObject({ exitCode: 1 });
    expect(existsSync(out)).toBe(false);
    expect(await strayTempDirs(out)).toEqual([]);
  });

  it('usage errors exit 2; --help documents the options', async () => {
    await expect(convertCommand([TINY], capture())).rejects.toMatchObject({ exitCode: 2 });
    await expect(convertCommand(['--out', 'x'], capture())).rejects.toMatchObject({ exitCode: 2 });
    await expect(convertCommand([TINY, 'extra', '--out', 'x'], capture())).rejects.toMatchObject({ exitCode: 2 });
    await expect(convertCommand([TINY, '--out', 'x', '--bogus'], capture())).rejects.toMatchObject({ exitCode: 2 });
    const io = capture();
    expect(await convertCommand(['--help'], io)).toBe(0);
    expect(io.out).toContain('--out <dir>');
    expect(io.out).toContain('--force');
    expect(io.out).toMatch(/--config <json>.*tests and custom sizes/s);
  });
});
