// head.cu — the folded ImageReward head.
//
// Layout:    hidden fp32 [B, L, h] (only row 0 of each prompt, the [CLS] state, is read);
//            w fp32 [h] (the 5 linear layers multiplied out in fp64 at load, rounded
//            once); raw, reward fp32 [B].
// Math:      raw[b] = dot(hidden[b, 0, :], w) + bias; reward[b] = (raw[b] - mean) / std.
//            The dot is fp32 with a fixed pairwise tree: each of the 256 threads sums a
//            strided slice (≤ 3 terms for h = 768), then warp butterflies and a final
//            warp over the 8 warp partials. Deterministic; error ~1e-6 relative to fp64.
// Launch:    one 256-thread block per prompt b. Negligible runtime.
#include "common.cuh"
#include "ops.cuh"

namespace ir::cuda {
namespace {

constexpr int kHeadThreads = 256;

__global__ void reward_head_kernel(const float* __restrict__ hidden, int L, int h, const float* __restrict__ w, float bias, float mean,
                                   float std_, float* __restrict__ raw, float* __restrict__ reward) {
  __shared__ float scratch[32];
  const int b = blockIdx.x;
  const float* x = hidden + static_cast<long>(b) * L * h;
  float s = 0.0f;
  for (int i = threadIdx.x; i < h; i += kHeadThreads) s += x[i] * w[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) {
    const float r = s + bias;
    if (raw) raw[b] = r;
    if (reward) reward[b] = (r - mean) / std_;
  }
}

}  // namespace

cudaError_t reward_head(const float* hidden, int L, int h, const float* w, float bias, float mean, float std_, float* raw, float* reward, int B,
                        cudaStream_t stream) {
  if (B < 0 || L <= 0 || h <= 0) return cudaErrorInvalidValue;
  if (B == 0) return cudaSuccess;
  reward_head_kernel<<<B, kHeadThreads, 0, stream>>>(hidden, L, h, w, bias, mean, std_, raw, reward);
  return launch_status();
}

}  // namespace ir::cuda
