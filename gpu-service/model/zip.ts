// Minimal zip reader over a file handle: reads the end-of-central-directory
// record (with ZIP64 support) and the central directory, never the whole file.
// Only what torch.save archives need: stored entries for tensor data, and small
// deflated entries inflated in memory.
import type { FileHandle } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';

export class ZipFormatError extends Error {
  override name = 'ZipFormatError';
}

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflated. */
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  crc32: number;
  localHeaderOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const MAX_COMMENT = 0xffff;
const MAX_CENTRAL_DIRECTORY = 256 * 1024 * 1024;

function u64(buf: Buffer, at: number, what: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipFormatError(`zip ${what} is too large (${v})`);
  return Number(v);
}

export async function readExactly(fh: FileHandle, position: number, length: number, what: string): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new ZipFormatError(`unexpected end of file reading ${what} (wanted ${length} bytes at offset ${position}, got ${done}); the file is truncated`);
    }
    done += bytesRead;
  }
  return buf;
}

export class ZipReader {
  private readonly dataOffsets = new Map<string, number>();

  private constructor(
    readonly fh: FileHandle,
    readonly fileSize: number,
    readonly entries: ReadonlyMap<string, ZipEntry>,
  ) {}

  static async open(fh: FileHandle): Promise<ZipReader> {
    const fileSize = (await fh.stat()).size;
    if (fileSize < 22) throw new ZipFormatError(`not a zip archive: file is only ${fileSize} bytes`);
    const tailLen = Math.min(fileSize, 22 + MAX_COMMENT);
    const tailStart = fileSize - tailLen;
    const tail = await readExactly(fh, tailStart, tailLen, 'zip end of central directory');
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === SIG_EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw new ZipFormatError('not a zip archive: no end-of-central-directory record found (truncated or not a zip)');
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    const eocdAbs = tailStart + eocd;
    // ZIP64: a locator sits right before the classic EOCD.
    if (eocdAbs >= 20) {
      const loc = await readExactly(fh, eocdAbs - 20, 20, 'zip64 locator');
      if (loc.readUInt32LE(0) === SIG_ZIP64_LOCATOR) {
        const recOffset = u64(loc, 8, 'zip64 record offset');
        if (recOffset + 56 > eocdAbs) throw new ZipFormatError('corrupt zip: zip64 end-of-central-directory record out of bounds');
        const rec = await readExactly(fh, recOffset, 56, 'zip64 end of central directory');
        if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw new ZipFormatError('corrupt zip: bad zip64 end-of-central-directory signature');
        count = u64(rec, 32, 'entry count');
        cdSize = u64(rec, 40, 'central directory size');
        cdOffset = u64(rec, 48, 'central directory offset');
      }
    }
    if (cdOffset + cdSize > eocdAbs || cdSize > MAX_CENTRAL_DIRECTORY) {
      throw new ZipFormatError(`corrupt or truncated zip: central directory (${cdSize} bytes at ${cdOffset}) does not fit in the file`);
    }
    const cd = await readExactly(fh, cdOffset, cdSize, 'zip central directory');
    const entries = new Map<string, ZipEntry>();
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) {
        throw new ZipFormatError(`corrupt zip: central directory entry ${i} is malformed`);
      }
      const method = cd.readUInt16LE(p + 10);
      const crc32 = cd.readUInt32LE(p + 16);
      let compressedSize = cd.readUInt32LE(p + 20);
      let uncompressedSize = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localHeaderOffset = cd.readUInt32LE(p + 42);
      const end = p + 46 + nameLen + extraLen + commentLen;
      if (end > cd.length) throw new ZipFormatError(`corrupt zip: central directory entry ${i} overruns the directory`);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // ZIP64 extended information: only the fields saturated in the header, in order.
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = cd.readUInt16LE(e);
        const size = cd.readUInt16LE(e + 2);
        if (e + 4 + size > extraEnd) throw new ZipFormatError(`corrupt zip: bad extra field in entry ${name}`);
        if (id === 0x0001) {
          let q = e + 4;
          const take = (): number => {
            if (q + 8 > e + 4 + size) throw new ZipFormatError(`corrupt zip: short zip64 extra field in entry ${name}`);
            const v = u64(cd, q, 'zip64 field');
            q += 8;
            return v;
          };
          if (uncompressedSize === 0xffffffff) uncompressedSize = take();
          if (compressedSize === 0xffffffff) compressedSize = take();
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
        }
        e += 4 + size;
      }
      entries.set(name, { name, method, compressedSize, uncompressedSize, crc32, localHeaderOffset });
      p = end;
    }
    return new ZipReader(fh, fileSize, entries);
  }

  /** Absolute file offset of an entry's (compressed) data, checked to lie within the file. */
  async dataOffset(entry: ZipEntry): Promise<number> {
    const cached = this.dataOffsets.get(entry.name);
    if (cached !== undefined) return cached;
    if (entry.localHeaderOffset + 30 > this.fileSize) {
      throw new ZipFormatError(`corrupt or truncated zip: local header of ${entry.name} is past the end of the file`);
    }
    const h = await readExactly(this.fh, entry.localHeaderOffset, 30, `local header of ${entry.name}`);
    if (h.readUInt32LE(0) !== SIG_LOCAL) throw new ZipFormatError(`corrupt zip: bad local header signature for ${entry.name}`);
    const off = entry.localHeaderOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
    if (off + entry.compressedSize > this.fileSize) {
      throw new ZipFormatError(
        `truncated zip: data of ${entry.name} (${entry.compressedSize} bytes at ${off}) extends past the end of the file (${this.fileSize} bytes)`,
      );
    }
    this.dataOffsets.set(entry.name, off);
    return off;
  }

  /** Location of a stored (uncompressed) entry's bytes; other methods are rejected. */
  async storedRange(entry: ZipEntry): Promise<{ offset: number; length: number }> {
    if (entry.method !== 0) {
      throw new ZipFormatError(`zip entry ${entry.name} uses compression method ${entry.method}; tensor data must be stored uncompressed (method 0)`);
    }
    if (entry.compressedSize !== entry.uncompressedSize) {
      throw new ZipFormatError(`corrupt zip: stored entry ${entry.name} has differing sizes`);
    }
    return { offset: await this.dataOffset(entry), length: entry.uncompressedSize };
  }

  /** Reads a whole small entry into memory (stored or deflated). */
  async readSmall(entry: ZipEntry, maxBytes = 512 * 1024 * 1024): Promise<Buffer> {
    if (entry.uncompressedSize > maxBytes) throw new ZipFormatError(`zip entry ${entry.name} is too large to read (${entry.uncompressedSize} bytes)`);
    const off = await this.dataOffset(entry);
    const raw = await readExactly(this.fh, off, entry.compressedSize, entry.name);
    if (entry.method === 0) return raw;
    if (entry.method === 8) {
      let out: Buffer;
      try {
        out = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
      } catch (err) {
        throw new ZipFormatError(`corrupt zip: cannot inflate ${entry.name}: ${(err as Error).message}`);
      }
      if (out.length !== entry.uncompressedSize) throw new ZipFormatError(`corrupt zip: ${entry.name} inflated to the wrong size`);
      return out;
    }
    throw new ZipFormatError(`zip entry ${entry.name} uses unsupported compression method ${entry.method}`);
  }
}
