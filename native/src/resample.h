// resample.h — Pillow 9.4 `Image.resize(size, filter)` for interleaved 8-bit images.
//
// Layout: row-major, `channels` (1..4) bytes per pixel, rows tightly packed
// (stride = width * channels), same layout out. Pillow keeps 2..4-band images in
// 4-byte pixels, but every band is resampled independently with the same integer
// arithmetic, so the per-band results are identical to Pillow's.
//
// Filters (full source box, as Image.resize without `box`/`reducing_gap`):
//   Bicubic  ImagingResample: separable, horizontal pass then vertical pass
//            (each skipped when that dimension is unchanged), Keys kernel a=-0.5
//            with support 2 widened by the reduction factor, double-precision
//            weights turned into 22-bit fixed point, int32 accumulation.
//   Nearest  ImagingTransform(AFFINE) → ImagingScaleAffine: source coordinate
//            walked in double (x0 = scale/2, then += scale), truncated.
// Same output size as input → plain copy (Pillow's Image.resize returns a copy).
//
// Preconditions (checked by the caller, src/addon.cc): 1 <= channels <= 4, all
// sizes >= 1, `src` holds width*height*channels bytes and `dst`
// out_width*out_height*channels bytes. Scratch memory is allocated per call
// (std::bad_alloc on failure); no global state, so calls may run concurrently.
#pragma once

#include <cstdint>

namespace imagereward {

enum class ResampleFilter { Nearest, Bicubic };

void resize_u8(const uint8_t* src, int width, int height, int channels,
               uint8_t* dst, int out_width, int out_height, ResampleFilter filter);

}  // namespace imagereward
