// resample.cc — Pillow-exact resize of interleaved 8-bit images (see resample.h).
//
// Bicubic (ImagingResample semantics, Pillow 9.4 Resample.c):
//   coefficients  per output index xx, in double:
//                   scale   = in / out, filterscale = max(scale, 1)
//                   support = 2 * filterscale, ksize = 2 * ceil(support) + 1
//                   center  = (xx + 0.5) * scale
//                   xmin    = max((int)(center - support + 0.5), 0)
//                   count   = min((int)(center + support + 0.5), in) - xmin
//                   w[i]    = keys((xmin + i - center + 0.5) * (1 / filterscale)), w /= sum(w)
//                 then fixed point with PRECISION_BITS = 22:
//                   k[i] = (int)(w[i] * 2^22 ± 0.5)   (round half away from zero)
//   accumulate    int32, starting at 2^21 (the rounding half), sum of pixel * k
//   store         clamp(acc >> 22, 0, 255)
//   pass order    horizontal over only the source rows the vertical pass reads
//                 (Pillow's ybox_first..ybox_last trick), then vertical; a pass
//                 whose dimension is unchanged is skipped.
//   bound         sum |k| <= 1.25 * 2^22 (+ rounding), so |acc| < 255 * 1.26 * 2^22 < 2^31.
//
// Kernels:
//   hpass8_avx2<C>  x86-64 with AVX2 (run-time check; IMAGEREWARD_NATIVE_SIMD=0
//                   turns it off): 8 source rows at a time, transposed to
//                   column-major so each tap is one 8-lane u8→i32 multiply-add
//                   across the 8 rows, then transposed back. Same sums, same order.
//   hpass_kernel<C> portable: one output pixel at a time, C accumulators (C = 1..4
//                   compiled separately), taps contiguous in the source row; also
//                   the AVX2 path's leftover rows (rows % 8).
//   vpass_kernel    channel-agnostic: a whole output row is a vector of
//                   out_width*C accumulators, updated one source row (tap) at a
//                   time, so the inner loop is a contiguous u8 * i32 multiply-add
//                   the compiler vectorises. Per accumulator the sum order is the
//                   tap order, as in Pillow.
//   nearest_kernel<C> ImagingScaleAffine: column table built once, rows copied.
// Launchers (hpass, resample_bicubic, resample_nearest) pick kernels and own the
// scratch; resize_u8 is the public op.
//
// Nothing is fused across passes; the scratch is the horizontal pass's output
// (kept rows x out_width x C bytes), the coefficient tables, one row of int32
// accumulators and, for AVX2, two 8-row transposition buffers.
#include "resample.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define IR_X86_DISPATCH 1
#include <immintrin.h>
#else
#define IR_X86_DISPATCH 0
#endif

namespace imagereward {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr int32_t kRoundHalf = int32_t{1} << (kPrecisionBits - 1);

// Hot loops get an AVX2 clone next to the baseline one on x86-64 GCC/Clang
// (chosen once at load time through an ifunc); elsewhere the plain build.
#if defined(__x86_64__) && defined(__ELF__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__INTEL_COMPILER)
#define IR_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define IR_MULTIVERSION
#endif

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift: floor, as Pillow's table index
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// ---- coefficients ---------------------------------------------------------------

// Keys cubic convolution kernel, a = -0.5, support 2 (Pillow's bicubic_filter).
inline double bicubic_kernel(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Fixed-point taps of one pass: output index i reads `count[i]` source samples
// starting at `first[i]`, weights k[i * ksize + t].
struct Taps {
  int ksize = 0;
  std::vector<int32_t> first;
  std::vector<int32_t> count;
  std::vector<int32_t> k;
};

Taps bicubic_taps(int in_size, int out_size) {
  // Pillow passes the box as float; for the full box in0 = 0 and in1 = in_size
  // exactly (sizes < 2^24), so (double)(in1 - in0) is just in_size.
  const double in0 = 0.0;
  const double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;

  Taps taps;
  taps.ksize = ksize;
  taps.first.resize(static_cast<size_t>(out_size));
  taps.count.resize(static_cast<size_t>(out_size));
  taps.k.assign(static_cast<size_t>(out_size) * static_cast<size_t>(ksize), 0);
  std::vector<double> w(static_cast<size_t>(ksize));

  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double v = bicubic_kernel((x + xmin - center + 0.5) * ss);
      w[static_cast<size_t>(x)] = v;
      ww += v;
    }
    int32_t* k = &taps.k[static_cast<size_t>(xx) * static_cast<size_t>(ksize)];
    for (int x = 0; x < xmax; ++x) {
      double v = w[static_cast<size_t>(x)];
      if (ww != 0.0) v /= ww;
      k[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                   : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    taps.first[static_cast<size_t>(xx)] = xmin;
    taps.count[static_cast<size_t>(xx)] = xmax;
  }
  return taps;
}

// ---- kernels ------------------------------------------------------------------------

// Horizontal pass over `rows` source rows starting at `row0`.
template <int C>
IR_MULTIVERSION void hpass_kernel(const uint8_t* src, size_t src_stride, int row0, int rows,
                                  uint8_t* dst, int out_w, const Taps& tx) {
  const size_t ksize = static_cast<size_t>(tx.ksize);
  const int32_t* first = tx.first.data();
  const int32_t* count = tx.count.data();
  const int32_t* kk = tx.k.data();
  for (int r = 0; r < rows; ++r) {
    const uint8_t* in = src + static_cast<size_t>(row0 + r) * src_stride;
    uint8_t* out = dst + static_cast<size_t>(r) * static_cast<size_t>(out_w) * C;
    for (int xx = 0; xx < out_w; ++xx) {
      const uint8_t* p = in + static_cast<size_t>(first[xx]) * C;
      const int32_t* k = kk + static_cast<size_t>(xx) * ksize;
      const int n = count[xx];
      int32_t acc[C];
      for (int c = 0; c < C; ++c) acc[c] = kRoundHalf;
      for (int t = 0; t < n; ++t) {
        const int32_t kt = k[t];
        for (int c = 0; c < C; ++c) acc[c] += static_cast<int32_t>(p[t * C + c]) * kt;
      }
      for (int c = 0; c < C; ++c) out[static_cast<size_t>(xx) * C + c] = clip8(acc[c]);
    }
  }
}

#if IR_X86_DISPATCH
// Horizontal pass, AVX2, 8 source rows at a time (x86-64 CPUs with AVX2,
// detected at run time). The 8 rows are transposed into column-major 8-byte
// groups (T[col][row]), so one tap of one channel for the 8 rows is a single
// 8-byte load widened to 8 int32 lanes: the multiply-add runs across rows, the
// sum per lane is in tap order exactly as in hpass_kernel, and no horizontal
// reduction is needed. The 8 results per (pixel, channel) are shifted,
// saturated to u8 by the signed/unsigned packs (= clamp to [0, 255]) and the
// block is transposed back into the 8 output rows.
// IMAGEREWARD_NATIVE_SIMD=0 (read once) forces the portable kernels, so tests
// can check both paths against the same Pillow fixtures on one machine.
bool cpu_has_avx2() {
  static const bool has = [] {
    const char* env = std::getenv("IMAGEREWARD_NATIVE_SIMD");
    if (env && std::strcmp(env, "0") == 0) return false;
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
}

// 8x8 byte transpose: in[i] points at 8 bytes, out[j] receives byte j of each in[i].
__attribute__((target("avx2"))) inline void transpose8x8(const uint8_t* const in[8], uint8_t* const out[8]) {
  const __m128i a01 = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in[0])),
                                        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in[1])));
  const __m128i a23 = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in[2])),
                                        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in[3])));
  const __m128i a45 = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in[4])),
                                        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in[5])));
  const __m128i a67 = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in[6])),
                                        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in[7])));
  const __m128i b0 = _mm_unpacklo_epi16(a01, a23);  // bytes 0..3 of in[0..3]
  const __m128i b1 = _mm_unpackhi_epi16(a01, a23);  // bytes 4..7 of in[0..3]
  const __m128i b2 = _mm_unpacklo_epi16(a45, a67);  // bytes 0..3 of in[4..7]
  const __m128i b3 = _mm_unpackhi_epi16(a45, a67);  // bytes 4..7 of in[4..7]
  const __m128i d0 = _mm_unpacklo_epi32(b0, b2);    // out[0], out[1]
  const __m128i d1 = _mm_unpackhi_epi32(b0, b2);    // out[2], out[3]
  const __m128i d2 = _mm_unpacklo_epi32(b1, b3);    // out[4], out[5]
  const __m128i d3 = _mm_unpackhi_epi32(b1, b3);    // out[6], out[7]
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out[0]), d0);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out[1]), _mm_unpackhi_epi64(d0, d0));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out[2]), d1);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out[3]), _mm_unpackhi_epi64(d1, d1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out[4]), d2);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out[5]), _mm_unpackhi_epi64(d2, d2));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out[6]), d3);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out[7]), _mm_unpackhi_epi64(d3, d3));
}

// rows[r][0..n) → t[i * 8 + r]
__attribute__((target("avx2"))) void rows_to_columns(const uint8_t* const rows[8], size_t n, uint8_t* t) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint8_t* in[8];
    uint8_t* out[8];
    for (int r = 0; r < 8; ++r) in[r] = rows[r] + i;
    for (int j = 0; j < 8; ++j) out[j] = t + (i + static_cast<size_t>(j)) * 8;
    transpose8x8(in, out);
  }
  for (; i < n; ++i) {
    for (int r = 0; r < 8; ++r) t[i * 8 + static_cast<size_t>(r)] = rows[r][i];
  }
}

// t[i * 8 + r] → rows[r][0..n)
__attribute__((target("avx2"))) void columns_to_rows(const uint8_t* t, size_t n, uint8_t* const rows[8]) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint8_t* in[8];
    uint8_t* out[8];
    for (int j = 0; j < 8; ++j) in[j] = t + (i + static_cast<size_t>(j)) * 8;
    for (int r = 0; r < 8; ++r) out[r] = rows[r] + i;
    transpose8x8(in, out);
  }
  for (; i < n; ++i) {
    for (int r = 0; r < 8; ++r) rows[r][i] = t[i * 8 + static_cast<size_t>(r)];
  }
}

template <int C>
__attribute__((target("avx2"))) void hpass8_avx2(const uint8_t* src, int in_w, int row0, int blocks,
                                                 uint8_t* dst, int out_w, const Taps& tx) {
  const size_t in_bytes = static_cast<size_t>(in_w) * C;
  const size_t out_bytes = static_cast<size_t>(out_w) * C;
  std::vector<uint8_t> tin(in_bytes * 8), tout(out_bytes * 8);
  const size_t ksize = static_cast<size_t>(tx.ksize);
  const __m256i half = _mm256_set1_epi32(kRoundHalf);
  for (int b = 0; b < blocks; ++b) {
    const uint8_t* rows[8];
    uint8_t* orows[8];
    for (int r = 0; r < 8; ++r) {
      rows[r] = src + static_cast<size_t>(row0 + b * 8 + r) * in_bytes;
      orows[r] = dst + static_cast<size_t>(b * 8 + r) * out_bytes;
    }
    rows_to_columns(rows, in_bytes, tin.data());
    for (int xx = 0; xx < out_w; ++xx) {
      const uint8_t* q = tin.data() + static_cast<size_t>(tx.first[static_cast<size_t>(xx)]) * C * 8;
      const int32_t* k = tx.k.data() + static_cast<size_t>(xx) * ksize;
      const int n = tx.count[static_cast<size_t>(xx)];
      __m256i acc[C];
      for (int c = 0; c < C; ++c) acc[c] = half;
      for (int t = 0; t < n; ++t) {
        const __m256i kt = _mm256_set1_epi32(k[t]);
        for (int c = 0; c < C; ++c) {
          const __m256i px = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + (t * C + c) * 8)));
          acc[c] = _mm256_add_epi32(acc[c], _mm256_mullo_epi32(px, kt));
        }
      }
      for (int c = 0; c < C; ++c) {
        const __m256i v = _mm256_srai_epi32(acc[c], kPrecisionBits);
        const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(tout.data() + (static_cast<size_t>(xx) * C + c) * 8),
                         _mm_packus_epi16(w16, w16));
      }
    }
    columns_to_rows(tout.data(), out_bytes, orows);
  }
}
#endif  // IR_X86_DISPATCH

// Vertical pass: `row_bytes` = out_width * channels; source rows `src_stride` apart.
IR_MULTIVERSION void vpass_kernel(const uint8_t* src, size_t src_stride, uint8_t* dst, int out_h,
                                  size_t row_bytes, const Taps& ty, int32_t* acc) {
  const size_t ksize = static_cast<size_t>(ty.ksize);
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = ty.k.data() + static_cast<size_t>(yy) * ksize;
    const int n = ty.count[static_cast<size_t>(yy)];
    const uint8_t* base = src + static_cast<size_t>(ty.first[static_cast<size_t>(yy)]) * src_stride;
    for (size_t i = 0; i < row_bytes; ++i) acc[i] = kRoundHalf;
    for (int t = 0; t < n; ++t) {
      const uint8_t* row = base + static_cast<size_t>(t) * src_stride;
      const int32_t kt = k[t];
      for (size_t i = 0; i < row_bytes; ++i) acc[i] += static_cast<int32_t>(row[i]) * kt;
    }
    uint8_t* out = dst + static_cast<size_t>(yy) * row_bytes;
    for (size_t i = 0; i < row_bytes; ++i) out[i] = clip8(acc[i]);
  }
}

// ImagingScaleAffine rows: `xin[x]` source column of output column x (valid in
// [xmin, xmax)), source row by the double walk yo = a4/2, yo += a4. Pixels whose
// source falls outside the image are zero (Pillow's fill=1).
template <int C>
void nearest_kernel(const uint8_t* src, int w, int h, uint8_t* dst, int out_w, int out_h,
                    const int32_t* xin, int xmin, int xmax, double a4) {
  const size_t src_stride = static_cast<size_t>(w) * C;
  const size_t dst_stride = static_cast<size_t>(out_w) * C;
  double yo = 0.0 + a4 * 0.5;
  for (int y = 0; y < out_h; ++y) {
    const int yi = yo < 0.0 ? -1 : static_cast<int>(yo);
    uint8_t* out = dst + static_cast<size_t>(y) * dst_stride;
    std::memset(out, 0, dst_stride);
    if (yi >= 0 && yi < h) {
      const uint8_t* in = src + static_cast<size_t>(yi) * src_stride;
      for (int x = xmin; x < xmax; ++x) {
        const uint8_t* p = in + static_cast<size_t>(xin[x]) * C;
        uint8_t* q = out + static_cast<size_t>(x) * C;
        for (int c = 0; c < C; ++c) q[c] = p[c];
      }
    }
    yo += a4;
  }
}

// ---- launchers ----------------------------------------------------------------------

void hpass(int channels, const uint8_t* src, int in_w, int row0, int rows,
           uint8_t* dst, int out_w, const Taps& tx) {
  const size_t stride = static_cast<size_t>(in_w) * static_cast<size_t>(channels);
#if IR_X86_DISPATCH
  if (cpu_has_avx2() && rows >= 8) {
    const int blocks = rows / 8;
    switch (channels) {
      case 1: hpass8_avx2<1>(src, in_w, row0, blocks, dst, out_w, tx); break;
      case 2: hpass8_avx2<2>(src, in_w, row0, blocks, dst, out_w, tx); break;
      case 3: hpass8_avx2<3>(src, in_w, row0, blocks, dst, out_w, tx); break;
      default: hpass8_avx2<4>(src, in_w, row0, blocks, dst, out_w, tx); break;
    }
    row0 += blocks * 8;
    dst += static_cast<size_t>(blocks) * 8 * static_cast<size_t>(out_w) * static_cast<size_t>(channels);
    rows -= blocks * 8;
    if (rows == 0) return;
  }
#endif
  switch (channels) {
    case 1: hpass_kernel<1>(src, stride, row0, rows, dst, out_w, tx); break;
    case 2: hpass_kernel<2>(src, stride, row0, rows, dst, out_w, tx); break;
    case 3: hpass_kernel<3>(src, stride, row0, rows, dst, out_w, tx); break;
    default: hpass_kernel<4>(src, stride, row0, rows, dst, out_w, tx); break;
  }
}

void resample_bicubic(const uint8_t* src, int w, int h, int channels,
                      uint8_t* dst, int out_w, int out_h) {
  const bool need_h = out_w != w;
  const bool need_v = out_h != h;
  const size_t C = static_cast<size_t>(channels);

  Taps tx;
  if (need_h) tx = bicubic_taps(w, out_w);
  // The vertical taps decide which source rows the horizontal pass must
  // produce; when the height is unchanged that is every row.
  Taps ty;
  int row_first = 0, row_last = h;
  if (need_v) {
    ty = bicubic_taps(h, out_h);
    row_first = ty.first[0];
    row_last = ty.first[static_cast<size_t>(out_h) - 1] + ty.count[static_cast<size_t>(out_h) - 1];
  }

  if (need_h && !need_v) {
    hpass(channels, src, w, 0, h, dst, out_w, tx);
    return;
  }

  const uint8_t* vsrc = src;
  std::vector<uint8_t> tmp;
  if (need_h) {
    const int rows = row_last - row_first;
    tmp.resize(static_cast<size_t>(rows) * static_cast<size_t>(out_w) * C);
    hpass(channels, src, w, row_first, rows, tmp.data(), out_w, tx);
    for (auto& f : ty.first) f -= row_first;
    vsrc = tmp.data();
  }
  const size_t row_bytes = static_cast<size_t>(out_w) * C;
  std::vector<int32_t> acc(row_bytes);
  vpass_kernel(vsrc, row_bytes, dst, out_h, row_bytes, ty, acc.data());
}

void resample_nearest(const uint8_t* src, int w, int h, int channels,
                      uint8_t* dst, int out_w, int out_h) {
  // _imaging.c resize: a[0] = (box[2] - box[0]) / xsize, a[4] likewise, offsets 0.
  const double a0 = static_cast<double>(static_cast<float>(w)) / out_w;
  const double a4 = static_cast<double>(static_cast<float>(h)) / out_h;
  std::vector<int32_t> xin(static_cast<size_t>(out_w), 0);
  int xmin = out_w, xmax = 0;
  double xo = 0.0 + a0 * 0.5;
  for (int x = 0; x < out_w; ++x) {
    const int xi = xo < 0.0 ? -1 : static_cast<int>(xo);
    if (xi >= 0 && xi < w) {
      xmax = x + 1;
      if (x < xmin) xmin = x;
      xin[static_cast<size_t>(x)] = xi;
    }
    xo += a0;
  }
  switch (channels) {
    case 1: nearest_kernel<1>(src, w, h, dst, out_w, out_h, xin.data(), xmin, xmax, a4); break;
    case 2: nearest_kernel<2>(src, w, h, dst, out_w, out_h, xin.data(), xmin, xmax, a4); break;
    case 3: nearest_kernel<3>(src, w, h, dst, out_w, out_h, xin.data(), xmin, xmax, a4); break;
    default: nearest_kernel<4>(src, w, h, dst, out_w, out_h, xin.data(), xmin, xmax, a4); break;
  }
}

}  // namespace

// ---- public op ----------------------------------------------------------------------

void resize_u8(const uint8_t* src, int width, int height, int channels,
               uint8_t* dst, int out_width, int out_height, ResampleFilter filter) {
  if (out_width == width && out_height == height) {
    std::memcpy(dst, src, static_cast<size_t>(width) * static_cast<size_t>(height) * static_cast<size_t>(channels));
    return;
  }
  if (filter == ResampleFilter::Nearest) {
    resample_nearest(src, width, height, channels, dst, out_width, out_height);
  } else {
    resample_bicubic(src, width, height, channels, dst, out_width, out_height);
  }
}

}  // namespace imagereward
