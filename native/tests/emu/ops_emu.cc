// ops_emu.cc — host reference implementations of every op the engine calls (ops.cuh,
// engine_kernels.cuh) for ir_engine_emu: the engine's own code (engine.cu compiled as
// host C++, weights.cc, cuda_error.cc, tools/engine_check.cc) linked against these, a
// host GemmRunner (gemm_emu.cc) and the CUDA runtime stand-in (cuda_runtime_emu.cc)
// instead of the CUDA kernels, cuBLASLt and the CUDA runtime. (ir_engine_sim links the
// real kernels through the kernel simulator, tests/sim/, instead of this file.)
//
// Why: no GPU is lent to most sessions, and the kernels are checked one by one against
// CPU references on a GPU (tests/test_ops.cu). What the per-op tests cannot see is the
// engine's orchestration: buffer layout and strides, the order of the 24 + 12 layers, the
// cross-attention K/V slices of the one wide GEMM, bucket padding, the folded head, bf16
// weight conversion, staging of inputs and outputs, several slots on several threads.
// With ops that follow ops.cuh's contracts exactly, the emulated engine must reproduce
// ONNX Runtime's fp32 rewards (test/node/native-engine-emu.test.ts) — so a parity failure
// on a GPU is narrowed to the kernels, which test_ops.cu localizes.
//
// These are written from the contracts in ops.cuh / gemm.cuh, not from the kernels:
// fp32 math (double for LayerNorm statistics and dot products), storage rounding to T
// exactly where the contract stores T.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cuda/engine_kernels.cuh"
#include "cuda/ops.cuh"
#include "../ref_ops.h"
#include "../storage_types.h"

namespace ir {

namespace cuda {
namespace {

using ref::ft;
using ref::tf;

using ref::gelu_erf;

void ln_row(const double* x, int n, const float* g, const float* b, float eps, double* y) { ref::layernorm_row(x, n, g, b, eps, y); }

}  // namespace

cudaError_t normalize_u8(const uint8_t* hwc, float* chw, int B, int S, const float mean[3], const float std_[3], cudaStream_t) {
  if (B < 0 || S <= 0 || (B > 0 && (!hwc || !chw))) return cudaErrorInvalidValue;
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < 3; ++c)
      for (long p = 0; p < static_cast<long>(S) * S; ++p) {
        volatile float x = static_cast<float>(hwc[(static_cast<size_t>(b) * S * S + p) * 3 + c]) / 255.0f;
        volatile float centered = x - mean[c];
        chw[(static_cast<size_t>(b) * 3 + c) * S * S + p] = centered / std_[c];
      }
  return cudaSuccess;
}

template <typename T>
cudaError_t vit_patchify(const float* px, T* out, int B, int S, int P, cudaStream_t) {
  if (P <= 0 || S % P) return cudaErrorInvalidValue;
  ref::vit_patchify(px, B, S, P, [&](size_t i, float v) { out[i] = ft<T>(v); });
  return cudaSuccess;
}

cudaError_t vit_assemble(const float* po, const float* cls, const float* pos, float* x, int B, int N, int W, cudaStream_t) {
  for (int b = 0; b < B; ++b)
    for (int t = 0; t <= N; ++t)
      for (int c = 0; c < W; ++c) {
        const float base = t == 0 ? cls[c] : po[(static_cast<size_t>(b) * N + t - 1) * W + c];
        x[(static_cast<size_t>(b) * (N + 1) + t) * W + c] = base + pos[static_cast<size_t>(t) * W + c];
      }
  return cudaSuccess;
}

template <typename T>
cudaError_t bert_embed_ln(const int32_t* ids, const T* word, const float* pos, const float* g, const float* be, float* out32, T* out, int B, int L, int h,
                          float eps, cudaStream_t) {
  std::vector<double> row(h), y(h);
  for (int r = 0; r < B * L; ++r) {
    for (int i = 0; i < h; ++i) row[i] = static_cast<double>(tf(word[static_cast<size_t>(ids[r]) * h + i])) + pos[static_cast<size_t>(r % L) * h + i];
    ln_row(row.data(), h, g, be, eps, y.data());
    for (int i = 0; i < h; ++i) {
      if (out32) out32[static_cast<size_t>(r) * h + i] = static_cast<float>(y[i]);
      if (out) out[static_cast<size_t>(r) * h + i] = ft<T>(static_cast<float>(y[i]));
    }
  }
  return cudaSuccess;
}

template <typename T>
cudaError_t layernorm(const float* x, const float* g, const float* be, float* y32, T* y, int rows, int n, float eps, cudaStream_t) {
  if (n % 4) return cudaErrorInvalidValue;
  std::vector<double> row(n), out(n);
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < n; ++i) row[i] = x[static_cast<size_t>(r) * n + i];
    ln_row(row.data(), n, g, be, eps, out.data());  // row copied first: y32 may alias x
    for (int i = 0; i < n; ++i) {
      if (y32) y32[static_cast<size_t>(r) * n + i] = static_cast<float>(out[i]);
      if (y) y[static_cast<size_t>(r) * n + i] = ft<T>(static_cast<float>(out[i]));
    }
  }
  return cudaSuccess;
}

template <typename T>
cudaError_t attention(const AttnArgs<T>& a, cudaStream_t) {
  if (a.Tk < 1 || a.Tk > 256 || a.Tq < 1) return cudaErrorInvalidValue;
  // k and v are read through one accessor based at k (v sits v − k elements away).
  ref::attention([&](long i) { return static_cast<double>(tf(a.q[i])); }, a.q_batch_stride, a.q_row_stride,
                 [&](long i) { return static_cast<double>(tf(a.k[i])); }, static_cast<long>(a.v - a.k), a.kv_batch_stride, a.kv_row_stride,
                 a.out_batch_stride, a.out_row_stride, a.mask, a.B, a.H, a.Tq, a.Tk, a.scale,
                 [&](long i, double v) { a.out[i] = ft<T>(static_cast<float>(v)); });
  return cudaSuccess;
}

template <typename T>
cudaError_t bias_gelu(const float* x, const float* bias, T* y, long rows, int cols, cudaStream_t) {
  for (long r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(r) * cols + c;
      y[i] = ft<T>(static_cast<float>(gelu_erf(static_cast<double>(x[i] + bias[c]))));
    }
  return cudaSuccess;
}

cudaError_t bias_residual(const float* x, const float* bias, float* y32, long rows, int cols, cudaStream_t) {
  for (long r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(r) * cols + c;
      y32[i] += x[i] + bias[c];
    }
  return cudaSuccess;
}

template <typename T>
cudaError_t add_bias(T* y, const float* bias, long rows, int cols, bool accumulate, cudaStream_t) {
  if (rows < 0 || cols <= 0) return cudaErrorInvalidValue;
  for (long r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(r) * cols + c;
      y[i] = ft<T>((accumulate ? tf(y[i]) : 0.0f) + bias[c]);
    }
  return cudaSuccess;
}
template cudaError_t add_bias<float>(float*, const float*, long, int, bool, cudaStream_t);

template <typename T>
cudaError_t convert_f32(const float* x, T* y, long n, cudaStream_t) {
  if (n < 0) return cudaErrorInvalidValue;
  for (long i = 0; i < n; ++i) y[i] = ft<T>(x[i]);
  return cudaSuccess;
}

cudaError_t reward_head(const float* hidden, int L, int h, const float* w, float bias, float mean, float std_, float* raw, float* reward, int B, cudaStream_t) {
  for (int b = 0; b < B; ++b) {
    double d = 0;
    for (int i = 0; i < h; ++i) d += static_cast<double>(hidden[static_cast<size_t>(b) * L * h + i]) * w[i];
    raw[b] = static_cast<float>(d + bias);
    reward[b] = (raw[b] - mean) / std_;
  }
  return cudaSuccess;
}

template <typename T>
cudaError_t gelu_inplace(T* x, long n, cudaStream_t) {
  for (long i = 0; i < n; ++i) x[i] = ft<T>(static_cast<float>(gelu_erf(tf(x[i]))));
  return cudaSuccess;
}

#define IR_EMU_TYPED(T)                                                                                                         \
  template cudaError_t vit_patchify<T>(const float*, T*, int, int, int, cudaStream_t);                                          \
  template cudaError_t bert_embed_ln<T>(const int32_t*, const T*, const float*, const float*, const float*, float*, T*, int, int, int, \
                                        float, cudaStream_t);                                                                   \
  template cudaError_t layernorm<T>(const float*, const float*, const float*, float*, T*, int, int, float, cudaStream_t);        \
  template cudaError_t attention<T>(const AttnArgs<T>&, cudaStream_t);                                                          \
  template cudaError_t bias_gelu<T>(const float*, const float*, T*, long, int, cudaStream_t);                                   \
  template cudaError_t convert_f32<T>(const float*, T*, long, cudaStream_t);                                                    \
  template cudaError_t add_bias<T>(T*, const float*, long, int, bool, cudaStream_t);                                           \
  template cudaError_t gelu_inplace<T>(T*, long, cudaStream_t);
IR_EMU_TYPED(__nv_bfloat16)
IR_EMU_TYPED(__half)
#undef IR_EMU_TYPED

}  // namespace cuda
}  // namespace ir
