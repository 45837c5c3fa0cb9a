// preprocess.cu — uint8 HWC → normalized fp32 CHW (torchvision ToTensor + Normalize).
//
// Layouts: hwc uint8 [B, S, S, 3] (RGB interleaved, after the Pillow-exact resize and
//          center crop done on the host); chw fp32 [B, 3, S, S].
// Precision: each output is three correctly rounded IEEE fp32 operations, in torch's
//          order: x = float(v) / 255; c = x - mean[ch]; y = c / std[ch]. The explicit
//          __fdiv_rn / __fsub_rn intrinsics keep nvcc from contracting or approximating
//          them (the build has no -use_fast_math, but this does not rely on that), so the
//          result is bit-identical to the CPU path (src/normalize.cc).
// Fused:   nothing else; the op is bandwidth bound (3 B in, 12 B out per pixel).
// Launch:  one thread per pixel (b, y, x) in a grid-stride loop, 256 threads per block;
//          reads 3 consecutive bytes, writes one fp32 to each of the 3 planes (each plane
//          write is coalesced across the warp). mean/std travel by value as kernel
//          parameters (they are host arrays).
#include "common.cuh"
#include "ops.cuh"

namespace ir::cuda {
namespace {

struct NormParams {
  float mean[3];
  float std[3];
};

// hwc [B, S, S, 3] u8 → chw [B, 3, S, S] f32
__global__ void normalize_u8_kernel(const uint8_t* __restrict__ hwc, float* __restrict__ chw, long npix_per_image, long total,
                                    NormParams p) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const long b = i / npix_per_image;
    const long px = i - b * npix_per_image;
    const uint8_t* src = hwc + i * 3;
    float* dst = chw + b * 3 * npix_per_image + px;
#pragma unroll
    for (int c = 0; c < 3; ++c) {
      const float x = __fdiv_rn(static_cast<float>(src[c]), 255.0f);  // ToTensor
      const float centered = __fsub_rn(x, p.mean[c]);                  // Normalize: sub_
      dst[c * npix_per_image] = __fdiv_rn(centered, p.std[c]);         // Normalize: div_
    }
  }
}

}  // namespace

cudaError_t normalize_u8(const uint8_t* hwc, float* chw, int B, int S, const float mean[3], const float std[3], cudaStream_t stream) {
  if (B < 0 || S < 0 || !mean || !std) return cudaErrorInvalidValue;
  const long npix = static_cast<long>(S) * S;
  const long total = npix * B;
  if (total == 0) return cudaSuccess;
  NormParams p;
  for (int c = 0; c < 3; ++c) {
    p.mean[c] = mean[c];
    p.std[c] = std[c];
  }
  constexpr int kThreads = 256;
  normalize_u8_kernel<<<grid_1d(total, kThreads), kThreads, 0, stream>>>(hwc, chw, npix, total, p);
  return launch_status();
}

}  // namespace ir::cuda
