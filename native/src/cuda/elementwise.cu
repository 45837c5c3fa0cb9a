// elementwise.cu — GEMM-epilogue fallbacks and load-time conversions.
//
// bias_gelu      y T [rows, cols] = gelu_erf(x[r, c] + bias[c]); x fp32 [rows, cols],
//                bias fp32 [cols]. Exact erf GELU in fp32: 0.5 * v * (1 + erff(v * (1/√2)))
//                (erff is the accurate libdevice erf; no -use_fast_math).
// bias_residual  y32[r, c] += x[r, c] + bias[c], all fp32 (x + bias first, as the
//                unfused torch graph: residual + (gemm + bias)).
// convert_f32    y T [n] = RN(x fp32 [n]).
// add_bias       y[r, c] = RN((accumulate ? y[r, c] : 0) + bias[c]) in place, y fp32 or T,
//                bias fp32: seeds a GEMM's output with its bias when cuBLASLt has no
//                BIAS-epilogue algorithm for it; the GEMM then runs with beta = 1 (C = D),
//                so a T output is still rounded once, after the sum (gemm.cu).
// Launch:        grid-stride, 256 threads per block. When cols % 4 == 0 and the
//                pointers are 16-byte aligned, one thread handles a float4 (vector loads,
//                8-byte T stores); otherwise one element per thread. Memory-bound.
#include "common.cuh"
#include "ops.cuh"

namespace ir::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float gelu_erf(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f)); }

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// [rows, cols] scalar
template <typename T>
__global__ void bias_gelu_kernel(const float* __restrict__ x, const float* __restrict__ bias, T* __restrict__ y, long total, int cols) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x)
    y[i] = from_float<T>(gelu_erf(x[i] + bias[i % cols]));
}

// [rows, cols/4] float4
template <typename T>
__global__ void bias_gelu_vec_kernel(const float4* __restrict__ x, const float4* __restrict__ bias, T* __restrict__ y, long total4, int cols4) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total4; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const float4 v = x[i], b = bias[i % cols4];
    store4<T>(y + 4 * i, make_float4(gelu_erf(v.x + b.x), gelu_erf(v.y + b.y), gelu_erf(v.z + b.z), gelu_erf(v.w + b.w)));
  }
}

__global__ void bias_residual_kernel(const float* __restrict__ x, const float* __restrict__ bias, float* __restrict__ y32, long total, int cols) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x)
    y32[i] += x[i] + bias[i % cols];
}

__global__ void bias_residual_vec_kernel(const float4* __restrict__ x, const float4* __restrict__ bias, float4* __restrict__ y32, long total4,
                                         int cols4) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total4; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const float4 v = x[i], b = bias[i % cols4];
    float4 r = y32[i];
    r.x += v.x + b.x;
    r.y += v.y + b.y;
    r.z += v.z + b.z;
    r.w += v.w + b.w;
    y32[i] = r;
  }
}

template <typename T>
__global__ void add_bias_kernel(T* __restrict__ y, const float* __restrict__ bias, long total, int cols, bool accumulate) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x)
    y[i] = from_float<T>((accumulate ? to_float(y[i]) : 0.0f) + bias[i % cols]);
}

template <typename T>
__global__ void convert_f32_kernel(const float* __restrict__ x, T* __restrict__ y, long n) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < n; i += static_cast<long>(gridDim.x) * blockDim.x)
    y[i] = from_float<T>(x[i]);
}

}  // namespace

template <typename T>
cudaError_t bias_gelu(const float* x, const float* bias, T* y, long rows, int cols, cudaStream_t stream) {
  if (rows < 0 || cols <= 0) return cudaErrorInvalidValue;
  const long total = rows * cols;
  if (total == 0) return cudaSuccess;
  if (cols % 4 == 0 && aligned16(x) && aligned16(bias) && (reinterpret_cast<uintptr_t>(y) % (4 * sizeof(T))) == 0)
    bias_gelu_vec_kernel<T><<<grid_1d(total / 4, kThreads), kThreads, 0, stream>>>(reinterpret_cast<const float4*>(x),
                                                                                   reinterpret_cast<const float4*>(bias), y, total / 4, cols / 4);
  else
    bias_gelu_kernel<T><<<grid_1d(total, kThreads), kThreads, 0, stream>>>(x, bias, y, total, cols);
  return launch_status();
}

cudaError_t bias_residual(const float* x, const float* bias, float* y32, long rows, int cols, cudaStream_t stream) {
  if (rows < 0 || cols <= 0) return cudaErrorInvalidValue;
  const long total = rows * cols;
  if (total == 0) return cudaSuccess;
  if (cols % 4 == 0 && aligned16(x) && aligned16(bias) && aligned16(y32))
    bias_residual_vec_kernel<<<grid_1d(total / 4, kThreads), kThreads, 0, stream>>>(
        reinterpret_cast<const float4*>(x), reinterpret_cast<const float4*>(bias), reinterpret_cast<float4*>(y32), total / 4, cols / 4);
  else
    bias_residual_kernel<<<grid_1d(total, kThreads), kThreads, 0, stream>>>(x, bias, y32, total, cols);
  return launch_status();
}

template <typename T>
cudaError_t add_bias(T* y, const float* bias, long rows, int cols, bool accumulate, cudaStream_t stream) {
  if (rows < 0 || cols <= 0) return cudaErrorInvalidValue;
  const long total = rows * cols;
  if (total == 0) return cudaSuccess;
  add_bias_kernel<T><<<grid_1d(total, kThreads), kThreads, 0, stream>>>(y, bias, total, cols, accumulate);
  return launch_status();
}

template <typename T>
cudaError_t convert_f32(const float* x, T* y, long n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  convert_f32_kernel<T><<<grid_1d(n, kThreads), kThreads, 0, stream>>>(x, y, n);
  return launch_status();
}

template cudaError_t bias_gelu<__nv_bfloat16>(const float*, const float*, __nv_bfloat16*, long, int, cudaStream_t);
template cudaError_t bias_gelu<__half>(const float*, const float*, __half*, long, int, cudaStream_t);
template cudaError_t add_bias<float>(float*, const float*, long, int, bool, cudaStream_t);
template cudaError_t add_bias<__nv_bfloat16>(__nv_bfloat16*, const float*, long, int, bool, cudaStream_t);
template cudaError_t add_bias<__half>(__half*, const float*, long, int, bool, cudaStream_t);
template cudaError_t convert_f32<__nv_bfloat16>(const float*, __nv_bfloat16*, long, cudaStream_t);
template cudaError_t convert_f32<__half>(const float*, __half*, long, cudaStream_t);

}  // namespace ir::cuda
