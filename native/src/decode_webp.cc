// decode_webp.cc — still-image WebP decoding with the system libwebp.
//
// Pillow 9.4 (Debian, built with WebPAnimDecoder) decodes every WebP through the
// animation decoder: frame 0 is a key frame decoded straight into a cleared canvas with
// WebPDecode's default options (fancy upsampling, no dithering, no threads), as RGBA
// when the file has alpha, else RGBX with X dropped. For a still image that is exactly
// WebPDecode into MODE_RGBA or MODE_RGB, which is what this does. Animated files are
// Unsupported here (the caller decodes them another way).
//
// The pixel limit is checked from WebPGetFeatures' size before allocating; the output
// is external memory we allocate, so a failure frees it. Errors → Corrupt with libwebp's
// VP8StatusCode spelled out.
#include "decode_webp.h"

#include <webp/decode.h>

#include <cstdio>
#include <cstdlib>

namespace imagereward {
namespace {

const char* status_text(VP8StatusCode s) {
  switch (s) {
    case VP8_STATUS_OK: return "ok";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "user abort";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data (truncated file)";
  }
  return "unknown error";
}

}  // namespace

DecodeResult decode_webp(const uint8_t* data, size_t size, uint64_t max_pixels, bool alpha) {
  DecodeResult r;
  if (size == 0) {
    r.message = "empty input";
    return r;
  }
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) {
    r.message = "libwebp version mismatch";
    return r;
  }
  VP8StatusCode s = WebPGetFeatures(data, size, &config.input);
  if (s != VP8_STATUS_OK) {
    r.message = status_text(s);
    return r;
  }
  const uint64_t w = static_cast<uint64_t>(config.input.width), h = static_cast<uint64_t>(config.input.height);
  if (config.input.has_animation) {
    r.status = DecodeStatus::Unsupported;
    r.message = "animated WebP is not decoded natively";
    return r;
  }
  if (w == 0 || h == 0) {
    r.message = "bad size";
    return r;
  }
  if (w * h > max_pixels) {
    char why[160];
    std::snprintf(why, sizeof why, "%llux%llu = %llu pixels is over the limit of %llu", static_cast<unsigned long long>(w),
                  static_cast<unsigned long long>(h), static_cast<unsigned long long>(w * h), static_cast<unsigned long long>(max_pixels));
    r.status = DecodeStatus::TooLarge;
    r.message = why;
    return r;
  }
  const int channels = alpha ? 4 : 3;
  const size_t stride = static_cast<size_t>(w) * channels;
  const size_t bytes = stride * static_cast<size_t>(h);
  auto* buffer = static_cast<uint8_t*>(std::malloc(bytes));
  if (!buffer) {
    r.message = "out of memory";
    return r;
  }
  config.output.colorspace = alpha ? MODE_RGBA : MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = buffer;
  config.output.u.RGBA.stride = static_cast<int>(stride);
  config.output.u.RGBA.size = bytes;
  s = WebPDecode(data, size, &config);
  WebPFreeDecBuffer(&config.output);  // nothing to free for external memory; kept for symmetry
  if (s != VP8_STATUS_OK) {
    std::free(buffer);
    r.message = status_text(s);
    return r;
  }
  r.status = DecodeStatus::Ok;
  r.pixels.data = buffer;
  r.pixels.bytes = bytes;
  r.pixels.width = static_cast<int>(w);
  r.pixels.height = static_cast<int>(h);
  r.pixels.channels = channels;
  return r;
}

}  // namespace imagereward
