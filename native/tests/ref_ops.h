// ref_ops.h — host references of the engine's ops, written from their contracts in
// src/cuda/ops.cuh (not from the kernels), in fp64. One copy serves two users:
//   tests/test_ops.cu     the per-op GPU tests compare each kernel with these;
//   tests/emu/ops_emu.cc  the engine's CPU emulation runs the whole forward pass on them,
//                         and its end-to-end parity with ONNX Runtime (CI) is what proves
//                         these references right.
// Inputs are read and outputs written through callables, so the same code reads float
// vectors (tests) or T device buffers (emulation) and writes doubles or T.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ir::ref {

// Exact erf GELU.
inline double gelu_erf(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

// LayerNorm of one row as torch defines it (biased variance): y = (x − mean) / √(var + eps) · g + b.
inline void layernorm_row(const double* x, int n, const float* g, const float* b, double eps, double* y) {
  double m = 0;
  for (int i = 0; i < n; ++i) m += x[i];
  m /= n;
  double v = 0;
  for (int i = 0; i < n; ++i) v += (x[i] - m) * (x[i] - m);
  v /= n;
  const double r = 1.0 / std::sqrt(v + eps);
  for (int i = 0; i < n; ++i) y[i] = (x[i] - m) * r * g[i] + b[i];
}

// ViT patchify (ops.cuh vit_patchify): pixels fp32 [B, 3, S, S] → patches [B·(S/P)², 3·P·P],
// column order (c, ky, kx). emit(index into patches, pixel value).
template <typename Emit>
void vit_patchify(const float* px, int B, int S, int P, Emit&& emit) {
  const int G = S / P, K = 3 * P * P;
  for (int b = 0; b < B; ++b)
    for (int gy = 0; gy < G; ++gy)
      for (int gx = 0; gx < G; ++gx)
        for (int c = 0; c < 3; ++c)
          for (int ky = 0; ky < P; ++ky)
            for (int kx = 0; kx < P; ++kx) {
              const size_t row = (static_cast<size_t>(b) * G + gy) * G + gx;
              emit(row * K + static_cast<size_t>((c * P + ky) * P + kx), px[((static_cast<size_t>(b) * 3 + c) * S + gy * P + ky) * S + gx * P + kx]);
            }
}

// Multi-head attention, head dim 64 (ops.cuh attention): out = softmax(q kᵀ · scale + mask) v
// per (b, head); mask (nullable) int32 [B, Tk], 0 → −10000 added to the logit (upstream's
// extended mask). Row r of (b, hd) of q/k/v/out starts at b·batch_stride + r·row_stride +
// hd·64 (v_off: where v starts relative to k's buffer, when both are read through kv).
// q(i) / kv(i): the element at offset i as double; emit(offset into out, value).
template <typename Q, typename KV, typename Emit>
void attention(Q&& q, long q_bs, int q_rs, KV&& kv, long v_off, long kv_bs, int kv_rs, long o_bs, int o_rs, const int32_t* mask, int B, int H, int Tq,
               int Tk, double scale, Emit&& emit) {
  std::vector<double> s(static_cast<size_t>(Tk));
  for (int b = 0; b < B; ++b)
    for (int hd = 0; hd < H; ++hd)
      for (int i = 0; i < Tq; ++i) {
        const long qi = b * q_bs + static_cast<long>(i) * q_rs + hd * 64;
        double mx = -1e300;
        for (int j = 0; j < Tk; ++j) {
          const long kj = b * kv_bs + static_cast<long>(j) * kv_rs + hd * 64;
          double d = 0;
          for (int e = 0; e < 64; ++e) d += q(qi + e) * kv(kj + e);
          d *= scale;
          if (mask) d += (1.0 - mask[static_cast<long>(b) * Tk + j]) * -10000.0;
          s[j] = d;
          mx = std::max(mx, d);
        }
        double sum = 0;
        for (int j = 0; j < Tk; ++j) sum += (s[j] = std::exp(s[j] - mx));
        const long o = b * o_bs + static_cast<long>(i) * o_rs + hd * 64;
        for (int e = 0; e < 64; ++e) {
          double acc = 0;
          for (int j = 0; j < Tk; ++j) acc += s[j] * kv(v_off + b * kv_bs + static_cast<long>(j) * kv_rs + hd * 64 + e);
          emit(o + e, acc / sum);
        }
      }
}

}  // namespace ir::ref
