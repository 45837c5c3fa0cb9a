// decode_webp.h — still WebP → interleaved RGB or RGBA with the system libwebp.
#pragma once
#include "decode_common.h"

namespace imagereward {

// alpha: decode to RGBA (4 channels, straight alpha) instead of RGB (3); the caller
// decides from the header as Pillow does (WebPGetFeatures' has_alpha). Animated files
// are Unsupported (the caller falls back).
DecodeResult decode_webp(const uint8_t* data, size_t size, uint64_t max_pixels, bool alpha);

}  // namespace imagereward
