// decode_png.cc — PNG decoding with the system libpng 1.6, for bit depths 1..8.
//
// Pillow 9.4 inflates PNG itself (zlib) and unpacks rows with its rawmodes; for 1..8-bit
// files the results are the plain samples, which libpng gives with no transforms except:
//   - grey 1/2/4-bit: png_set_expand_gray_1_2_4_to_8 (×255/×85/×17, as Pillow's 1, L;2,
//     L;4 unpackers; tRNS is not turned into alpha because PNG_EXPAND_tRNS is not set);
//   - palette: png_set_packing (one index per byte) and our own PLTE lookup, so indices
//     past the end of a short PLTE read Pillow's default ramp (i, i, i);
//   - interlaced: png_set_interlace_handling (Adam7 reassembled by libpng).
// No gamma, ICC, background or alpha transforms: Pillow applies none. 16-bit files are
// Unsupported (the caller decodes them another way).
//
// CRCs: IDAT CRCs and the zlib Adler-32 are not checked (Pillow 9.4 skips both; the
// chunks before IDAT are CRC-checked by formats/png.ts as Pillow does).
// Limits: libpng's default 1,000,000-pixel width/height caps are lifted (Pillow has none;
// the caller's pixel limit is checked here from IHDR before allocating).
// Errors: png_error → our error callback → png_longjmp back here → Corrupt with libpng's
// message; running out of input is a png_error. Warnings are ignored (benign errors are
// warnings for readers). Reading stops after the last row (png_read_end is not called):
// like Pillow, chunks after the image data are not required.
//
// setjmp/longjmp: only POD locals are alive across libpng calls.
#include "decode_png.h"

#include <png.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace imagereward {
namespace {

struct Context {
  const uint8_t* data;
  size_t size;
  size_t pos;
  char message[256];
};

void on_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<Context*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof ctx->message, "%s", msg ? msg : "libpng error");
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

void on_read(png_structp png, png_bytep out, size_t length) {
  auto* ctx = static_cast<Context*>(png_get_io_ptr(png));
  if (length > ctx->size - ctx->pos) png_error(png, "unexpected end of data (truncated file)");
  std::memcpy(out, ctx->data + ctx->pos, length);
  ctx->pos += length;
}

// 0 ok, 1 libpng error, 2 too large, 3 unsupported, 4 out of memory.
int run(Context* ctx, uint64_t max_pixels, DecodedPixels* out, char* why, size_t why_len) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, on_error, on_warning);
  if (!png) return 4;
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return 4;
  }
  uint8_t* volatile buffer = nullptr;
  png_bytep* volatile rows = nullptr;
  if (setjmp(png_jmpbuf(png))) {
    std::free(buffer);
    std::free(rows);
    png_destroy_read_struct(&png, &info, nullptr);
    return 1;
  }
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  // Pillow checks the CRCs of the chunks before the first IDAT (decode.ts does that too)
  // but skips IDAT CRCs and never reaches the zlib stream's Adler-32: do the same.
  png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
#ifdef PNG_IGNORE_ADLER32
  png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
#endif
  png_set_read_fn(png, ctx, on_read);
  png_read_info(png, info);

  png_uint_32 w = 0, h = 0;
  int depth = 0, colour = 0, interlace = 0;
  png_get_IHDR(png, info, &w, &h, &depth, &colour, &interlace, nullptr, nullptr);
  if (static_cast<uint64_t>(w) * h > max_pixels) {
    std::snprintf(why, why_len, "%ux%u = %llu pixels is over the limit of %llu", w, h,
                  static_cast<unsigned long long>(static_cast<uint64_t>(w) * h), static_cast<unsigned long long>(max_pixels));
    png_destroy_read_struct(&png, &info, nullptr);
    return 2;
  }
  if (depth > 8) {
    std::snprintf(why, why_len, "%d-bit samples are not decoded natively", depth);
    png_destroy_read_struct(&png, &info, nullptr);
    return 3;
  }
  int channels;
  switch (colour) {
    case PNG_COLOR_TYPE_GRAY: channels = 1; if (depth < 8) png_set_expand_gray_1_2_4_to_8(png); break;
    case PNG_COLOR_TYPE_RGB: channels = 3; break;
    case PNG_COLOR_TYPE_PALETTE: channels = 1; if (depth < 8) png_set_packing(png); break;  // indices, looked up below
    case PNG_COLOR_TYPE_GRAY_ALPHA: channels = 2; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: channels = 4; break;
    default:
      std::snprintf(why, why_len, "colour type %d", colour);
      png_destroy_read_struct(&png, &info, nullptr);
      return 3;
  }
  if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_channels(png, info) != channels || png_get_bit_depth(png, info) != 8 ||
      png_get_rowbytes(png, info) != static_cast<size_t>(w) * channels) {
    std::snprintf(why, why_len, "unexpected libpng row layout");
    png_destroy_read_struct(&png, &info, nullptr);
    return 3;
  }
  const bool palette = colour == PNG_COLOR_TYPE_PALETTE;
  const int out_channels = palette ? 3 : channels;
  const size_t stride = static_cast<size_t>(w) * channels;
  const size_t out_bytes = static_cast<size_t>(w) * static_cast<size_t>(h) * out_channels;
  // Palette images are read as indices into the tail of the RGB buffer, then expanded in place.
  buffer = static_cast<uint8_t*>(std::malloc(out_bytes));
  rows = static_cast<png_bytep*>(std::malloc(sizeof(png_bytep) * h));
  if (!buffer || !rows) {
    std::free(buffer);
    std::free(rows);
    png_destroy_read_struct(&png, &info, nullptr);
    return 4;
  }
  uint8_t* base = palette ? buffer + (out_bytes - stride * h) : buffer;
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = base + static_cast<size_t>(y) * stride;
  png_read_image(png, rows);

  if (palette) {
    uint8_t lut[256 * 3];
    for (int i = 0; i < 256; ++i) lut[i * 3] = lut[i * 3 + 1] = lut[i * 3 + 2] = static_cast<uint8_t>(i);
    png_colorp plte = nullptr;
    int entries = 0;
    if (png_get_PLTE(png, info, &plte, &entries) != 0 && plte) {
      for (int i = 0; i < entries && i < 256; ++i) {
        lut[i * 3] = plte[i].red;
        lut[i * 3 + 1] = plte[i].green;
        lut[i * 3 + 2] = plte[i].blue;
      }
    }
    const size_t pixels = static_cast<size_t>(w) * h;
    // In-place forward expansion is safe: the indices sit at base = buffer + 2*pixels, and
    // writing pixel p (buffer[3p .. 3p+2]) stays below index p+1 at buffer[2*pixels + p + 1].
    for (size_t p = 0; p < pixels; ++p) {
      const uint8_t* e = lut + base[p] * 3;
      uint8_t* o = buffer + p * 3;
      o[0] = e[0];
      o[1] = e[1];
      o[2] = e[2];
    }
  }
  std::free(rows);
  png_destroy_read_struct(&png, &info, nullptr);
  out->data = buffer;
  out->bytes = out_bytes;
  out->width = static_cast<int>(w);
  out->height = static_cast<int>(h);
  out->channels = out_channels;
  return 0;
}

}  // namespace

DecodeResult decode_png(const uint8_t* data, size_t size, uint64_t max_pixels) {
  DecodeResult r;
  if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
    r.message = "not a PNG signature";
    return r;
  }
  Context ctx{data, size, 0, {0}};
  char why[256];
  why[0] = '\0';
  switch (run(&ctx, max_pixels, &r.pixels, why, sizeof why)) {
    case 0: r.status = DecodeStatus::Ok; break;
    case 2: r.status = DecodeStatus::TooLarge; r.message = why; break;
    case 3: r.status = DecodeStatus::Unsupported; r.message = why; break;
    case 4: r.status = DecodeStatus::Corrupt; r.message = "out of memory"; break;
    default: r.status = DecodeStatus::Corrupt; r.message = ctx.message[0] ? ctx.message : "libpng error"; break;
  }
  return r;
}

}  // namespace imagereward
