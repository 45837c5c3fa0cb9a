// storage_types.h — host conversions between float and the engine's storage types T
// (__nv_bfloat16, __half), round to nearest even: tf(T) → float, ft<T>(float) → T. Shared
// by the per-op GPU tests (test_ops.cu) and the CPU emulation (emu/ops_emu.cc).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace ir::ref {

inline float tf(float v) { return v; }
inline float tf(__nv_bfloat16 v) { return __bfloat162float(v); }
inline float tf(__half v) { return __half2float(v); }
template <typename T> T ft(float v);
template <> inline float ft<float>(float v) { return v; }
template <> inline __nv_bfloat16 ft<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> inline __half ft<__half>(float v) { return __float2half_rn(v); }

}  // namespace ir::ref
