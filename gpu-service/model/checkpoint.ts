// Reads a torch.save (zip format) state_dict without loading it whole: the
// pickle is parsed with a restricted unpickler, and each tensor is located as a
// byte range inside its stored (uncompressed) storage record.
import { open, type FileHandle } from 'node:fs/promises';
import { DTYPE_SIZE, STORAGE_DTYPE, numelOf, type DType } from './dtypes.js';
import { PickleError, PyDict, torchPersistentLoad, unpickle, type TensorRef } from './pickle.js';
import { ZipFormatError, ZipReader, readExactly } from './zip.js';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface CheckpointTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** In elements, as torch reports them. */
  strides: number[];
  storageKey: string;
  /** In elements from the start of the storage. */
  storageOffset: number;
  /** Absolute file offset of the storage record's first byte. */
  storageFileOffset: number;
  storageBytes: number;
  /** Absolute file offset of the tensor's first element. */
  fileOffset: number;
  /** Bytes spanned in the file from fileOffset to the last element (inclusive). */
  spanBytes: number;
  /** True when the span is exactly the tensor in row-major order. */
  contiguous: boolean;
}

function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i]!;
    if (d !== 1 && strides[i] !== expected) return false;
    expected *= d;
  }
  return true;
}

const LEGACY_MAGIC = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

export class Checkpoint {
  private readonly byName: Map<string, CheckpointTensor>;

  constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    /** The zip's top folder (named after the file at save time). */
    readonly archiveRoot: string,
    readonly tensors: readonly CheckpointTensor[],
  ) {
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  get(name: string): CheckpointTensor {
    const t = this.byName.get(name);
    if (!t) throw new CheckpointError(`checkpoint ${this.path} has no tensor named ${name}`);
    return t;
  }

  /** The tensor's elements as contiguous row-major little-endian bytes (strides and offsets applied). */
  async readTensor(name: string): Promise<Buffer> {
    const t = this.get(name);
    const size = DTYPE_SIZE[t.dtype];
    const numel = numelOf(t.shape);
    if (numel === 0) return Buffer.alloc(0);
    let span: Buffer;
    try {
      span = await readExactly(this.fh, t.fileOffset, t.spanBytes, `tensor ${name}`);
    } catch (err) {
      if (err instanceof ZipFormatError) throw new CheckpointError(`cannot read tensor ${name} from ${this.path}: ${err.message}`, { cause: err });
      throw err;
    }
    if (t.contiguous) return span;
    const out = Buffer.alloc(numel * size);
    const rank = t.shape.length;
    const idx = new Array<number>(rank).fill(0);
    const last = rank - 1;
    const inner = t.shape[last]!;
    const innerStride = t.strides[last]!;
    let o = 0;
    for (;;) {
      let base = 0;
      for (let d = 0; d < last; d++) base += idx[d]! * t.strides[d]!;
      if (innerStride === 1) {
        span.copy(out, o, base * size, (base + inner) * size);
        o += inner * size;
      } else {
        for (let j = 0; j < inner; j++) {
          const from = (base + j * innerStride) * size;
          span.copy(out, o, from, from + size);
          o += size;
        }
      }
      let d = last - 1;
      while (d >= 0) {
        idx[d]!++;
        if (idx[d]! < t.shape[d]!) break;
        idx[d] = 0;
        d--;
      }
      if (d < 0) break;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

export async function openCheckpoint(path: string): Promise<Checkpoint> {
  const fh = await open(path, 'r');
  try {
    return await readCheckpoint(path, fh);
  } catch (err) {
    await fh.close();
    if (err instanceof ZipFormatError || err instanceof PickleError) {
      throw new CheckpointError(`cannot read checkpoint ${path}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

async function readCheckpoint(path: string, fh: FileHandle): Promise<Checkpoint> {
  const size = (await fh.stat()).size;
  const head = await readExactly(fh, 0, Math.min(size, LEGACY_MAGIC.length), 'file header');
  if (head.length === LEGACY_MAGIC.length && head.equals(LEGACY_MAGIC)) {
    throw new CheckpointError(
      `cannot read checkpoint ${path}: it uses the legacy (pre-zip, torch < 1.6) torch.save format, which is not supported; ` +
        're-save it with a current torch: torch.save(torch.load(old), new)',
    );
  }
  if (head.length >= 4 && head.readUInt32LE(0) !== 0x04034b50) {
    throw new CheckpointError(`cannot read checkpoint ${path}: not a zip archive (torch.save zip format expected)`);
  }
  const zip = await ZipReader.open(fh);
  const pkls = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length === 0) {
    throw new CheckpointError(`cannot read checkpoint ${path}: the zip archive has no <top>/data.pkl, so it is not a torch.save checkpoint`);
  }
  if (pkls.length > 1) throw new CheckpointError(`cannot read checkpoint ${path}: the zip archive holds more than one data.pkl`);
  const root = pkls[0]!.slice(0, -'/data.pkl'.length);
  const byteorder = zip.entries.get(`${root}/byteorder`);
  if (byteorder) {
    const order = (await zip.readSmall(byteorder, 64)).toString('utf8').trim();
    if (order !== 'little') throw new CheckpointError(`cannot read checkpoint ${path}: storages are ${order}-endian; only little-endian is supported`);
  }
  const pkl = await zip.readSmall(zip.entries.get(pkls[0]!)!, 256 * 1024 * 1024);
  const value = unpickle(pkl, { persistentLoad: torchPersistentLoad });
  if (!(value instanceof PyDict)) {
    throw new CheckpointError(`cannot read checkpoint ${path}: expected a state_dict (a dict of tensors) at the top level`);
  }
  const tensors: CheckpointTensor[] = [];
  for (const [key, v] of value.map) {
    if (typeof key !== 'string') throw new CheckpointError(`cannot read checkpoint ${path}: state_dict key ${String(key)} is not a string`);
    if (typeof v !== 'object' || v === null || !('kind' in v) || v.kind !== 'tensor') {
      throw new CheckpointError(`cannot read checkpoint ${path}: state_dict entry ${key} is not a tensor`);
    }
    tensors.push(await locate(path, zip, root, key, v));
  }
  return new Checkpoint(path, fh, root, tensors);
}

async function locate(path: string, zip: ZipReader, root: string, name: string, t: TensorRef): Promise<CheckpointTensor> {
  const dtype = STORAGE_DTYPE[t.storage.storageType];
  if (!dtype) throw new CheckpointError(`cannot read checkpoint ${path}: tensor ${name} has unsupported storage ${t.storage.storageType}`);
  const size = DTYPE_SIZE[dtype];
  const entryName = `${root}/data/${t.storage.key}`;
  const entry = zip.entries.get(entryName);
  if (!entry) throw new CheckpointError(`cannot read checkpoint ${path}: storage record ${entryName} for tensor ${name} is missing`);
  const { offset, length } = await zip.storedRange(entry);
  if (length < t.storage.numel * size) {
    throw new CheckpointError(`cannot read checkpoint ${path}: storage ${entryName} holds ${length} bytes, fewer than its ${t.storage.numel} ${dtype} elements`);
  }
  const numel = numelOf(t.shape);
  let maxIndex = t.storageOffset;
  for (let i = 0; i < t.shape.length; i++) maxIndex += (t.shape[i]! - 1) * t.strides[i]!;
  const spanBytes = numel === 0 ? 0 : (maxIndex - t.storageOffset + 1) * size;
  if (numel > 0 && (maxIndex + 1) * size > length) {
    throw new CheckpointError(`cannot read checkpoint ${path}: tensor ${name} reads past the end of its storage ${entryName}`);
  }
  return {
    name,
    dtype,
    shape: t.shape,
    strides: t.strides,
    storageKey: t.storage.key,
    storageOffset: t.storageOffset,
    storageFileOffset: offset,
    storageBytes: length,
    fileOffset: offset + t.storageOffset * size,
    spanBytes,
    contiguous: isContiguous(t.shape, t.strides),
  };
}
