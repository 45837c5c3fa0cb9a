// Restricted unpickler for torch.save's data.pkl. It understands only the
// opcodes torch emits (protocol 2-5) and builds plain data; the only callables
// it will "call" are an allow-list of constructors it reimplements itself
// (OrderedDict, torch's tensor/parameter rebuild helpers). Any other global is
// an error: arbitrary pickles are never executed.

export class PickleError extends Error {
  override name = 'PickleError';
}

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

export class PyDict {
  readonly map = new Map<string | number | boolean | null | bigint, PyValue>();
  /** Attributes set by BUILD (e.g. the state_dict's `_metadata`). */
  readonly attrs = new Map<string, PyValue>();
  constructor(readonly ordered: boolean) {}
}

export interface PyGlobal {
  kind: 'global';
  module: string;
  name: string;
}

export interface StorageRef {
  kind: 'storage';
  /** torch storage class name, e.g. FloatStorage. */
  storageType: string;
  key: string;
  location: string;
  /** Elements in the storage. */
  numel: number;
}

export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  storageOffset: number;
  shape: number[];
  strides: number[];
  requiresGrad: boolean;
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PyGlobal
  | StorageRef
  | TensorRef;

const STORAGE_TYPES = new Set([
  'FloatStorage',
  'DoubleStorage',
  'HalfStorage',
  'BFloat16Storage',
  'LongStorage',
  'IntStorage',
  'ShortStorage',
  'CharStorage',
  'ByteStorage',
  'BoolStorage',
]);

const CALLABLES = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
]);

function isAllowedGlobal(module: string, name: string): boolean {
  return CALLABLES.has(`${module}.${name}`) || (module === 'torch' && STORAGE_TYPES.has(name));
}

function isGlobal(v: PyValue, full: string): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'kind' in v && v.kind === 'global' && `${v.module}.${v.name}` === full;
}

function asInt(v: PyValue | undefined, what: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  throw new PickleError(`expected an integer for ${what}`);
}

function asIntTuple(v: PyValue | undefined, what: string): number[] {
  if (!(v instanceof PyTuple)) throw new PickleError(`expected a tuple for ${what}`);
  return v.items.map((x, i) => asInt(x, `${what}[${i}]`));
}

function describe(v: PyValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyDict) return 'dict';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'object') return v.kind === 'global' ? `${v.module}.${v.name}` : v.kind;
  return typeof v;
}

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

export interface UnpickleOptions {
  persistentLoad: (pid: PyValue) => PyValue;
}

export function unpickle(data: Uint8Array, options: UnpickleOptions): PyValue {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const stack: StackItem[] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;

  const need = (n: number): void => {
    if (pos + n > buf.length) throw new PickleError('pickle data is truncated');
  };
  const u8 = (): number => {
    need(1);
    return buf[pos++]!;
  };
  const u32 = (): number => {
    need(4);
    const v = buf.readUInt32LE(pos);
    pos += 4;
    return v;
  };
  const u64n = (): number => {
    need(8);
    const v = buf.readBigUInt64LE(pos);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PickleError('pickle length is too large');
    return Number(v);
  };
  const bytes = (n: number): Buffer => {
    need(n);
    const b = buf.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const line = (): string => {
    const end = buf.indexOf(0x0a, pos);
    if (end < 0) throw new PickleError('pickle data is truncated (unterminated GLOBAL)');
    const s = buf.toString('utf8', pos, end);
    pos = end + 1;
    return s;
  };
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined) throw new PickleError('pickle stack underflow');
    if (v === MARK) throw new PickleError('unexpected MARK on pickle stack');
    return v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) throw new PickleError('pickle stack underflow');
    return v;
  };
  const popMark = (): PyValue[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) throw new PickleError('pickle MARK not found');
    const items = stack.splice(i) as PyValue[];
    items.shift();
    return items;
  };
  const makeGlobal = (module: string, name: string): PyGlobal => {
    if (!isAllowedGlobal(module, name)) {
      throw new PickleError(`forbidden global in pickle: ${module}.${name} (only torch tensor/storage rebuilders and collections.OrderedDict are allowed)`);
    }
    return { kind: 'global', module, name };
  };
  const setItem = (d: PyValue, k: PyValue, v: PyValue): void => {
    if (!(d instanceof PyDict)) throw new PickleError(`SETITEM on ${describe(d)}`);
    if (k !== null && typeof k === 'object') throw new PickleError(`unsupported dict key type ${describe(k)}`);
    d.map.set(k, v);
  };
  const reduce = (fn: PyValue, args: PyValue): PyValue => {
    if (!(args instanceof PyTuple)) throw new PickleError('REDUCE arguments are not a tuple');
    const a = args.items;
    if (isGlobal(fn, 'collections.OrderedDict')) {
      if (a.length !== 0) throw new PickleError('OrderedDict() with arguments is not supported');
      return new PyDict(true);
    }
    if (isGlobal(fn, 'torch._utils._rebuild_tensor_v2')) {
      if (a.length < 6) throw new PickleError('_rebuild_tensor_v2 called with too few arguments');
      const storage = a[0];
      if (typeof storage !== 'object' || storage === null || !('kind' in storage) || storage.kind !== 'storage') {
        throw new PickleError(`_rebuild_tensor_v2 expects a storage, got ${describe(storage)}`);
      }
      const shape = asIntTuple(a[2], 'tensor size');
      const strides = asIntTuple(a[3], 'tensor stride');
      if (shape.length !== strides.length) throw new PickleError('tensor size and stride have different lengths');
      if (shape.some((s) => s < 0) || strides.some((s) => s < 0)) throw new PickleError('negative tensor size or stride');
      return {
        kind: 'tensor',
        storage,
        storageOffset: asInt(a[1], 'storage offset'),
        shape,
        strides,
        requiresGrad: a[4] === true,
      };
    }
    if (isGlobal(fn, 'torch._utils._rebuild_parameter')) {
      const t = a[0];
      if (typeof t !== 'object' || t === null || !('kind' in t) || t.kind !== 'tensor') {
        throw new PickleError('_rebuild_parameter expects a tensor');
      }
      return { ...t, requiresGrad: a[1] === true };
    }
    throw new PickleError(`cannot call ${describe(fn)} in a restricted pickle`);
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) throw new PickleError('unsupported pickle protocol');
        break;
      case 0x95: // FRAME
        u64n();
        break;
      case 0x2e: // STOP
        {
          const result = pop();
          return result;
        }
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict(false));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x58: // BINUNICODE
        stack.push(bytes(u32()).toString('utf8'));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(bytes(u8()).toString('utf8'));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(bytes(u64n()).toString('utf8'));
        break;
      case 0x42: // BINBYTES
        stack.push(new Uint8Array(bytes(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(new Uint8Array(bytes(u8())));
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(buf.readInt32LE(pos));
        pos += 4;
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(buf.readUInt16LE(pos));
        pos += 2;
        break;
      case 0x8a: // LONG1
      case 0x8b: {
        // LONG4
        const n = op === 0x8a ? u8() : u32();
        const b = bytes(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        if (n > 0 && (b[n - 1]! & 0x80) !== 0) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT
        need(8);
        stack.push(buf.readDoubleBE(pos));
        pos += 8;
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(new PyTuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(new PyTuple([a, b, c]));
        break;
      }
      case 0x74: // TUPLE
        stack.push(new PyTuple(popMark()));
        break;
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2 !== 0) throw new PickleError('SETITEMS with an odd number of items');
        const d = top();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i]!, items[i + 1]!);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) throw new PickleError(`APPEND on ${describe(l)}`);
        l.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) throw new PickleError(`APPENDS on ${describe(l)}`);
        l.push(...items);
        break;
      }
      case 0x63: {
        // GLOBAL
        const module = line();
        const name = line();
        stack.push(makeGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError('STACK_GLOBAL expects two strings');
        stack.push(makeGlobal(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(reduce(fn, args));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(options.persistentLoad(pop()));
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const idx = op === 0x68 ? u8() : u32();
        const v = memo.get(idx);
        if (v === undefined) throw new PickleError(`pickle memo entry ${idx} is missing`);
        stack.push(v);
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof PyDict && state instanceof PyDict) {
          for (const [k, v] of state.map) if (typeof k === 'string') obj.attrs.set(k, v);
        } else if (state !== null) {
          throw new PickleError(`BUILD on ${describe(obj)} is not supported`);
        }
        break;
      }
      case 0x30: // POP
        if (stack.pop() === undefined) throw new PickleError('pickle stack underflow');
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      default:
        throw new PickleError(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${pos - 1}`);
    }
  }
}

/** Turns a torch persistent id ('storage', <Storage global>, key, location, numel) into a StorageRef. */
export function torchPersistentLoad(pid: PyValue): StorageRef {
  if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage' || pid.items.length < 5) {
    throw new PickleError('unsupported persistent id in pickle (expected a torch storage reference)');
  }
  const [, type, key, location, numel] = pid.items;
  if (typeof type !== 'object' || type === null || !('kind' in type) || type.kind !== 'global' || type.module !== 'torch' || !STORAGE_TYPES.has(type.name)) {
    throw new PickleError(`unsupported storage type ${describe(type)}`);
  }
  if (typeof key !== 'string' || typeof location !== 'string') throw new PickleError('malformed storage reference');
  return { kind: 'storage', storageType: type.name, key, location, numel: asInt(numel, 'storage size') };
}
