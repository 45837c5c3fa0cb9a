// The torch.save checkpoint reader (zip + restricted unpickler + strided
// tensor reads) against fixtures written by real torch (see
// test/fixtures/checkpoint/generate.py): every tensor must come back bitwise
// identical to torch's own contiguous bytes, and malformed inputs must fail
// with a CheckpointError, never crash.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CheckpointValidationError,
  IMAGEREWARD_CONFIG,
  requiredTensors,
  validateCheckpoint,
  type ImageRewardConfig,
} from '../../gpu-service/model/architecture.js';
import { CheckpointError, openCheckpoint } from '../../gpu-service/model/checkpoint.js';
import { numelOf } from '../../gpu-service/model/dtypes.js';
import { PickleError, PyDict, torchPersistentLoad, unpickle } from '../../gpu-service/model/pickle.js';
import { ZipReader } from '../../gpu-service/model/zip.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/checkpoint');
const TINY = join(FIXTURES, 'tiny.pt');
const STRIDED = join(FIXTURES, 'strided.pt');

interface Expected {
  archiveTop: string;
  config?: ImageRewardConfig & { embedDim: number };
  tensors: { name: string; dtype: string; shape: number[]; strides: number[]; sha256: string }[];
}
const tinyExpected = JSON.parse(readFileSync(join(FIXTURES, 'tiny.expected.json'), 'utf8')) as Expected;
const stridedExpected = JSON.parse(readFileSync(join(FIXTURES, 'strided.expected.json'), 'utf8')) as Expected;
const TINY_CONFIG: ImageRewardConfig = (() => {
  const c = tinyExpected.config!;
  return { vision: c.vision, text: c.text, mlp: c.mlp };
})();

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const tmp = mkdtempSync(join(tmpdir(), 'checkpoint-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let tmpCount = 0;
function tmpFile(data: Uint8Array): string {
  const p = join(tmp, `f${tmpCount++}.bin`);
  writeFileSync(p, data);
  return p;
}

// A small zip writer for building malformed/variant archives in tests.
interface ZipInput {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
}
function buildZip(entries: ZipInput[], opts: { zip64?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const body = e.deflate ? deflateRawSync(e.data) : Buffer.from(e.data);
    const method = e.deflate ? 8 : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(opts.zip64 ? 45 : 20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    parts.push(local, name, body);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(45, 4);
    cd.writeUInt16LE(45, 6);
    cd.writeUInt16LE(method, 10);
    let extra = Buffer.alloc(0);
    if (opts.zip64) {
      cd.writeUInt32LE(0xffffffff, 20);
      cd.writeUInt32LE(0xffffffff, 24);
      cd.writeUInt32LE(0xffffffff, 42);
      extra = Buffer.alloc(28);
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(e.data.length), 4);
      extra.writeBigUInt64LE(BigInt(body.length), 12);
      extra.writeBigUInt64LE(BigInt(offset), 20);
    } else {
      cd.writeUInt32LE(body.length, 20);
      cd.writeUInt32LE(e.data.length, 24);
      cd.writeUInt32LE(offset, 42);
    }
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt16LE(extra.length, 30);
    central.push(cd, name, extra);
    offset += local.length + name.length + body.length;
  }
  const cdBuf = Buffer.concat(central);
  const cdOffset = offset;
  const tail: Buffer[] = [cdBuf];
  if (opts.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(entries.length), 24);
    rec.writeBigUInt64LE(BigInt(entries.length), 32);
    rec.writeBigUInt64LE(BigInt(cdBuf.length), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(cdOffset + cdBuf.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : entries.length, 8);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : entries.length, 10);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cdBuf.length, 12);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cdOffset, 16);
  tail.push(eocd);
  return Buffer.concat([...parts, ...tail]);
}

/** Every entry of a zip file, via our reader. */
async function zipEntries(path: string): Promise<ZipInput[]> {
  const fh = await open(path, 'r');
  try {
    const zip = await ZipReader.open(fh);
    const out: ZipInput[] = [];
    for (const e of zip.entries.values()) out.push({ name: e.name, data: await zip.readSmall(e) });
    return out;
  } finally {
    await fh.close();
  }
}

async function expectAllTensorsMatch(path: string, expected: Expected): Promise<void> {
  const ckpt = await openCheckpoint(path);
  try {
    expect(ckpt.tensors.map((t) => t.name)).toEqual(expected.tensors.map((t) => t.name));
    for (const want of expected.tensors) {
      const t = ckpt.get(want.name);
      expect({ dtype: t.dtype, shape: t.shape, strides: t.strides }, want.name).toEqual({
        dtype: want.dtype,
        shape: want.shape,
        strides: want.strides,
      });
      const bytes = await ckpt.readTensor(want.name);
      expect(sha256(bytes), want.name).toBe(want.sha256);
    }
  } finally {
    await ckpt.close();
  }
}

async function expectCheckpointError(path: string, message: RegExp): Promise<void> {
  const err = await openCheckpoint(path).then(
    async (c) => {
      await c.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CheckpointError);
  expect((err as Error).message).toMatch(message);
}

describe('openCheckpoint on torch.save fixtures', () => {
  it('reads every tensor of tiny.pt bitwise identical to torch', async () => {
    await expectAllTensorsMatch(TINY, tinyExpected);
  });

  it('finds the archive root from data.pkl, not from the file name', async () => {
    const ckpt = await openCheckpoint(TINY);
    try {
      expect(ckpt.archiveRoot).toBe(tinyExpected.archiveTop);
      expect(ckpt.archiveRoot).not.toBe('tiny');
    } finally {
      await ckpt.close();
    }
  });

  it('honours the stride-0 position_ids buffer', async () => {
    const ckpt = await openCheckpoint(TINY);
    try {
      const t = ckpt.get('blip.text_encoder.embeddings.position_ids');
      expect(t.dtype).toBe('I64');
      expect(t.strides).toEqual([0, 1]);
      const b = await ckpt.readTensor(t.name);
      const n = TINY_CONFIG.text.maxPositions;
      expect(Array.from(new BigInt64Array(b.buffer, b.byteOffset, n))).toEqual(Array.from({ length: n }, (_, i) => BigInt(i)));
    } finally {
      await ckpt.close();
    }
  });

  it('handles transposed, offset, broadcast, scalar, empty and non-float tensors', async () => {
    await expectAllTensorsMatch(STRIDED, stridedExpected);
    const ckpt = await openCheckpoint(STRIDED);
    try {
      const b = await ckpt.readTensor('broadcast');
      expect(Array.from(new Float32Array(b.buffer, b.byteOffset, 12))).toEqual([1.5, -2, 3.25, 1.5, -2, 3.25, 1.5, -2, 3.25, 1.5, -2, 3.25]);
      const tr = await ckpt.readTensor('transposed');
      expect(Array.from(new Float32Array(tr.buffer, tr.byteOffset, 24)).slice(0, 5)).toEqual([0, 6, 12, 18, 1]);
      const off = ckpt.get('offset_slice');
      expect(off.storageOffset).toBe(8);
      expect(off.storageKey).toBe(ckpt.get('transposed').storageKey);
      expect((await ckpt.readTensor('empty')).length).toBe(0);
    } finally {
      await ckpt.close();
    }
  });

  it('reads a protocol-4 pickle (FRAME, MEMOIZE, STACK_GLOBAL)', async () => {
    const p4 = JSON.parse(readFileSync(join(FIXTURES, 'strided_p4.expected.json'), 'utf8')) as Expected;
    expect(p4.tensors.map((t) => t.sha256)).toEqual(stridedExpected.tensors.map((t) => t.sha256));
    await expectAllTensorsMatch(join(FIXTURES, 'strided_p4.pt'), p4);
  });

  it('reads a ZIP64 archive with a deflated data.pkl', async () => {
    const entries = await zipEntries(TINY);
    const repacked = buildZip(
      entries.map((e) => ({ ...e, deflate: e.name.endsWith('/data.pkl') })),
      { zip64: true },
    );
    await expectAllTensorsMatch(tmpFile(repacked), tinyExpected);
  });
});

describe('validateCheckpoint', () => {
  it('accepts tiny.pt against the tiny config', async () => {
    const ckpt = await openCheckpoint(TINY);
    try {
      expect(() => validateCheckpoint(ckpt.tensors, TINY_CONFIG)).not.toThrow();
      // everything in the checkpoint except the unused projections and the position_ids buffer is needed
      expect(requiredTensors(TINY_CONFIG)).toHaveLength(ckpt.tensors.length - 5);
    } finally {
      await ckpt.close();
    }
  });

  it('describes the real ImageReward checkpoint: 620 of its 625 entries, 446.2M params', () => {
    const req = requiredTensors(IMAGEREWARD_CONFIG);
    expect(req).toHaveLength(620);
    expect(req.reduce((s, t) => s + numelOf(t.shape), 0)).toBe(446_206_689);
    const names = new Set(req.map((t) => t.name));
    for (const n of [
      'blip.visual_encoder.cls_token',
      'blip.visual_encoder.blocks.23.attn.qkv.weight',
      'blip.text_encoder.encoder.layer.11.crossattention.self.key.weight',
      'mlp.layers.7.bias',
    ]) {
      expect(names.has(n), n).toBe(true);
    }
    expect(req.find((t) => t.name === 'blip.text_encoder.encoder.layer.0.crossattention.self.key.weight')?.shape).toEqual([768, 1024]);
    expect(req.find((t) => t.name === 'blip.visual_encoder.pos_embed')?.shape).toEqual([1, 197, 1024]);
  });

  it('names a missing tensor', async () => {
    const ckpt = await openCheckpoint(TINY);
    await ckpt.close();
    const tensors = ckpt.tensors.filter((t) => t.name !== 'blip.text_encoder.encoder.layer.1.crossattention.self.value.bias');
    expect(() => validateCheckpoint(tensors, TINY_CONFIG)).toThrow(CheckpointValidationError);
    expect(() => validateCheckpoint(tensors, TINY_CONFIG)).toThrow(/missing tensor blip\.text_encoder\.encoder\.layer\.1\.crossattention\.self\.value\.bias/);
  });

  it('names a mis-shaped or mistyped tensor', async () => {
    const ckpt = await openCheckpoint(TINY);
    await ckpt.close();
    const misShaped = ckpt.tensors.map((t) => (t.name === 'mlp.layers.4.weight' ? { ...t, shape: [8, 9] } : t));
    expect(() => validateCheckpoint(misShaped, TINY_CONFIG)).toThrow(/mlp\.layers\.4\.weight has shape \[8,9\], expected \[8,8\]/);
    const misTyped = ckpt.tensors.map((t) => (t.name === 'blip.visual_encoder.norm.bias' ? { ...t, dtype: 'F16' as const } : t));
    expect(() => validateCheckpoint(misTyped, TINY_CONFIG)).toThrow(/norm\.bias has dtype F16, expected F32/);
    // the tiny checkpoint is not the real model
    expect(() => validateCheckpoint(ckpt.tensors, IMAGEREWARD_CONFIG)).toThrow(/blip\.visual_encoder\.cls_token has shape \[1,1,32\], expected \[1,1,1024\]/);
  });
});

describe('malformed checkpoints', () => {
  const tiny = readFileSync(TINY);

  it('rejects truncated files', async () => {
    for (const len of [0, 3, 100, Math.floor(tiny.length / 2), tiny.length - 1]) {
      await expectCheckpointError(tmpFile(tiny.subarray(0, len)), /not a zip|truncated|end-of-central-directory/);
    }
  });

  it('rejects a zip whose tensor data was cut off', async () => {
    const entries = await zipEntries(TINY);
    const cut = entries.map((e) => (e.name.endsWith('/data/0') ? { ...e, data: e.data.subarray(0, 4) } : e));
    await expectCheckpointError(tmpFile(buildZip(cut)), /storage .*data\/0/);
  });

  it('rejects random bytes', async () => {
    let s = 12345;
    const rnd = Buffer.alloc(4096);
    for (let i = 0; i < rnd.length; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      rnd[i] = s >>> 24;
    }
    await expectCheckpointError(tmpFile(rnd), /not a zip/);
  });

  it('says so for the legacy (pre-zip) torch format', async () => {
    const legacy = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e, 0, 0, 0]);
    await expectCheckpointError(tmpFile(legacy), /legacy .*torch < 1\.6/);
  });

  it('rejects a zip without data.pkl', async () => {
    await expectCheckpointError(tmpFile(buildZip([{ name: 'model/version', data: Buffer.from('3\n') }])), /no <top>\/data\.pkl/);
  });

  it('rejects compressed tensor storage', async () => {
    const entries = await zipEntries(TINY);
    const zipped = entries.map((e) => ({ ...e, deflate: e.name.endsWith('/data/3') }));
    await expectCheckpointError(tmpFile(buildZip(zipped)), /compression method 8; tensor data must be stored/);
  });

  it('refuses a pickle that names a forbidden global', async () => {
    // PROTO 2; GLOBAL os.system; MARK; BINUNICODE 'echo hi'; TUPLE; REDUCE; STOP
    const cmd = Buffer.from('echo hi');
    const lenBuf = Buffer.alloc(4);
    lenBuf.writeUInt32LE(cmd.length);
    const evil = Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.from('cos\nsystem\n('), Buffer.from('X'), lenBuf, cmd, Buffer.from('tR.')]);
    await expectCheckpointError(tmpFile(buildZip([{ name: 'x/data.pkl', data: evil }])), /forbidden global in pickle: os\.system/);
    expect(() => unpickle(evil, { persistentLoad: torchPersistentLoad })).toThrow(PickleError);
    // builtins are no better, via STACK_GLOBAL either
    const sg = Buffer.concat([Buffer.from([0x80, 0x04, 0x8c, 8]), Buffer.from('builtins'), Buffer.from([0x8c, 4]), Buffer.from('eval'), Buffer.from([0x93, 0x2e])]);
    expect(() => unpickle(sg, { persistentLoad: torchPersistentLoad })).toThrow(/forbidden global in pickle: builtins\.eval/);
  });

  it('keeps the state_dict _metadata set by BUILD', async () => {
    const entries = await zipEntries(TINY);
    const pkl = entries.find((e) => e.name.endsWith('/data.pkl'))!;
    const v = unpickle(pkl.data, { persistentLoad: torchPersistentLoad });
    expect(v).toBeInstanceOf(PyDict);
    expect((v as PyDict).ordered).toBe(true);
    expect((v as PyDict).attrs.get('_metadata')).toBeInstanceOf(PyDict);
  });

  it('never crashes on corrupted pickles (fuzz)', async () => {
    const entries = await zipEntries(STRIDED);
    const idx = entries.findIndex((e) => e.name.endsWith('/data.pkl'));
    const pkl = Buffer.from(entries[idx]!.data);
    let s = 987654321;
    const next = (): number => {
      s = (s * 1664525 + 1013904223) >>> 0;
      return s;
    };
    for (let iter = 0; iter < 300; iter++) {
      const mutated = Buffer.from(pkl);
      const flips = 1 + (next() % 4);
      for (let f = 0; f < flips; f++) mutated[next() % mutated.length] = next() & 0xff;
      const copy = entries.map((e, i) => (i === idx ? { ...e, data: mutated } : e));
      const path = tmpFile(buildZip(copy));
      try {
        const ckpt = await openCheckpoint(path);
        try {
          for (const t of ckpt.tensors) await ckpt.readTensor(t.name);
        } finally {
          await ckpt.close();
        }
      } catch (err) {
        expect(err, String(err)).toBeInstanceOf(CheckpointError);
      }
    }
  });
});
