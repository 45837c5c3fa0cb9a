// normalize.cc — crop + ToTensor + Normalize into float32 CHW (see normalize.h).
//
// Kernel:   gather one output plane row: out[x] = lut[c][rgb[(x) * 3 + c]].
// Launcher: builds the 3x256 float32 table (three rounded float32 ops per entry,
//           evaluated with -ffp-contract=off so nothing is fused or widened),
//           then walks planes and rows of the crop.
// The table is rebuilt per call (768 entries, well under a microsecond) so
// mean/std may differ between calls and nothing is shared between threads.
#include "normalize.h"

#include <cfloat>
#include <cstddef>

// float expressions must be evaluated in float (not x87 long double) for the
// table to equal torch's float32 arithmetic.
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0
#error "normalize.cc needs FLT_EVAL_METHOD == 0 (SSE/NEON float arithmetic)"
#endif

namespace imagereward {
namespace {

// Each statement is one correctly rounded float32 operation: this file is
// compiled with -ffp-contract=off and without -ffast-math.
void build_lut(const float mean[3], const float std[3], float lut[3][256]) {
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      const float x = static_cast<float>(v) / 255.0f;  // ToTensor
      const float centered = x - mean[c];               // Normalize: sub_
      lut[c][v] = centered / std[c];                    // Normalize: div_
    }
  }
}

void gather_row(const uint8_t* in, int channel, int n, const float* lut, float* out) {
  for (int x = 0; x < n; ++x) out[x] = lut[in[static_cast<size_t>(x) * 3 + static_cast<size_t>(channel)]];
}

}  // namespace

void crop_normalize_rgb_chw(const uint8_t* rgb, int width, int height, int left, int top, int size,
                            const float mean[3], const float std[3], float* out) {
  (void)height;
  float lut[3][256];
  build_lut(mean, std, lut);
  const size_t stride = static_cast<size_t>(width) * 3;
  const size_t plane = static_cast<size_t>(size) * static_cast<size_t>(size);
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < size; ++y) {
      const uint8_t* in = rgb + static_cast<size_t>(top + y) * stride + static_cast<size_t>(left) * 3;
      gather_row(in, c, size, lut[c], out + static_cast<size_t>(c) * plane + static_cast<size_t>(y) * static_cast<size_t>(size));
    }
  }
}

}  // namespace imagereward
