// decode_jpeg.h — JPEG → interleaved 8-bit samples with the system libjpeg(-turbo).
#pragma once
#include "decode_common.h"

namespace imagereward {

// Decodes as Pillow 9.4's JpegDecode does (libjpeg defaults: JDCT_ISLOW, fancy
// upsampling, no scaling, libjpeg's own colour-space guess): 1 component → grey
// (1 channel), 3 → RGB (3), 4 → CMYK (4) with every sample inverted (Pillow's
// "CMYK;I" rawmode, which it applies to every 4-component JPEG).
DecodeResult decode_jpeg(const uint8_t* data, size_t size, uint64_t max_pixels);

}  // namespace imagereward
