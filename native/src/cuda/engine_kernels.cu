// engine_kernels.cu — the engine's own kernels that ops.cuh does not declare.
//
// gelu_inplace   x T [n] = gelu_erf(x) in place: the exact erf GELU of elementwise.cu
//                (0.5 * v * (1 + erff(v / √2)), fp32 math, accurate erff), applied to a T
//                tensor. Used only by the optional "fc1 → T" path (IMAGEREWARD_FC1_T=1,
//                engine.cu): the fc1 GEMM adds its bias in the cuBLASLt epilogue and
//                writes T, then this kernel applies GELU — 6 bytes of traffic per element
//                instead of 10 (fp32 GEMM output + bias_gelu), at the cost of rounding the
//                pre-activation to T once more.
// Launch:        grid-stride, 256 threads; 8 elements (16 bytes) per thread when x is
//                16-byte aligned and n % 8 == 0, else one element per thread.
#include "common.cuh"
#include "engine_kernels.cuh"

namespace ir::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float gelu_erf(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f)); }

template <typename T>
__global__ void gelu_inplace_kernel(T* __restrict__ x, long n) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < n; i += static_cast<long>(gridDim.x) * blockDim.x)
    x[i] = from_float<T>(gelu_erf(to_float(x[i])));
}

template <typename T>
struct alignas(16) Pack8 {
  T v[8];
};

template <typename T>
__global__ void gelu_inplace_vec_kernel(Pack8<T>* __restrict__ x, long n8) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < n8; i += static_cast<long>(gridDim.x) * blockDim.x) {
    Pack8<T> p = x[i];
#pragma unroll
    for (int k = 0; k < 8; k++) p.v[k] = from_float<T>(gelu_erf(to_float(p.v[k])));
    x[i] = p;
  }
}

}  // namespace

template <typename T>
cudaError_t gelu_inplace(T* x, long n, cudaStream_t stream) {
  if (n < 0 || (n > 0 && !x)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if ((reinterpret_cast<uintptr_t>(x) & 15u) == 0 && n % 8 == 0)
    gelu_inplace_vec_kernel<T><<<grid_1d(n / 8, kThreads), kThreads, 0, stream>>>(reinterpret_cast<Pack8<T>*>(x), n / 8);
  else
    gelu_inplace_kernel<T><<<grid_1d(n, kThreads), kThreads, 0, stream>>>(x, n);
  return launch_status();
}

template cudaError_t gelu_inplace<__nv_bfloat16>(__nv_bfloat16*, long, cudaStream_t);
template cudaError_t gelu_inplace<__half>(__half*, long, cudaStream_t);

}  // namespace ir::cuda
