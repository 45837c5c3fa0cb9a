// layernorm.cu — LayerNorm over the last dim of an fp32 residual stream.
//
// Layout:    x fp32 [rows, n], gamma/beta fp32 [n]; outputs (each optional, nullptr =
//            skip) y32 fp32 [rows, n] — may alias x (in-place post-norm of BERT) — and
//            y T [rows, n] (the next GEMM's input). n % 4 == 0 (float4 loads).
// Precision: torch semantics: biased variance, y = (x - mean) * rstd * gamma + beta with
//            rstd = 1 / sqrtf(var + eps) (IEEE sqrt and division: no -use_fast_math).
//            Statistics are fp32 two-pass (mean first, then the sum of squared deviations
//            from the register-resident row), which avoids E[x²] - mean² cancellation.
//            The fp32 summation order is fixed by the launch shape (deterministic).
// Launch:    one warp per row, 4 warps (128 threads) per block, no shared memory.
//            Fast path (n ≤ 1024 = ViT width; BERT's 768 too): the row lives in registers,
//            lane l holding float4 #l, #l+32, … (kMaxVec = 8 float4 per lane); loads and
//            stores are float4 / 8-byte T vectors, coalesced per warp.
//            General path (n > 1024): the same warp-per-row math re-reading x from
//            global (L1/L2) in each pass.
//            Scalar path: when x/y32/gamma/beta are not 16-byte aligned or y is not
//            8-byte aligned (sub-allocated weights), the general path with scalar
//            accesses (same math; the fp32 summation order differs slightly).
// In place:  each lane reads all of its elements before it writes any, and a lane only
//            writes elements it read itself, so y32 == x is safe (x/y32 are not
//            __restrict__).
#include "common.cuh"
#include "ops.cuh"

namespace ir::cuda {
namespace {

constexpr int kLnWarps = 4;
constexpr int kMaxVec = 8;  // float4 per lane in the register path: n ≤ 32 * 8 * 4 = 1024

template <typename T>
__global__ void layernorm_reg_kernel(const float* x, const float* __restrict__ gamma, const float* __restrict__ beta, float* y32,
                                     T* __restrict__ y, int rows, int n, float eps) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kLnWarps + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int n4 = n >> 2;
  const float4* xr = reinterpret_cast<const float4*>(x + static_cast<long>(row) * n);
  float4 v[kMaxVec];
  float s = 0.0f;
#pragma unroll
  for (int k = 0; k < kMaxVec; ++k) {
    const int i = lane + 32 * k;
    if (i < n4) {
      v[k] = xr[i];
      s += (v[k].x + v[k].y) + (v[k].z + v[k].w);
    } else {
      v[k] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
  const float mean = warp_sum(s) / static_cast<float>(n);
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < kMaxVec; ++k) {
    if (lane + 32 * k < n4) {
      const float a = v[k].x - mean, b = v[k].y - mean, c = v[k].z - mean, d = v[k].w - mean;
      ss += (a * a + b * b) + (c * c + d * d);
    }
  }
  const float var = warp_sum(ss) / static_cast<float>(n);
  const float rstd = 1.0f / sqrtf(var + eps);
  const float4* g4 = reinterpret_cast<const float4*>(gamma);
  const float4* b4 = reinterpret_cast<const float4*>(beta);
#pragma unroll
  for (int k = 0; k < kMaxVec; ++k) {
    const int i = lane + 32 * k;
    if (i < n4) {
      const float4 g = g4[i], bb = b4[i];
      float4 o;
      o.x = (v[k].x - mean) * rstd * g.x + bb.x;
      o.y = (v[k].y - mean) * rstd * g.y + bb.y;
      o.z = (v[k].z - mean) * rstd * g.z + bb.z;
      o.w = (v[k].w - mean) * rstd * g.w + bb.w;
      if (y32) reinterpret_cast<float4*>(y32 + static_cast<long>(row) * n)[i] = o;
      if (y) store4<T>(y + static_cast<long>(row) * n + 4 * i, o);
    }
  }
}

template <typename T>
__global__ void layernorm_general_kernel(const float* x, const float* __restrict__ gamma, const float* __restrict__ beta, float* y32,
                                         T* __restrict__ y, int rows, int n, float eps) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kLnWarps + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int n4 = n >> 2;
  const float4* xr = reinterpret_cast<const float4*>(x + static_cast<long>(row) * n);
  float s = 0.0f;
  for (int i = lane; i < n4; i += 32) {
    const float4 v = xr[i];
    s += (v.x + v.y) + (v.z + v.w);
  }
  const float mean = warp_sum(s) / static_cast<float>(n);
  float ss = 0.0f;
  for (int i = lane; i < n4; i += 32) {
    const float4 v = xr[i];
    const float a = v.x - mean, b = v.y - mean, c = v.z - mean, d = v.w - mean;
    ss += (a * a + b * b) + (c * c + d * d);
  }
  const float var = warp_sum(ss) / static_cast<float>(n);
  const float rstd = 1.0f / sqrtf(var + eps);
  const float4* g4 = reinterpret_cast<const float4*>(gamma);
  const float4* b4 = reinterpret_cast<const float4*>(beta);
  for (int i = lane; i < n4; i += 32) {
    const float4 v = xr[i], g = g4[i], bb = b4[i];
    float4 o;
    o.x = (v.x - mean) * rstd * g.x + bb.x;
    o.y = (v.y - mean) * rstd * g.y + bb.y;
    o.z = (v.z - mean) * rstd * g.z + bb.z;
    o.w = (v.w - mean) * rstd * g.w + bb.w;
    if (y32) reinterpret_cast<float4*>(y32 + static_cast<long>(row) * n)[i] = o;
    if (y) store4<T>(y + static_cast<long>(row) * n + 4 * i, o);
  }
}

template <typename T>
__global__ void layernorm_scalar_kernel(const float* x, const float* __restrict__ gamma, const float* __restrict__ beta, float* y32,
                                        T* __restrict__ y, int rows, int n, float eps) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kLnWarps + (threadIdx.x >> 5);
  if (row >= rows) return;
  const float* xr = x + static_cast<long>(row) * n;
  float s = 0.0f;
  for (int i = lane; i < n; i += 32) s += xr[i];
  const float mean = warp_sum(s) / static_cast<float>(n);
  float ss = 0.0f;
  for (int i = lane; i < n; i += 32) {
    const float d = xr[i] - mean;
    ss += d * d;
  }
  const float var = warp_sum(ss) / static_cast<float>(n);
  const float rstd = 1.0f / sqrtf(var + eps);
  for (int i = lane; i < n; i += 32) {
    const float o = (xr[i] - mean) * rstd * gamma[i] + beta[i];
    if (y32) y32[static_cast<long>(row) * n + i] = o;
    if (y) y[static_cast<long>(row) * n + i] = from_float<T>(o);
  }
}

inline bool aligned(const void* p, uintptr_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

}  // namespace

template <typename T>
cudaError_t layernorm(const float* x, const float* gamma, const float* beta, float* y32, T* y, int rows, int n, float eps, cudaStream_t stream) {
  if (rows < 0 || n <= 0 || n % 4 != 0) return cudaErrorInvalidValue;
  if (rows == 0 || (!y32 && !y)) return cudaSuccess;
  const unsigned grid = static_cast<unsigned>(ceil_div(rows, kLnWarps));
  const bool vec = aligned(x, 16) && aligned(gamma, 16) && aligned(beta, 16) && aligned(y32, 16) && aligned(y, 4 * sizeof(T));
  if (!vec)
    layernorm_scalar_kernel<T><<<grid, kLnWarps * 32, 0, stream>>>(x, gamma, beta, y32, y, rows, n, eps);
  else if (n <= 32 * kMaxVec * 4)
    layernorm_reg_kernel<T><<<grid, kLnWarps * 32, 0, stream>>>(x, gamma, beta, y32, y, rows, n, eps);
  else
    layernorm_general_kernel<T><<<grid, kLnWarps * 32, 0, stream>>>(x, gamma, beta, y32, y, rows, n, eps);
  return launch_status();
}

template cudaError_t layernorm<__nv_bfloat16>(const float*, const float*, const float*, float*, __nv_bfloat16*, int, int, float, cudaStream_t);
template cudaError_t layernorm<__half>(const float*, const float*, const float*, float*, __half*, int, int, float, cudaStream_t);

}  // namespace ir::cuda
