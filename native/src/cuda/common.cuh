// common.cuh — small device helpers shared by the op families (not a public header;
// ops.cuh is). Everything here is header-only and fp32 unless its name says otherwise.
//
//   IR_CUDA_CHECK(expr)    evaluate a cudaError_t expression; on failure RETURN it from
//                          the enclosing function (never prints, exits or aborts).
//   launch_status()        the status of the launch just enqueued (cudaGetLastError).
//   ceil_div(a, b)         integer ceiling division.
//   to_float / from_float  T ↔ fp32 for T ∈ {float, __half, __nv_bfloat16}; from_float
//                          rounds to nearest even (cuda_bf16 / cuda_fp16 _rn intrinsics).
//   warp_sum / warp_max    butterfly reductions over a full warp (all lanes get the result).
//   block_sum / block_max  reductions over a whole block (blockDim.x a multiple of 32,
//                          ≤ 1024); every thread gets the result. The order of the fp32
//                          additions is fixed by the launch shape, so results are
//                          deterministic run to run.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#define IR_CUDA_CHECK(...)                          \
  do {                                              \
    const cudaError_t ir_err_ = (__VA_ARGS__);      \
    if (ir_err_ != cudaSuccess) return ir_err_;     \
  } while (0)

namespace ir::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

inline cudaError_t launch_status() { return cudaGetLastError(); }

template <typename I>
__host__ __device__ constexpr I ceil_div(I a, I b) {
  return (a + b - 1) / b;
}

// ---- T ↔ fp32 ------------------------------------------------------------------------
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Four T values, 8-byte aligned for 16-bit T (one vector store after a float4 load).
template <typename T>
struct alignas(sizeof(T) * 4) Pack4 {
  T v[4];
};

template <typename T>
__device__ __forceinline__ void store4(T* p, float4 f) {
  Pack4<T> pk;
  pk.v[0] = from_float<T>(f.x);
  pk.v[1] = from_float<T>(f.y);
  pk.v[2] = from_float<T>(f.z);
  pk.v[3] = from_float<T>(f.w);
  *reinterpret_cast<Pack4<T>*>(p) = pk;
}

// ---- reductions ------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// `scratch` is __shared__ float[32]; the call ends with a barrier so scratch may be reused.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < nwarps ? scratch[lane] : 0.0f;
  r = warp_sum(r);
  __syncthreads();
  return r;
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < nwarps ? scratch[lane] : -INFINITY;
  r = warp_max(r);
  __syncthreads();
  return r;
}

// Grid size for a 1-D elementwise launch over n items, capped so the grid-stride loops
// stay cheap (and the grid fits in x).
inline unsigned grid_1d(long n, int threads, long cap = 65535L * 8) {
  long g = (n + threads - 1) / threads;
  if (g < 1) g = 1;
  if (g > cap) g = cap;
  return static_cast<unsigned>(g);
}

}  // namespace ir::cuda
