// embed.cu — the embedding stages of both towers.
//
// vit_patchify   pixels fp32 [B, 3, S, S] → patches T [B*G*G, 3*P*P] with G = S/P, column
//                order (c, ky, kx) (= the conv weight [width, 3, P, P] flattened), so the
//                stride-P patch conv is one GEMM. Pure gather + one rounding to T (RN):
//                exact w.r.t. a CPU gather + RN conversion.
//                Launch: one thread per output element, grid-stride, 256 threads; writes
//                are fully coalesced, reads are contiguous runs of P floats.
// vit_assemble   x fp32 [B, N+1, width]: row 0 = cls + pos[0], row 1+i = patch_out[b*N+i] +
//                pos[1+i]; one fp32 add per element (exact vs CPU). Launch: one thread per
//                element, grid-stride, 256 threads.
// bert_embed_ln  h = LayerNorm(word[ids[b,t]] + pos[t]) fused: out32 fp32 [B, L, h] (the
//                residual stream) and out T [B, L, h] (the first GEMM input). One warp per
//                (b, t) row, 4 warps per block; the row's values are recomputed from the
//                (L1/L2-resident) tables in each of the three passes (sum → mean,
//                sum of squared deviations → biased variance, normalize) so any h works;
//                all statistics in fp32, rstd = 1 / sqrtf(var + eps) (IEEE).
//                ids are assumed < vocab (validated by the caller); t < maxPos likewise.
#include "common.cuh"
#include "ops.cuh"

namespace ir::cuda {
namespace {

// pixels [B, 3, S, S] → patches [B*G*G, 3*P*P]
template <typename T>
__global__ void vit_patchify_kernel(const float* __restrict__ pixels, T* __restrict__ patches, int S, int P, int G, long total) {
  const int K = 3 * P * P;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const long row = i / K;
    const int col = static_cast<int>(i - row * K);
    const long b = row / (static_cast<long>(G) * G);
    const int p = static_cast<int>(row - b * G * G);
    const int gy = p / G, gx = p - gy * G;
    const int c = col / (P * P);
    const int rem = col - c * P * P;
    const int ky = rem / P, kx = rem - ky * P;
    const long src = ((b * 3 + c) * S + (gy * P + ky)) * static_cast<long>(S) + gx * P + kx;
    patches[i] = from_float<T>(pixels[src]);
  }
}

// x [B, N+1, width]
__global__ void vit_assemble_kernel(const float* __restrict__ patch_out, const float* __restrict__ cls, const float* __restrict__ pos,
                                    float* __restrict__ x, int N, int width, long total) {
  const long per_image = static_cast<long>(N + 1) * width;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const long b = i / per_image;
    const long r = i - b * per_image;  // t * width + c
    const int t = static_cast<int>(r / width);
    const int c = static_cast<int>(r - static_cast<long>(t) * width);
    const float base = t == 0 ? cls[c] : patch_out[(b * N + (t - 1)) * width + c];
    x[i] = base + pos[r];
  }
}

constexpr int kEmbedWarps = 4;

// one warp per row (b, t) of [B*L, h]
template <typename T>
__global__ void bert_embed_ln_kernel(const int32_t* __restrict__ ids, const T* __restrict__ word, const float* __restrict__ pos,
                                     const float* __restrict__ gamma, const float* __restrict__ beta, float* __restrict__ out32,
                                     T* __restrict__ out, int rows, int L, int h, float eps) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kEmbedWarps + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int t = row % L;
  const T* w = word + static_cast<long>(ids[row]) * h;
  const float* p = pos + static_cast<long>(t) * h;
  float s = 0.0f;
  for (int i = lane; i < h; i += 32) s += to_float(w[i]) + p[i];
  const float mean = warp_sum(s) / static_cast<float>(h);
  float ss = 0.0f;
  for (int i = lane; i < h; i += 32) {
    const float d = (to_float(w[i]) + p[i]) - mean;
    ss += d * d;
  }
  const float var = warp_sum(ss) / static_cast<float>(h);
  const float rstd = 1.0f / sqrtf(var + eps);
  float* o32 = out32 + static_cast<long>(row) * h;
  T* o = out + static_cast<long>(row) * h;
  for (int i = lane; i < h; i += 32) {
    const float y = ((to_float(w[i]) + p[i]) - mean) * rstd * gamma[i] + beta[i];
    o32[i] = y;
    o[i] = from_float<T>(y);
  }
}

}  // namespace

template <typename T>
cudaError_t vit_patchify(const float* pixels, T* patches, int B, int S, int P, cudaStream_t stream) {
  if (B < 0 || S <= 0 || P <= 0 || S % P != 0) return cudaErrorInvalidValue;
  const int G = S / P;
  const long total = static_cast<long>(B) * G * G * 3 * P * P;
  if (total == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  vit_patchify_kernel<T><<<grid_1d(total, kThreads), kThreads, 0, stream>>>(pixels, patches, S, P, G, total);
  return launch_status();
}

cudaError_t vit_assemble(const float* patch_out, const float* cls, const float* pos, float* x, int B, int N, int width, cudaStream_t stream) {
  if (B < 0 || N < 0 || width <= 0) return cudaErrorInvalidValue;
  const long total = static_cast<long>(B) * (N + 1) * width;
  if (total == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  vit_assemble_kernel<<<grid_1d(total, kThreads), kThreads, 0, stream>>>(patch_out, cls, pos, x, N, width, total);
  return launch_status();
}

template <typename T>
cudaError_t bert_embed_ln(const int32_t* ids, const T* word, const float* pos, const float* gamma, const float* beta, float* out32, T* out,
                          int B, int L, int h, float eps, cudaStream_t stream) {
  if (B < 0 || L <= 0 || h <= 0 || !out32 || !out) return cudaErrorInvalidValue;
  const int rows = B * L;
  if (rows == 0) return cudaSuccess;
  bert_embed_ln_kernel<T><<<ceil_div(rows, kEmbedWarps), kEmbedWarps * 32, 0, stream>>>(ids, word, pos, gamma, beta, out32, out, rows, L, h, eps);
  return launch_status();
}

#define IR_INSTANTIATE(T)                                                                                                       \
  template cudaError_t vit_patchify<T>(const float*, T*, int, int, int, cudaStream_t);                                          \
  template cudaError_t bert_embed_ln<T>(const int32_t*, const T*, const float*, const float*, const float*, float*, T*, int, int, \
                                        int, float, cudaStream_t);
IR_INSTANTIATE(__nv_bfloat16)
IR_INSTANTIATE(__half)
#undef IR_INSTANTIATE

}  // namespace ir::cuda
