// mma.h (kernel simulator) — nvcuda::wmma for the CPU: found before the toolkit's mma.h
// when a .cu file is compiled for the simulator (cuda_sim.h).
//
// Each lane's fragment holds the whole 16×16 tile (the hardware spreads it over the
// warp's registers; the simulator keeps every lane's copy whole, so a lane that loads a
// tile before another lane wrote it reads the stale values — missing __syncwarp()s show
// up). Products are exact, sums in fp32 in k order (tensor cores: fp32 accumulate); the
// lanes' copies of each mma_sync's operands must agree (sim_runtime.cc).
// The CUDA guide's rules are checked, as the hardware would fault on them:
//   load/store_matrix_sync: pointer 256-bit (32-byte) aligned; ldm a multiple of 8 for
//   16-bit element types and of 4 for float.
// Only the m16n16k16 shapes with __half / __nv_bfloat16 inputs and float accumulators.
#pragma once

#include <type_traits>

#include "cuda_sim.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

namespace detail {
inline float to_f(float v) { return v; }
inline float to_f(__half v) { return __half2float(v); }
inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
void check_ptr_ldm(const T* p, unsigned ldm, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
    ::ir_sim::fault(cudaErrorMisalignedAddress, "%s: pointer %p is not 256-bit aligned", what, static_cast<const void*>(p));
  const unsigned mult = sizeof(T) == 2 ? 8u : 4u;
  if (ldm % mult != 0) ::ir_sim::fault(cudaErrorMisalignedAddress, "%s: ldm %u is not a multiple of %u", what, ldm, mult);
}
}  // namespace detail

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment {
 public:
  static constexpr int num_elements = 256;
  float v[16][16];  // logical tile [row][col] (A: [m][k], B: [k][n], C: [m][n])
};

template <typename Use, int M, int N, int K, typename T, typename Layout, typename V>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const V& value) {
  const float x = detail::to_f(value);
  for (auto& row : f.v)
    for (float& e : row) e = x;
}

// A ([m][k]) and B ([k][n]) tiles load alike: element [r][c] of the logical tile.
template <typename Use, typename T, typename Layout,
          typename = std::enable_if_t<std::is_same_v<Use, matrix_a> || std::is_same_v<Use, matrix_b>>>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ldm) {
  detail::check_ptr_ldm(p, ldm, std::is_same_v<Use, matrix_a> ? "wmma::load_matrix_sync(matrix_a)" : "wmma::load_matrix_sync(matrix_b)");
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c)
      f.v[r][c] = detail::to_f(std::is_same_v<Layout, row_major> ? p[r * ldm + c] : p[r + c * ldm]);
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm, layout_t layout) {
  detail::check_ptr_ldm(p, ldm, "wmma::load_matrix_sync(accumulator)");
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) f.v[m][n] = layout == mem_row_major ? p[m * ldm + n] : p[m + n * ldm];
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t layout) {
  detail::check_ptr_ldm(p, ldm, "wmma::store_matrix_sync");
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) (layout == mem_row_major ? p[m * ldm + n] : p[m + n * ldm]) = f.v[m][n];
}

template <typename T, typename LA, typename LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LA>& a,
                     const fragment<matrix_b, 16, 16, 16, T, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  ::ir_sim::mma_16x16x16(&d.v[0][0], &a.v[0][0], &b.v[0][0], &c.v[0][0]);
}

}  // namespace wmma
}  // namespace nvcuda
