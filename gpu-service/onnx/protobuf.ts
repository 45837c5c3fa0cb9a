// Minimal protobuf wire-format encoder (and a small decoder for tests/inspection).
//
// Only what ONNX needs: varint (int32/int64/enum/bool, negative int64 as 10-byte
// two's complement), length-delimited (bytes/string/sub-message/packed repeated),
// fixed32 (float) and fixed64 (double). No zigzag (ONNX uses no sint fields).

export const WireType = {
  VARINT: 0,
  FIXED64: 1,
  LEN: 2,
  FIXED32: 5,
} as const;
export type WireTypeValue = (typeof WireType)[keyof typeof WireType];

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Growable byte buffer writer producing protobuf wire format. */
export class ProtoWriter {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity));
    this.view = new DataView(this.buf.buffer);
  }

  get length(): number {
    return this.pos;
  }

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Raw unsigned varint. Accepts number (safe integer) or bigint; negatives are encoded as uint64 two's complement. */
  rawVarint(value: number | bigint): this {
    let v: bigint;
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw new RangeError(`varint: not a safe integer: ${value}`);
      if (value >= 0 && value < 0x80000000) {
        // fast path
        this.ensure(5);
        let n = value;
        while (n >= 0x80) {
          this.buf[this.pos++] = (n & 0x7f) | 0x80;
          n >>>= 7;
        }
        this.buf[this.pos++] = n;
        return this;
      }
      v = BigInt(value);
    } else {
      v = value;
    }
    if (v < -(1n << 63n) || v >= 1n << 64n) throw new RangeError(`varint: out of 64-bit range: ${v}`);
    v = BigInt.asUintN(64, v);
    this.ensure(10);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
    return this;
  }

  tag(field: number, wire: WireTypeValue): this {
    if (!Number.isInteger(field) || field < 1 || field > 0x1fffffff) throw new RangeError(`bad field number ${field}`);
    return this.rawVarint(field * 8 + wire);
  }

  rawBytes(bytes: Uint8Array): this {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  /** int32 / int64 / uint64 / enum / bool field. */
  varint(field: number, value: number | bigint | boolean): this {
    const v = typeof value === 'boolean' ? (value ? 1 : 0) : value;
    return this.tag(field, WireType.VARINT).rawVarint(v);
  }

  /** float field (fixed32, little-endian IEEE-754). */
  float(field: number, value: number): this {
    this.tag(field, WireType.FIXED32);
    this.ensure(4);
    this.view.setFloat32(this.pos, value, true);
    this.pos += 4;
    return this;
  }

  /** double field (fixed64). */
  double(field: number, value: number): this {
    this.tag(field, WireType.FIXED64);
    this.ensure(8);
    this.view.setFloat64(this.pos, value, true);
    this.pos += 8;
    return this;
  }

  fixed32(field: number, value: number): this {
    this.tag(field, WireType.FIXED32);
    this.ensure(4);
    this.view.setUint32(this.pos, value >>> 0, true);
    this.pos += 4;
    return this;
  }

  fixed64(field: number, value: bigint): this {
    this.tag(field, WireType.FIXED64);
    this.ensure(8);
    this.view.setBigUint64(this.pos, BigInt.asUintN(64, value), true);
    this.pos += 8;
    return this;
  }

  /** bytes field (length-delimited). */
  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WireType.LEN).rawVarint(value.length);
    return this.rawBytes(value);
  }

  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  /** Embedded message, either pre-encoded bytes or written by a callback into a child writer. */
  message(field: number, body: Uint8Array | ((w: ProtoWriter) => void)): this {
    if (body instanceof Uint8Array) return this.bytes(field, body);
    const child = new ProtoWriter();
    body(child);
    return this.bytes(field, child.finish());
  }

  /** Packed repeated varints (int32/int64/enum). Empty arrays write nothing. */
  packedVarints(field: number, values: ReadonlyArray<number | bigint>): this {
    if (values.length === 0) return this;
    const child = new ProtoWriter(values.length * 2);
    for (const v of values) child.rawVarint(v);
    return this.bytes(field, child.finish());
  }

  /** Packed repeated floats (fixed32). */
  packedFloats(field: number, values: ArrayLike<number>): this {
    if (values.length === 0) return this;
    const out = new Uint8Array(values.length * 4);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < values.length; i++) dv.setFloat32(i * 4, values[i] as number, true);
    return this.bytes(field, out);
  }

  /** Packed repeated doubles (fixed64). */
  packedDoubles(field: number, values: ArrayLike<number>): this {
    if (values.length === 0) return this;
    const out = new Uint8Array(values.length * 8);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < values.length; i++) dv.setFloat64(i * 8, values[i] as number, true);
    return this.bytes(field, out);
  }

  /** Copy of the written bytes. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

// ---------------------------------------------------------------------------
// Decoder

export type ProtoField =
  | { field: number; wire: typeof WireType.VARINT; value: bigint }
  | { field: number; wire: typeof WireType.FIXED64; bytes: Uint8Array }
  | { field: number; wire: typeof WireType.LEN; bytes: Uint8Array }
  | { field: number; wire: typeof WireType.FIXED32; bytes: Uint8Array };

/** Sequential reader over wire-format bytes. */
export class ProtoReader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new RangeError('protobuf: truncated varint');
      const b = this.buf[this.pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new RangeError('protobuf: varint too long');
  }

  take(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) throw new RangeError('protobuf: truncated field');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  field(): ProtoField {
    const key = this.varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    switch (wire) {
      case WireType.VARINT:
        return { field, wire, value: this.varint() };
      case WireType.FIXED64:
        return { field, wire, bytes: this.take(8) };
      case WireType.LEN:
        return { field, wire, bytes: this.take(Number(this.varint())) };
      case WireType.FIXED32:
        return { field, wire, bytes: this.take(4) };
      default:
        throw new RangeError(`protobuf: unsupported wire type ${wire} (field ${field})`);
    }
  }
}

/** Decode one message level into its fields, in wire order. */
export function decodeFields(bytes: Uint8Array): ProtoField[] {
  const r = new ProtoReader(bytes);
  const out: ProtoField[] = [];
  while (!r.done) out.push(r.field());
  return out;
}

/** Field-number-indexed view over a decoded message with typed accessors. */
export class DecodedMessage {
  readonly fields: ProtoField[];
  constructor(bytes: Uint8Array) {
    this.fields = decodeFields(bytes);
  }

  all(field: number): ProtoField[] {
    return this.fields.filter((f) => f.field === field);
  }

  has(field: number): boolean {
    return this.fields.some((f) => f.field === field);
  }

  /** Last varint value of a field (proto semantics: last wins), as signed int64 number. */
  int(field: number): number | undefined {
    const vs = this.ints(field);
    return vs.length ? vs[vs.length - 1] : undefined;
  }

  /** Repeated int64 values, accepting both packed and unpacked encodings. */
  ints(field: number): number[] {
    const out: number[] = [];
    for (const f of this.all(field)) {
      if (f.wire === WireType.VARINT) out.push(Number(BigInt.asIntN(64, f.value)));
      else if (f.wire === WireType.LEN) {
        const r = new ProtoReader(f.bytes);
        while (!r.done) out.push(Number(BigInt.asIntN(64, r.varint())));
      }
    }
    return out;
  }

  float(field: number): number | undefined {
    const vs = this.floats(field);
    return vs.length ? vs[vs.length - 1] : undefined;
  }

  /** Repeated floats, packed or unpacked. */
  floats(field: number): number[] {
    const out: number[] = [];
    for (const f of this.all(field)) {
      if (f.wire === WireType.FIXED32 || f.wire === WireType.LEN) {
        const dv = new DataView(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength);
        for (let i = 0; i + 4 <= f.bytes.length; i += 4) out.push(dv.getFloat32(i, true));
      }
    }
    return out;
  }

  bytes(field: number): Uint8Array | undefined {
    const vs = this.all(field).filter((f) => f.wire === WireType.LEN);
    const last = vs[vs.length - 1];
    return last ? last.bytes : undefined;
  }

  string(field: number): string | undefined {
    const b = this.bytes(field);
    return b === undefined ? undefined : textDecoder.decode(b);
  }

  strings(field: number): string[] {
    return this.all(field).flatMap((f) => (f.wire === WireType.LEN ? [textDecoder.decode(f.bytes)] : []));
  }

  message(field: number): DecodedMessage | undefined {
    const b = this.bytes(field);
    return b === undefined ? undefined : new DecodedMessage(b);
  }

  messages(field: number): DecodedMessage[] {
    return this.all(field).flatMap((f) => (f.wire === WireType.LEN ? [new DecodedMessage(f.bytes)] : []));
  }
}
