// safetensors reader and writer (our own implementation of the format):
//   [u64 little-endian N][N bytes of JSON header, space-padded][tensor data]
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]}
// (offsets relative to the start of the data) plus an optional
// "__metadata__" string→string map. The writer streams one tensor at a time.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { DTYPE_SIZE, isDType, numelOf, type DType } from './dtypes.js';
import { readExactly } from './zip.js';

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

export interface SafetensorsTensor extends TensorSpec {
  /** Relative to the start of the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  /** In file order (ascending offsets). */
  tensors: SafetensorsTensor[];
}

const MAX_HEADER = 100 * 1024 * 1024;
const METADATA_KEY = '__metadata__';

/** Builds the padded header bytes (without the 8-byte length prefix) for tensors laid out in the given order. */
export function buildSafetensorsHeader(specs: readonly TensorSpec[], metadata: Record<string, string> = {}): { header: Buffer; tensors: SafetensorsTensor[] } {
  const obj: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(`metadata value for ${k} must be a string`);
    }
    obj[METADATA_KEY] = metadata;
  }
  const seen = new Set<string>();
  const tensors: SafetensorsTensor[] = [];
  let offset = 0;
  for (const s of specs) {
    if (s.name === METADATA_KEY || seen.has(s.name)) throw new SafetensorsError(`duplicate or reserved tensor name ${s.name}`);
    seen.add(s.name);
    if (!isDType(s.dtype)) throw new SafetensorsError(`tensor ${s.name} has unknown dtype ${String(s.dtype)}`);
    if (!s.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(`tensor ${s.name} has an invalid shape`);
    const end = offset + numelOf(s.shape) * DTYPE_SIZE[s.dtype];
    const t: SafetensorsTensor = { name: s.name, dtype: s.dtype, shape: [...s.shape], dataOffsets: [offset, end] };
    tensors.push(t);
    obj[s.name] = { dtype: t.dtype, shape: t.shape, data_offsets: t.dataOffsets };
    offset = end;
  }
  const json = Buffer.from(JSON.stringify(obj), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const header = Buffer.alloc(padded, 0x20);
  json.copy(header);
  return { header, tensors };
}

/**
 * Writes a safetensors file, asking `read` for each tensor's contiguous
 * little-endian bytes in turn so only one tensor is held at a time.
 */
export async function writeSafetensors(
  path: string,
  specs: readonly TensorSpec[],
  read: (spec: TensorSpec) => Promise<Uint8Array>,
  metadata: Record<string, string> = {},
): Promise<SafetensorsTensor[]> {
  const { header, tensors } = buildSafetensorsHeader(specs, metadata);
  const fh = await open(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    await writeAll(fh, len);
    await writeAll(fh, header);
    for (const t of tensors) {
      const data = await read(t);
      const want = t.dataOffsets[1] - t.dataOffsets[0];
      if (data.byteLength !== want) {
        throw new SafetensorsError(`tensor ${t.name}: got ${data.byteLength} bytes, expected ${want} for ${t.dtype} ${JSON.stringify(t.shape)}`);
      }
      await writeAll(fh, data);
    }
  } finally {
    await fh.close();
  }
  return tensors;
}

async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesWritten } = await fh.write(data, done, data.byteLength - done);
    done += bytesWritten;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses and validates a header against the size of the data section that follows it. */
export function parseSafetensorsHeader(headerBytes: Uint8Array, dataLength: number): SafetensorsHeader {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(headerBytes.buffer, headerBytes.byteOffset, headerBytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new SafetensorsError(`safetensors header is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(parsed)) throw new SafetensorsError('safetensors header is not a JSON object');
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsTensor[] = [];
  for (const [name, v] of Object.entries(parsed)) {
    if (name === METADATA_KEY) {
      if (!isPlainObject(v)) throw new SafetensorsError('safetensors __metadata__ must be an object of strings');
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string') throw new SafetensorsError(`safetensors __metadata__.${k} is not a string`);
        metadata[k] = s;
      }
      continue;
    }
    if (!isPlainObject(v)) throw new SafetensorsError(`safetensors entry ${name} is not an object`);
    const { dtype, shape, data_offsets: offs } = v;
    if (!isDType(dtype)) throw new SafetensorsError(`safetensors entry ${name} has unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d): d is number => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new SafetensorsError(`safetensors entry ${name} has an invalid shape`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d): d is number => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new SafetensorsError(`safetensors entry ${name} has invalid data_offsets`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) throw new SafetensorsError(`safetensors entry ${name} has data_offsets that end before they begin`);
    const want = numelOf(shape) * DTYPE_SIZE[dtype];
    if (end - begin !== want) {
      throw new SafetensorsError(`safetensors entry ${name}: data_offsets span ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${want}`);
    }
    tensors.push({ name, dtype, shape, dataOffsets: [begin, end] });
  }
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let expected = 0;
  for (const t of tensors) {
    const [begin, end] = t.dataOffsets;
    if (begin < expected) throw new SafetensorsError(`safetensors entry ${t.name} overlaps the previous tensor (begins at ${begin}, previous ends at ${expected})`);
    if (begin > expected) throw new SafetensorsError(`safetensors data has a gap before ${t.name} (begins at ${begin}, expected ${expected})`);
    if (end > dataLength) throw new SafetensorsError(`safetensors entry ${t.name} is out of bounds (ends at ${end}, data is ${dataLength} bytes)`);
    expected = end;
  }
  if (expected !== dataLength) throw new SafetensorsError(`safetensors data section is ${dataLength} bytes but the tensors cover ${expected}`);
  return { metadata, tensors };
}

export class SafetensorsFile {
  private readonly byName: Map<string, SafetensorsTensor>;

  constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly dataStart: number,
    readonly header: SafetensorsHeader,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  get tensors(): readonly SafetensorsTensor[] {
    return this.header.tensors;
  }

  get(name: string): SafetensorsTensor {
    const t = this.byName.get(name);
    if (!t) throw new SafetensorsError(`${this.path} has no tensor named ${name}`);
    return t;
  }

  /** Absolute file range of a tensor's bytes. */
  range(name: string): { offset: number; length: number } {
    const t = this.get(name);
    return { offset: this.dataStart + t.dataOffsets[0], length: t.dataOffsets[1] - t.dataOffsets[0] };
  }

  /** Reads one tensor's bytes (only that range of the file). */
  async read(name: string): Promise<Buffer> {
    const { offset, length } = this.range(name);
    return readExactly(this.fh, offset, length, `tensor ${name}`);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size < 8) throw new SafetensorsError(`${path}: file is too small to be safetensors (${size} bytes)`);
    const lenBuf = await readExactly(fh, 0, 8, 'safetensors header length');
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(size - 8)) throw new SafetensorsError(`${path}: header length ${n} exceeds the file size (${size} bytes)`);
    if (n > BigInt(MAX_HEADER)) throw new SafetensorsError(`${path}: header length ${n} is larger than the ${MAX_HEADER}-byte limit`);
    if (n < 2n) throw new SafetensorsError(`${path}: header length ${n} is too small`);
    const headerLen = Number(n);
    const headerBytes = await readExactly(fh, 8, headerLen, 'safetensors header');
    if (headerBytes[0] !== 0x7b) throw new SafetensorsError(`${path}: header does not start with '{'`);
    let header: SafetensorsHeader;
    try {
      header = parseSafetensorsHeader(headerBytes, size - 8 - headerLen);
    } catch (err) {
      if (err instanceof SafetensorsError) throw new SafetensorsError(`${path}: ${err.message}`, { cause: err });
      throw err;
    }
    return new SafetensorsFile(path, fh, 8 + headerLen, header);
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/**
 * sha256 over every tensor's name and bytes, in name order: identifies a model's
 * weights independently of how the file's header is formatted (the GPU check
 * compares the C++-generated random model with the one references were made from).
 */
export async function tensorsSha256(path: string): Promise<string> {
  const st = await openSafetensors(path);
  try {
    const h = createHash('sha256');
    for (const t of [...st.tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      h.update(t.name);
      h.update(await st.read(t.name));
    }
    return h.digest('hex');
  } finally {
    await st.close();
  }
}
