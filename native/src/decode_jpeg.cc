// decode_jpeg.cc — JPEG decoding with the system libjpeg-turbo (libjpeg62 API).
//
// Settings are libjpeg's defaults, which are what Pillow 9.4's JpegDecode leaves in
// place when no draft mode is set: JDCT_ISLOW, do_fancy_upsampling = TRUE, scale 1/1,
// jpeg_color_space as libjpeg guesses it from JFIF/Adobe markers. out_color_space is
// set from the component count the way Pillow's rawmodes ask for it: GRAYSCALE, RGB
// (YCbCr converted by libjpeg) or CMYK (YCCK converted by libjpeg), and the CMYK
// samples are inverted afterwards (Pillow's "CMYK;I").
//
// Errors: libjpeg's error_exit would exit() the process; ours longjmps back to
// decode_jpeg, which reports Corrupt with libjpeg's message. Warnings are ignored as
// Pillow ignores them, except "Premature end of JPEG file" while reading the header or
// the scanlines: Pillow raises "image file is truncated" there, so that is Corrupt too.
// A missing EOI after the last scanline is tolerated (jpeg_finish_decompress is not
// called; the decompressor is destroyed instead).
//
// setjmp/longjmp: nothing with a destructor is alive between setjmp and any libjpeg
// call that may longjmp; the output buffer is a plain malloc'd pointer freed on the
// error path.
#include "decode_jpeg.h"

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" {
#include <jpeglib.h>
#include <jerror.h>
}

namespace imagereward {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;  // first: libjpeg casts cinfo->err to this
  jmp_buf jump;
  bool reading;  // while true, a premature-EOF warning is fatal
  char message[JMSG_LENGTH_MAX];
};

void on_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_emit_message(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (level < 0) {
    err->pub.num_warnings++;
    if (err->reading && err->pub.msg_code == JWRN_JPEG_EOF) {
      (*cinfo->err->format_message)(cinfo, err->message);
      std::longjmp(err->jump, 1);
    }
  }
}

void on_output_message(j_common_ptr) {}

// Returns 0 on success, 1 on a libjpeg error (message in err.message), 2 too large,
// 3 unsupported, 4 out of memory. POD-only body (see the file header).
int run(const uint8_t* data, size_t size, uint64_t max_pixels, DecodedPixels* out, char* why, size_t why_len) {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  std::memset(&cinfo, 0, sizeof cinfo);
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error_exit;
  err.pub.emit_message = on_emit_message;
  err.pub.output_message = on_output_message;
  err.reading = true;
  err.message[0] = '\0';
  uint8_t* volatile buffer = nullptr;

  if (setjmp(err.jump)) {
    std::free(buffer);
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(why, why_len, "%s", err.message);
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, const_cast<unsigned char*>(data), static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);

  const uint64_t w = cinfo.image_width, h = cinfo.image_height;
  if (w == 0 || h == 0) {
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(why, why_len, "bad size %llux%llu", static_cast<unsigned long long>(w), static_cast<unsigned long long>(h));
    return 1;
  }
  if (w * h > max_pixels) {
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(why, why_len, "%llux%llu = %llu pixels is over the limit of %llu", static_cast<unsigned long long>(w),
                  static_cast<unsigned long long>(h), static_cast<unsigned long long>(w * h),
                  static_cast<unsigned long long>(max_pixels));
    return 2;
  }
  int channels;
  switch (cinfo.num_components) {
    case 1: cinfo.out_color_space = JCS_GRAYSCALE; channels = 1; break;
    case 3: cinfo.out_color_space = JCS_RGB; channels = 3; break;
    case 4: cinfo.out_color_space = JCS_CMYK; channels = 4; break;
    default:
      jpeg_destroy_decompress(&cinfo);
      std::snprintf(why, why_len, "%d components are not supported", cinfo.num_components);
      return 3;
  }
  if (cinfo.data_precision != 8) {
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(why, why_len, "%d-bit samples are not supported", cinfo.data_precision);
    return 3;
  }
  // Pillow's defaults, spelled out (they are libjpeg's too).
  cinfo.dct_method = JDCT_ISLOW;
  cinfo.do_fancy_upsampling = TRUE;
  cinfo.scale_num = 1;
  cinfo.scale_denom = 1;

  const size_t stride = static_cast<size_t>(w) * static_cast<size_t>(channels);
  const size_t bytes = stride * static_cast<size_t>(h);
  buffer = static_cast<uint8_t*>(std::malloc(bytes));
  if (!buffer) {
    jpeg_destroy_decompress(&cinfo);
    return 4;
  }
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_width != w || cinfo.output_height != h || cinfo.output_components != channels) {
    std::free(buffer);
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(why, why_len, "decoder output %ux%ux%d does not match the header", cinfo.output_width, cinfo.output_height,
                  cinfo.output_components);
    return 1;
  }
  JSAMPROW rows[16];
  while (cinfo.output_scanline < cinfo.output_height) {
    const JDIMENSION first = cinfo.output_scanline;
    JDIMENSION want = cinfo.output_height - first;
    if (want > 16) want = 16;
    for (JDIMENSION i = 0; i < want; ++i) rows[i] = buffer + static_cast<size_t>(first + i) * stride;
    if (jpeg_read_scanlines(&cinfo, rows, want) == 0) {  // cannot happen with a memory source
      std::free(buffer);
      jpeg_destroy_decompress(&cinfo);
      std::snprintf(why, why_len, "decoder stalled");
      return 1;
    }
  }
  err.reading = false;
  jpeg_destroy_decompress(&cinfo);  // no finish: a missing EOI is not an error (as in Pillow)

  if (channels == 4) {
    uint8_t* p = buffer;
    for (size_t i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(255 - p[i]);
  }
  out->data = buffer;
  out->bytes = bytes;
  out->width = static_cast<int>(w);
  out->height = static_cast<int>(h);
  out->channels = channels;
  return 0;
}

}  // namespace

DecodeResult decode_jpeg(const uint8_t* data, size_t size, uint64_t max_pixels) {
  DecodeResult r;
  if (size == 0) {
    r.message = "empty input";
    return r;
  }
  char why[JMSG_LENGTH_MAX + 64];
  why[0] = '\0';
  switch (run(data, size, max_pixels, &r.pixels, why, sizeof why)) {
    case 0: r.status = DecodeStatus::Ok; break;
    case 2: r.status = DecodeStatus::TooLarge; r.message = why; break;
    case 3: r.status = DecodeStatus::Unsupported; r.message = why; break;
    case 4: r.status = DecodeStatus::Corrupt; r.message = "out of memory"; break;
    default: r.status = DecodeStatus::Corrupt; r.message = why[0] ? why : "libjpeg error"; break;
  }
  return r;
}

}  // namespace imagereward
