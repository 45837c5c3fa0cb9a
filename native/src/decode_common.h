// decode_common.h — what every native image decoder (decode_jpeg/png/webp) returns.
//
// The decoders are thin wrappers over the system libraries that Debian's Pillow 9.4 links
// (libjpeg-turbo 2.1, libpng 1.6, libwebp 1.2), called with the settings Pillow uses, so
// the samples equal Pillow's by construction. They run on a libuv pool thread: no
// Node-API here, no globals, each call owns its library state. Pixels are interleaved
// 8-bit samples in a malloc'd buffer the caller owns (free it with std::free, or hand it
// to JS as an external ArrayBuffer). The pixel limit is checked from the stream's own
// header before the output is allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace imagereward {

enum class DecodeStatus {
  Ok,
  Corrupt,      // bad, truncated or empty data: the library refused it
  TooLarge,     // header size over max_pixels (checked before allocating)
  Unsupported,  // valid but not a case this decoder handles (caller falls back)
};

struct DecodedPixels {
  uint8_t* data = nullptr;  // malloc'd, width*height*channels bytes
  size_t bytes = 0;
  int width = 0;
  int height = 0;
  int channels = 0;
};

struct DecodeResult {
  DecodeStatus status = DecodeStatus::Corrupt;
  std::string message;  // set unless Ok
  DecodedPixels pixels;
};

}  // namespace imagereward
