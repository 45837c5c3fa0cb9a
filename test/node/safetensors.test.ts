// Our safetensors writer/reader: round trips, header validation, and the
// tiny torch checkpoint converted to safetensors bitwise.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateCheckpoint, type ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { openCheckpoint } from '../../gpu-service/model/checkpoint.js';
import {
  SafetensorsError,
  buildSafetensorsHeader,
  openSafetensors,
  parseSafetensorsHeader,
  writeSafetensors,
  type TensorSpec,
} from '../../gpu-service/model/safetensors.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/checkpoint');
const tinyExpected = JSON.parse(readFileSync(join(FIXTURES, 'tiny.expected.json'), 'utf8')) as {
  config: ImageRewardConfig;
  tensors: { name: string; dtype: string; shape: number[]; sha256: string }[];
};
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const tmp = mkdtempSync(join(tmpdir(), 'safetensors-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const tmpPath = (): string => join(tmp, `t${n++}.safetensors`);

function bytesOf(seed: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  let s = seed;
  for (let i = 0; i < len; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    b[i] = s >>> 24;
  }
  return b;
}

/** A raw file: 8-byte length, header text (padded), data. */
function rawFile(header: string, data: Buffer, lengthOverride?: bigint): string {
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(h.length));
  const p = tmpPath();
  writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

async function openError(path: string): Promise<Error> {
  const r = await openSafetensors(path).then(
    async (f) => {
      await f.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(r).toBeInstanceOf(SafetensorsError);
  return r as Error;
}

describe('safetensors round trip', () => {
  const specs: TensorSpec[] = [
    { name: 'a.weight', dtype: 'F32', shape: [3, 5] },
    { name: 'b', dtype: 'F16', shape: [7] },
    { name: 'ids', dtype: 'I64', shape: [1, 4] },
    { name: 'scalar', dtype: 'F64', shape: [] },
    { name: 'empty', dtype: 'BF16', shape: [0, 3] },
    { name: 'mask', dtype: 'BOOL', shape: [3] },
    { name: 'q', dtype: 'U8', shape: [2, 2] },
  ];
  const sizes: Record<string, number> = { F32: 4, F16: 2, I64: 8, F64: 8, BF16: 2, BOOL: 1, U8: 1 };
  const data = new Map(specs.map((s, i) => [s.name, bytesOf(i + 1, s.shape.reduce((a, d) => a * d, 1) * sizes[s.dtype]!)]));

  it('writes, then reads back identical bytes, shapes, dtypes and metadata', async () => {
    const path = tmpPath();
    const requested: string[] = [];
    await writeSafetensors(
      path,
      specs,
      async (s) => {
        requested.push(s.name);
        return data.get(s.name)!;
      },
      { format: 'pt', source: 'test' },
    );
    expect(requested).toEqual(specs.map((s) => s.name));
    const raw = readFileSync(path);
    const headerLen = Number(raw.readBigUInt64LE(0));
    expect(headerLen % 8).toBe(0);
    const headerText = raw.toString('utf8', 8, 8 + headerLen);
    expect(headerText.trimEnd().endsWith('}')).toBe(true);
    expect(/^[^ ]*\}? *$/.test(headerText.slice(headerText.lastIndexOf('}')))).toBe(true);

    const f = await openSafetensors(path);
    try {
      expect(f.metadata).toEqual({ format: 'pt', source: 'test' });
      expect(f.tensors.map((t) => t.name)).toEqual(specs.map((s) => s.name));
      for (const s of specs) {
        const t = f.get(s.name);
        expect({ dtype: t.dtype, shape: t.shape }).toEqual({ dtype: s.dtype, shape: s.shape });
        expect(Buffer.compare(await f.read(s.name), data.get(s.name)!), s.name).toBe(0);
      }
    } finally {
      await f.close();
    }
  });

  it('refuses tensor data of the wrong size while writing', async () => {
    await expect(writeSafetensors(tmpPath(), [{ name: 'x', dtype: 'F32', shape: [2] }], async () => Buffer.alloc(7))).rejects.toThrow(
      /x: got 7 bytes, expected 8/,
    );
  });

  it('refuses duplicate names and the reserved __metadata__ name', () => {
    expect(() => buildSafetensorsHeader([{ name: 'x', dtype: 'F32', shape: [] }, { name: 'x', dtype: 'F32', shape: [] }])).toThrow(SafetensorsError);
    expect(() => buildSafetensorsHeader([{ name: '__metadata__', dtype: 'F32', shape: [] }])).toThrow(SafetensorsError);
  });
});

describe('safetensors header validation', () => {
  const ok = (entries: Record<string, unknown>): string => JSON.stringify(entries);

  it('rejects a header length past the end of the file, and tiny files', async () => {
    expect((await openError(rawFile('{}', Buffer.alloc(0), 1000n))).message).toMatch(/header length 1000 exceeds the file size/);
    expect((await openError(rawFile('{}', Buffer.alloc(0), 1n << 60n))).message).toMatch(/exceeds the file size/);
    const p = tmpPath();
    writeFileSync(p, Buffer.alloc(5));
    expect((await openError(p)).message).toMatch(/too small/);
  });

  it('rejects non-JSON and non-object headers', async () => {
    expect((await openError(rawFile('{not json', Buffer.alloc(0)))).message).toMatch(/not valid JSON/);
    expect((await openError(rawFile('[1,2]   ', Buffer.alloc(0)))).message).toMatch(/does not start with/);
  });

  it('rejects overlapping offsets', async () => {
    const h = ok({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } });
    expect((await openError(rawFile(h, Buffer.alloc(12)))).message).toMatch(/b overlaps the previous tensor/);
  });

  it('rejects gaps and out-of-bounds offsets', async () => {
    const gap = ok({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } });
    expect((await openError(rawFile(gap, Buffer.alloc(12)))).message).toMatch(/gap before b/);
    const oob = ok({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } });
    expect((await openError(rawFile(oob, Buffer.alloc(8)))).message).toMatch(/a is out of bounds/);
    const trailing = ok({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } });
    expect((await openError(rawFile(trailing, Buffer.alloc(8)))).message).toMatch(/data section is 8 bytes but the tensors cover 4/);
  });

  it('rejects offsets that do not match dtype and shape', () => {
    expect(() => parseSafetensorsHeader(Buffer.from(ok({ a: { dtype: 'F16', shape: [3], data_offsets: [0, 12] } })), 12)).toThrow(
      /span 12 bytes but F16 \[3\] needs 6/,
    );
    expect(() => parseSafetensorsHeader(Buffer.from(ok({ a: { dtype: 'Q4', shape: [3], data_offsets: [0, 3] } })), 3)).toThrow(/unsupported dtype/);
    expect(() => parseSafetensorsHeader(Buffer.from(ok({ a: { dtype: 'U8', shape: [-1], data_offsets: [0, 0] } })), 0)).toThrow(/invalid shape/);
    expect(() => parseSafetensorsHeader(Buffer.from(ok({ a: { dtype: 'U8', shape: [1], data_offsets: [1, 0] } })), 1)).toThrow(/end before/);
    expect(() => parseSafetensorsHeader(Buffer.from(ok({ __metadata__: { k: 1 } })), 0)).toThrow(/__metadata__\.k is not a string/);
  });
});

describe('tiny.pt → safetensors', () => {
  it('preserves every tensor bitwise', async () => {
    const ckpt = await openCheckpoint(join(FIXTURES, 'tiny.pt'));
    const out = tmpPath();
    try {
      await writeSafetensors(
        out,
        ckpt.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
        (s) => ckpt.readTensor(s.name),
        { format: 'pt' },
      );
    } finally {
      await ckpt.close();
    }
    const f = await openSafetensors(out);
    try {
      expect(f.tensors).toHaveLength(tinyExpected.tensors.length);
      for (const want of tinyExpected.tensors) {
        const t = f.get(want.name);
        expect({ dtype: t.dtype, shape: t.shape }).toEqual({ dtype: want.dtype, shape: want.shape });
        expect(sha256(await f.read(want.name)), want.name).toBe(want.sha256);
      }
      const { vision, text, mlp } = tinyExpected.config;
      expect(() => validateCheckpoint(f.tensors, { vision, text, mlp })).not.toThrow();
    } finally {
      await f.close();
    }
  });
});
