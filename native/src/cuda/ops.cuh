// The engine's own CUDA kernels: the public op of every op family, as the engine
// (engine.cu) calls them. One family per file (layernorm.cu, attention.cu,
// embed.cu, elementwise.cu, preprocess.cu, head.cu); each file has a prose header
// and is kernel → launcher → the public op declared here. GEMMs are not here:
// they go through cuBLASLt (gemm.cuh).
//
// Conventions (all ops):
//   - T is the activation/weight storage type: __nv_bfloat16 (default) or __half.
//     Explicit instantiations for both live in each .cu.
//   - Row-major. "[B, L, n]" means contiguous with n fastest.
//   - The residual streams (ViT tokens, BERT hidden states) are fp32; GEMM inputs
//     are T; every reduction (LayerNorm statistics, softmax, dot products)
//     accumulates in fp32.
//   - Ops only enqueue work on `stream` and never synchronize; they check their
//     launch with cudaGetLastError and return it (cudaSuccess on success). They
//     never print, exit or abort; the engine turns errors into exceptions.
#pragma once

#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace ir::cuda {

// ---- preprocess.cu ---------------------------------------------------------------
// uint8 RGB images after the Pillow-exact resize + center crop, interleaved HWC
// [B, S, S, 3], → model pixels fp32 CHW [B, 3, S, S] with torchvision's
// ToTensor + Normalize rounding: (float(v) / 255.0f - mean[c]) / std[c], IEEE
// division, no FMA contraction (bit-identical to the CPU path).
// mean/std are HOST arrays (copied by value into the kernel's parameters).
cudaError_t normalize_u8(const uint8_t* hwc, float* chw, int B, int S, const float mean[3], const float std[3], cudaStream_t stream);

// ---- embed.cu --------------------------------------------------------------------
// ViT patchify (im2col for the stride-16 conv): pixels fp32 [B, 3, S, S] →
// patches T [B * (S/P)^2, 3*P*P], column order (c, ky, kx) = the conv weight
// [width, 3, P, P] flattened, so patch_embed is one GEMM against it.
template <typename T>
cudaError_t vit_patchify(const float* pixels, T* patches, int B, int S, int P, cudaStream_t stream);

// ViT token assembly: x[b, 0, :] = cls + pos[0]; x[b, 1 + i, :] = patch_out[b * N + i, :] + pos[1 + i]
// patch_out fp32 [B * N, width] (the patch GEMM output incl. bias), cls fp32 [width],
// pos fp32 [N + 1, width], x fp32 [B, N + 1, width].
cudaError_t vit_assemble(const float* patch_out, const float* cls, const float* pos, float* x, int B, int N, int width, cudaStream_t stream);

// BERT embeddings fused with their LayerNorm: h = LN(word[ids[b, t]] + pos[t]).
// ids int32 [B, L] (validated < vocab by the caller); word T [vocab, h]; pos fp32 [maxPos, h];
// gamma/beta fp32 [h]; out32 fp32 [B, L, h] (residual stream), out T [B, L, h] (next GEMM input).
template <typename T>
cudaError_t bert_embed_ln(const int32_t* ids, const T* word, const float* pos, const float* gamma, const float* beta, float* out32, T* out,
                          int B, int L, int h, float eps, cudaStream_t stream);

// ---- layernorm.cu ----------------------------------------------------------------
// y = (x - mean) / sqrt(var + eps) * gamma + beta over the last dim (biased variance,
// as torch). x fp32 [rows, n]; gamma/beta fp32 [n]; outputs optional (nullptr = skip):
// y32 fp32 [rows, n] (may alias x: in-place post-norm), y T [rows, n]. n % 4 == 0.
template <typename T>
cudaError_t layernorm(const float* x, const float* gamma, const float* beta, float* y32, T* y, int rows, int n, float eps, cudaStream_t stream);

// ---- attention.cu ----------------------------------------------------------------
// Fused multi-head attention, head dim 64: out = softmax(q k^T * scale + mask) v per
// (batch, head), softmax in fp32. Strided so one kernel serves all three uses:
//   ViT self-attention     q/k/v = slices of the qkv GEMM output [B, 197, 3, H, 64]
//   BERT self-attention    same with [B, 35, 3, H, 64] and the prompt mask
//   BERT cross-attention   q [B, 35, H*64]; k/v slices of the per-layer image K/V
//                          [B, 197, ..., 2, H, 64] (no mask)
// Row r of batch b, head hd starts at ptr + b * batch_stride + r * row_stride + hd * 64.
// mask: nullptr (no mask) or int32 [B, Tk], 1 = attend, 0 = add -10000 to the logit
// (upstream's extended mask (1 - m) * -10000, not -inf). out T, same addressing.
template <typename T>
struct AttnArgs {
  const T* q; long q_batch_stride; int q_row_stride;
  const T* k; const T* v; long kv_batch_stride; int kv_row_stride;
  T* out; long out_batch_stride; int out_row_stride;
  const int32_t* mask;  // [B, Tk] or nullptr
  int B, H, Tq, Tk;
  float scale;          // 1/sqrt(64)
};
template <typename T>
cudaError_t attention(const AttnArgs<T>& a, cudaStream_t stream);

// ---- elementwise.cu --------------------------------------------------------------
// Fallbacks for GEMM epilogues cuBLASLt does not offer for a shape/type, and
// conversions at load time.
// y[r, c] = gelu_erf(x[r, c] + bias[c]) — exact erf GELU, fp32 math; x fp32 or T.
template <typename T>
cudaError_t bias_gelu(const float* x, const float* bias, T* y, long rows, int cols, cudaStream_t stream);
// y32[r, c] += x[r, c] + bias[c] (residual add in fp32).
cudaError_t bias_residual(const float* x, const float* bias, float* y32, long rows, int cols, cudaStream_t stream);
// y[r, c] = RN((accumulate ? y[r, c] : 0) + bias[c]) in place, y fp32 or T: seeds a GEMM's
// output with its bias when cuBLASLt has no BIAS-epilogue algorithm (gemm.cu).
template <typename T>
cudaError_t add_bias(T* y, const float* bias, long rows, int cols, bool accumulate, cudaStream_t stream);
// fp32 → T (weights at load).
template <typename T>
cudaError_t convert_f32(const float* x, T* y, long n, cudaStream_t stream);

// ---- head.cu ---------------------------------------------------------------------
// The folded reward head: raw[b] = dot(hidden[b, 0, :], w) + bias; reward[b] =
// (raw[b] - mean) / std. hidden fp32 [B, L, h] (the [CLS] row of each prompt), w fp32 [h]
// (the 5 linear layers multiplied out in fp64 at load, rounded once), dot in fp32 with
// pairwise reduction. raw/reward fp32 [B].
cudaError_t reward_head(const float* hidden, int L, int h, const float* w, float bias, float mean, float std_, float* raw, float* reward, int B,
                        cudaStream_t stream);

}  // namespace ir::cuda
