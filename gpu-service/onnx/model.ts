// Minimal ONNX model writer: plain typed descriptions of ModelProto / GraphProto /
// NodeProto / TensorProto / ValueInfoProto, an encoder to protobuf bytes (field
// numbers per onnx/onnx.proto), and a fluent GraphBuilder.
//
// Defaults: ir_version 8, default-domain opset 17. Opset 17 gives
// LayerNormalization; the ONNX Gelu op only exists from opset 20, so
// GraphBuilder.gelu() emits the exact erf form 0.5·x·(1 + erf(x/√2)) with
// Div/Erf/Add/Mul (ORT's optimizer fuses this pattern back into its Gelu kernel
// at graphOptimizationLevel >= 'extended'; checked on onnxruntime-node 1.30: the
// optimized graph shows a single com.microsoft:Gelu). ORT 1.30 also accepts
// ir 10 / opset 20 with the native Gelu op if we ever want it.
//
// External data (TensorProto.data_location = EXTERNAL), as observed with
// onnxruntime-node 1.30 (CPU), see test/node/onnx-model.test.ts:
//  - offsets need NO alignment: odd byte offsets inside a safetensors file load
//    and compute correctly, so initializers can point straight into
//    model.safetensors (offset = 8 + header_len + data_offsets[0]).
//  - `location` must be relative, with no '..' escaping the model's directory,
//    and the file must exist (absolute paths are rejected). Load the model by
//    file path so `location` resolves against the .onnx file's directory; a
//    model passed as bytes resolves `location` against process.cwd().
//  - out-of-range offset/length fails at session creation with a clear error.

import { ProtoWriter } from './protobuf.js';

// --- onnx.proto field numbers ------------------------------------------------

export const ModelField = {
  ir_version: 1,
  producer_name: 2,
  producer_version: 3,
  domain: 4,
  model_version: 5,
  doc_string: 6,
  graph: 7,
  opset_import: 8,
  metadata_props: 14,
} as const;
export const OperatorSetIdField = { domain: 1, version: 2 } as const;
export const GraphField = {
  node: 1,
  name: 2,
  initializer: 5,
  doc_string: 10,
  input: 11,
  output: 12,
  value_info: 13,
} as const;
export const NodeField = {
  input: 1,
  output: 2,
  name: 3,
  op_type: 4,
  attribute: 5,
  doc_string: 6,
  domain: 7,
} as const;
export const AttributeField = {
  name: 1,
  f: 2,
  i: 3,
  s: 4,
  t: 5,
  g: 6,
  floats: 7,
  ints: 8,
  strings: 9,
  tensors: 10,
  doc_string: 13,
  type: 20,
} as const;
export const AttributeType = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
} as const;
export const TensorField = {
  dims: 1,
  data_type: 2,
  float_data: 4,
  int32_data: 5,
  int64_data: 7,
  name: 8,
  raw_data: 9,
  double_data: 10,
  doc_string: 12,
  external_data: 13,
  data_location: 14,
} as const;
export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;
export const StringStringEntryField = { key: 1, value: 2 } as const;
export const ValueInfoField = { name: 1, type: 2, doc_string: 3 } as const;
export const TypeProtoField = { tensor_type: 1 } as const;
export const TypeTensorField = { elem_type: 1, shape: 2 } as const;
export const TensorShapeField = { dim: 1 } as const;
export const DimensionField = { dim_value: 1, dim_param: 2 } as const;

/** TensorProto.DataType. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;
export type DataTypeName = Exclude<keyof typeof DataType, 'STRING'>;

export const BYTES_PER_ELEMENT: Record<DataTypeName, number> = {
  FLOAT: 4,
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  BOOL: 1,
  FLOAT16: 2,
  DOUBLE: 8,
  UINT32: 4,
  UINT64: 8,
  BFLOAT16: 2,
};

// --- plain descriptions ------------------------------------------------------

/** A tensor dimension: fixed size, or a symbolic name (dim_param) like 'B'. */
export type Dim = number | string;

export interface ValueInfo {
  name: string;
  elemType: DataTypeName;
  /** undefined = unknown rank (no shape written). */
  dims?: readonly Dim[];
}

export interface ExternalDataRef {
  /** File name relative to the directory containing the .onnx file. */
  location: string;
  /** Byte offset into the file. */
  offset: number;
  /** Byte length of the tensor data. */
  length: number;
}

export type TensorData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | BigUint64Array;

export interface TensorDef {
  name: string;
  dataType: DataTypeName;
  dims: readonly number[];
  /** Inline little-endian bytes (raw_data). Exactly one of raw / external. */
  raw?: Uint8Array;
  external?: ExternalDataRef;
}

export type Attribute =
  | { name: string; type: 'int'; value: number | bigint }
  | { name: string; type: 'float'; value: number }
  | { name: string; type: 'string'; value: string }
  | { name: string; type: 'ints'; value: ReadonlyArray<number | bigint> }
  | { name: string; type: 'floats'; value: ReadonlyArray<number> }
  | { name: string; type: 'tensor'; value: TensorDef };

export interface NodeDef {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  domain?: string;
  attributes?: readonly Attribute[];
}

export interface GraphDef {
  name: string;
  nodes: readonly NodeDef[];
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
  initializers: readonly TensorDef[];
  valueInfo?: readonly ValueInfo[];
}

export interface OpsetImport {
  domain: string;
  version: number;
}

export interface ModelDef {
  graph: GraphDef;
  irVersion?: number;
  opsetImports?: readonly OpsetImport[];
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  metadata?: Readonly<Record<string, string>>;
}

export const DEFAULT_IR_VERSION = 8;
export const DEFAULT_OPSET = 17;

// --- attribute helpers --------------------------------------------------------

export const attr = {
  int: (name: string, value: number | bigint): Attribute => ({ name, type: 'int', value }),
  float: (name: string, value: number): Attribute => ({ name, type: 'float', value }),
  string: (name: string, value: string): Attribute => ({ name, type: 'string', value }),
  ints: (name: string, value: ReadonlyArray<number | bigint>): Attribute => ({ name, type: 'ints', value }),
  floats: (name: string, value: ReadonlyArray<number>): Attribute => ({ name, type: 'floats', value }),
  tensor: (name: string, value: TensorDef): Attribute => ({ name, type: 'tensor', value }),
};

/** View a typed array as little-endian bytes (no copy). */
export function toRawBytes(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Build an inline TensorDef from a typed array, validating size against dims. */
export function tensor(name: string, dataType: DataTypeName, dims: readonly number[], data: TensorData): TensorDef {
  if (!IS_LITTLE_ENDIAN) throw new Error('onnx: big-endian hosts are not supported');
  const raw = toRawBytes(data);
  checkByteLength(name, dataType, dims, raw.byteLength);
  return { name, dataType, dims: [...dims], raw };
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function checkByteLength(name: string, dataType: DataTypeName, dims: readonly number[], byteLength: number): void {
  for (const d of dims) if (!Number.isInteger(d) || d < 0) throw new RangeError(`tensor ${name}: bad dim ${d}`);
  const expect = elementCount(dims) * BYTES_PER_ELEMENT[dataType];
  if (byteLength !== expect) throw new RangeError(`tensor ${name}: ${byteLength} bytes, expected ${expect} for ${dataType}[${dims.join(',')}]`);
}

// --- encoders -------------------------------------------------------------------

export function encodeTensor(t: TensorDef): Uint8Array {
  const w = new ProtoWriter(64 + (t.raw?.length ?? 0));
  if ((t.raw === undefined) === (t.external === undefined)) throw new Error(`tensor ${t.name}: exactly one of raw / external must be set`);
  w.packedVarints(TensorField.dims, t.dims);
  w.varint(TensorField.data_type, DataType[t.dataType]);
  w.string(TensorField.name, t.name);
  if (t.raw !== undefined) {
    checkByteLength(t.name, t.dataType, t.dims, t.raw.byteLength);
    w.bytes(TensorField.raw_data, t.raw);
  } else if (t.external !== undefined) {
    const e = t.external;
    checkByteLength(t.name, t.dataType, t.dims, e.length);
    if (!Number.isSafeInteger(e.offset) || e.offset < 0) throw new RangeError(`tensor ${t.name}: bad external offset ${e.offset}`);
    const entries: [string, string][] = [
      ['location', e.location],
      ['offset', String(e.offset)],
      ['length', String(e.length)],
    ];
    for (const [key, value] of entries) {
      w.message(TensorField.external_data, (m) => m.string(StringStringEntryField.key, key).string(StringStringEntryField.value, value));
    }
    w.varint(TensorField.data_location, DataLocation.EXTERNAL);
  }
  return w.finish();
}

export function encodeAttribute(a: Attribute): Uint8Array {
  const w = new ProtoWriter();
  w.string(AttributeField.name, a.name);
  switch (a.type) {
    case 'int':
      w.varint(AttributeField.i, a.value).varint(AttributeField.type, AttributeType.INT);
      break;
    case 'float':
      w.float(AttributeField.f, a.value).varint(AttributeField.type, AttributeType.FLOAT);
      break;
    case 'string':
      w.string(AttributeField.s, a.value).varint(AttributeField.type, AttributeType.STRING);
      break;
    case 'ints':
      w.packedVarints(AttributeField.ints, a.value).varint(AttributeField.type, AttributeType.INTS);
      break;
    case 'floats':
      w.packedFloats(AttributeField.floats, a.value).varint(AttributeField.type, AttributeType.FLOATS);
      break;
    case 'tensor':
      w.message(AttributeField.t, encodeTensor(a.value)).varint(AttributeField.type, AttributeType.TENSOR);
      break;
  }
  return w.finish();
}

export function encodeNode(n: NodeDef): Uint8Array {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(NodeField.input, i);
  for (const o of n.outputs) w.string(NodeField.output, o);
  if (n.name !== undefined) w.string(NodeField.name, n.name);
  w.string(NodeField.op_type, n.opType);
  for (const a of n.attributes ?? []) w.message(NodeField.attribute, encodeAttribute(a));
  if (n.domain !== undefined && n.domain !== '') w.string(NodeField.domain, n.domain);
  return w.finish();
}

export function encodeValueInfo(v: ValueInfo): Uint8Array {
  const w = new ProtoWriter();
  w.string(ValueInfoField.name, v.name);
  w.message(ValueInfoField.type, (tp) =>
    tp.message(TypeProtoField.tensor_type, (tt) => {
      tt.varint(TypeTensorField.elem_type, DataType[v.elemType]);
      if (v.dims !== undefined) {
        const dims = v.dims;
        tt.message(TypeTensorField.shape, (sh) => {
          for (const d of dims) {
            sh.message(TensorShapeField.dim, (dm) => {
              if (typeof d === 'number') dm.varint(DimensionField.dim_value, d);
              else dm.string(DimensionField.dim_param, d);
            });
          }
        });
      }
    }),
  );
  return w.finish();
}

export function encodeGraph(g: GraphDef): Uint8Array {
  const w = new ProtoWriter(1024);
  for (const n of g.nodes) w.message(GraphField.node, encodeNode(n));
  w.string(GraphField.name, g.name);
  for (const t of g.initializers) w.message(GraphField.initializer, encodeTensor(t));
  for (const v of g.inputs) w.message(GraphField.input, encodeValueInfo(v));
  for (const v of g.outputs) w.message(GraphField.output, encodeValueInfo(v));
  for (const v of g.valueInfo ?? []) w.message(GraphField.value_info, encodeValueInfo(v));
  return w.finish();
}

export function encodeModel(m: ModelDef): Uint8Array {
  const w = new ProtoWriter(4096);
  w.varint(ModelField.ir_version, m.irVersion ?? DEFAULT_IR_VERSION);
  w.string(ModelField.producer_name, m.producerName ?? 'imagereward-serve');
  if (m.producerVersion !== undefined) w.string(ModelField.producer_version, m.producerVersion);
  if (m.docString !== undefined) w.string(ModelField.doc_string, m.docString);
  w.message(ModelField.graph, encodeGraph(m.graph));
  for (const o of m.opsetImports ?? [{ domain: '', version: DEFAULT_OPSET }]) {
    w.message(ModelField.opset_import, (op) => op.string(OperatorSetIdField.domain, o.domain).varint(OperatorSetIdField.version, o.version));
  }
  for (const [key, value] of Object.entries(m.metadata ?? {})) {
    w.message(ModelField.metadata_props, (e) => e.string(StringStringEntryField.key, key).string(StringStringEntryField.value, value));
  }
  return w.finish();
}

// --- GraphBuilder ---------------------------------------------------------------

export interface ExternalInit {
  /** Data file name, relative to the directory the .onnx file is saved in. */
  externalFile: string;
  offset: number;
  length: number;
}

export interface OpOptions {
  /** Number of outputs (default 1). */
  outputs?: number;
  /** Explicit output names (overrides `outputs`). */
  outputNames?: readonly string[];
  name?: string;
  domain?: string;
}

/**
 * Fluent graph construction. Every op method returns its output value name(s).
 * Value names come from `fresh(base)`, unique within the builder; `scope(prefix, fn)`
 * prefixes generated names (e.g. 'vit.layer3') for readable graphs.
 */
export class GraphBuilder {
  private readonly nodes: NodeDef[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly inits: TensorDef[] = [];
  private readonly valueInfos: ValueInfo[] = [];
  private readonly used = new Set<string>();
  private readonly counters = new Map<string, number>();
  private readonly scalarCache = new Map<string, string>();
  private prefix = '';

  constructor(readonly name = 'graph') {}

  /** Reserve a unique name derived from `base`. */
  fresh(base: string): string {
    const full = this.prefix ? `${this.prefix}/${base}` : base;
    let n = this.counters.get(full) ?? 0;
    let candidate = n === 0 ? full : `${full}_${n}`;
    while (this.used.has(candidate)) candidate = `${full}_${++n}`;
    this.counters.set(full, n + 1);
    this.used.add(candidate);
    return candidate;
  }

  private claim(name: string): string {
    if (this.used.has(name)) throw new Error(`onnx graph: duplicate value name '${name}'`);
    this.used.add(name);
    return name;
  }

  /** Run `fn` with generated names prefixed by `prefix` (nested scopes join with '/'). */
  scope<T>(prefix: string, fn: () => T): T {
    const saved = this.prefix;
    this.prefix = saved ? `${saved}/${prefix}` : prefix;
    try {
      return fn();
    } finally {
      this.prefix = saved;
    }
  }

  input(name: string, elemType: DataTypeName, dims?: readonly Dim[]): string {
    this.inputs.push({ name: this.claim(name), elemType, ...(dims ? { dims: [...dims] } : {}) });
    return name;
  }

  /** Declare `value` a graph output; if `name` differs, an Identity renames it. */
  output(value: string, elemType: DataTypeName, dims?: readonly Dim[], name?: string): string {
    let out = value;
    if (name !== undefined && name !== value) out = this.op('Identity', [value], [], { outputNames: [name] })[0] as string;
    this.outputs.push({ name: out, elemType, ...(dims ? { dims: [...dims] } : {}) });
    return out;
  }

  /** Optional intermediate shape annotation (value_info). */
  annotate(value: string, elemType: DataTypeName, dims: readonly Dim[]): void {
    this.valueInfos.push({ name: value, elemType, dims: [...dims] });
  }

  /** Add an initializer, inline (typed array) or pointing into an external file. */
  initializer(name: string, dataType: DataTypeName, dims: readonly number[], data: TensorData | ExternalInit): string {
    return this.pushInit(this.claim(name), dataType, dims, data);
  }

  /** Add an initializer under an already-reserved name. */
  private pushInit(name: string, dataType: DataTypeName, dims: readonly number[], data: TensorData | ExternalInit): string {
    if (ArrayBuffer.isView(data)) {
      this.inits.push(tensor(name, dataType, dims, data));
    } else {
      const t: TensorDef = {
        name,
        dataType,
        dims: [...dims],
        external: { location: data.externalFile, offset: data.offset, length: data.length },
      };
      checkByteLength(name, dataType, dims, data.length);
      this.inits.push(t);
    }
    return name;
  }

  /** int64 1-D initializer (shapes, axes, indices). */
  int64s(values: ReadonlyArray<number>, base = 'const_i64'): string {
    return this.pushInit(this.fresh(base), 'INT64', [values.length], BigInt64Array.from(values, (v) => BigInt(v)));
  }

  /** Deduplicated 0-d scalar initializer. */
  scalar(value: number, dataType: 'FLOAT' | 'INT64' = 'FLOAT'): string {
    const key = `${dataType}:${Object.is(value, -0) ? '-0' : String(value)}`;
    const hit = this.scalarCache.get(key);
    if (hit) return hit;
    const saved = this.prefix;
    this.prefix = '';
    const name = this.fresh(`scalar_${dataType === 'FLOAT' ? 'f' : 'i'}`);
    this.prefix = saved;
    this.pushInit(name, dataType, [], dataType === 'FLOAT' ? new Float32Array([value]) : new BigInt64Array([BigInt(value)]));
    this.scalarCache.set(key, name);
    return name;
  }

  /** Generic node. Returns the output names. */
  op(opType: string, inputs: readonly string[], attributes: readonly Attribute[] = [], opts: OpOptions = {}): string[] {
    const outputs = opts.outputNames
      ? opts.outputNames.map((n) => this.claim(n))
      : Array.from({ length: opts.outputs ?? 1 }, () => this.fresh(opType.toLowerCase()));
    const node: NodeDef = {
      opType,
      inputs: [...inputs],
      outputs,
      name: opts.name ?? this.fresh(`${opType}_node`),
      ...(opts.domain !== undefined ? { domain: opts.domain } : {}),
      ...(attributes.length ? { attributes: [...attributes] } : {}),
    };
    this.nodes.push(node);
    return outputs;
  }

  /** Single-output node. */
  op1(opType: string, inputs: readonly string[], attributes: readonly Attribute[] = [], opts: Omit<OpOptions, 'outputs'> = {}): string {
    return this.op(opType, inputs, attributes, { ...opts, outputs: 1 })[0] as string;
  }

  /** Constant node with a tensor value. */
  constant(dataType: DataTypeName, dims: readonly number[], data: TensorData): string {
    const out = this.fresh('constant');
    this.nodes.push({
      opType: 'Constant',
      inputs: [],
      outputs: [out],
      name: this.fresh('Constant_node'),
      attributes: [attr.tensor('value', tensor(`${out}_value`, dataType, dims, data))],
    });
    return out;
  }

  matmul(a: string, b: string): string {
    return this.op1('MatMul', [a, b]);
  }
  add(a: string, b: string): string {
    return this.op1('Add', [a, b]);
  }
  sub(a: string, b: string): string {
    return this.op1('Sub', [a, b]);
  }
  mul(a: string, b: string): string {
    return this.op1('Mul', [a, b]);
  }
  div(a: string, b: string): string {
    return this.op1('Div', [a, b]);
  }
  erf(x: string): string {
    return this.op1('Erf', [x]);
  }
  tanh(x: string): string {
    return this.op1('Tanh', [x]);
  }
  sqrt(x: string): string {
    return this.op1('Sqrt', [x]);
  }
  sigmoid(x: string): string {
    return this.op1('Sigmoid', [x]);
  }
  identity(x: string): string {
    return this.op1('Identity', [x]);
  }

  /** x·W (+ b): MatMul then Add when a bias is given. */
  linear(x: string, w: string, b?: string): string {
    const y = this.matmul(x, w);
    return b === undefined ? y : this.add(y, b);
  }

  /** LayerNormalization (opset 17), normalising from `axis` to the last dim. */
  layerNorm(x: string, scale: string, bias: string, epsilon = 1e-5, axis = -1): string {
    return this.op1('LayerNormalization', [x, scale, bias], [attr.int('axis', axis), attr.float('epsilon', epsilon)]);
  }

  softmax(x: string, axis = -1): string {
    return this.op1('Softmax', [x], [attr.int('axis', axis)]);
  }

  /** Exact GELU: 0.5·x·(1 + erf(x/√2)) (ONNX Gelu needs opset 20). */
  gelu(x: string): string {
    const e = this.erf(this.div(x, this.scalar(Math.SQRT2)));
    return this.mul(this.mul(x, this.add(e, this.scalar(1))), this.scalar(0.5));
  }

  /** Reshape to a constant shape (0 = copy dim, -1 = infer) or a shape tensor name. */
  reshape(x: string, shape: readonly number[] | string): string {
    const s = typeof shape === 'string' ? shape : this.int64s(shape, 'shape');
    return this.op1('Reshape', [x, s]);
  }

  transpose(x: string, perm: readonly number[]): string {
    return this.op1('Transpose', [x], [attr.ints('perm', perm)]);
  }

  gather(data: string, indices: string, axis = 0): string {
    return this.op1('Gather', [data, indices], [attr.int('axis', axis)]);
  }

  concat(inputs: readonly string[], axis: number): string {
    return this.op1('Concat', inputs, [attr.int('axis', axis)]);
  }

  /** Slice with constant starts/ends/axes/steps (opset >= 10 input form). */
  slice(x: string, starts: readonly number[], ends: readonly number[], axes?: readonly number[], steps?: readonly number[]): string {
    const ins = [x, this.int64s(starts, 'starts'), this.int64s(ends, 'ends')];
    if (axes !== undefined || steps !== undefined) ins.push(axes ? this.int64s(axes, 'axes') : '');
    if (steps !== undefined) ins.push(this.int64s(steps, 'steps'));
    return this.op1('Slice', ins);
  }

  /** Unsqueeze / Squeeze with axes as an input (opset >= 13). */
  unsqueeze(x: string, axes: readonly number[]): string {
    return this.op1('Unsqueeze', [x, this.int64s(axes, 'axes')]);
  }
  squeeze(x: string, axes: readonly number[]): string {
    return this.op1('Squeeze', [x, this.int64s(axes, 'axes')]);
  }

  cast(x: string, to: DataTypeName): string {
    return this.op1('Cast', [x], [attr.int('to', DataType[to])]);
  }

  build(): GraphDef {
    return {
      name: this.name,
      nodes: [...this.nodes],
      inputs: [...this.inputs],
      outputs: [...this.outputs],
      initializers: [...this.inits],
      ...(this.valueInfos.length ? { valueInfo: [...this.valueInfos] } : {}),
    };
  }

  /** Encode a full ModelProto around this graph. */
  toModel(opts: Omit<ModelDef, 'graph'> = {}): Uint8Array {
    return encodeModel({ ...opts, graph: this.build() });
  }
}
