// Bridge from the project's safetensors reader to ONNX external-data initializers:
// an initializer that points straight at a tensor's byte range inside a
// .safetensors file (no copy, no re-serialisation). ORT resolves `location`
// relative to the directory of the .onnx file, so save the model next to the
// weights (or in a parent directory with `location` 'sub/model.safetensors').
import type { DType } from '../model/dtypes.js';
import type { SafetensorsFile } from '../model/safetensors.js';
import type { DataTypeName, GraphBuilder } from './model.js';

export const ONNX_TYPE_OF_DTYPE: Readonly<Record<DType, DataTypeName>> = {
  F64: 'DOUBLE',
  F32: 'FLOAT',
  F16: 'FLOAT16',
  BF16: 'BFLOAT16',
  I64: 'INT64',
  I32: 'INT32',
  I16: 'INT16',
  I8: 'INT8',
  U8: 'UINT8',
  BOOL: 'BOOL',
};

/**
 * Add initializer `onnxName` (default: the safetensors name) backed by tensor
 * `tensorName` of `file`, referenced as `location` (relative path from the
 * .onnx file's directory). Shape and dtype come from the safetensors header;
 * pass `dims` to reinterpret the shape (same element count).
 */
export function safetensorsInitializer(
  g: GraphBuilder,
  file: SafetensorsFile,
  location: string,
  tensorName: string,
  opts: { onnxName?: string; dims?: readonly number[] } = {},
): string {
  const t = file.get(tensorName);
  const { offset, length } = file.range(tensorName);
  const dims = opts.dims ?? t.shape;
  return g.initializer(opts.onnxName ?? tensorName, ONNX_TYPE_OF_DTYPE[t.dtype], dims, { externalFile: location, offset, length });
}
