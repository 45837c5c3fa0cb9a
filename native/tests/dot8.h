// dot8.h — the fp32 dot product of the CPU GEMM stand-ins (tests/emu/gemm_emu.cc, the
// engine emulation's GemmRunner, and tests/sim/cublaslt_emu.cc, the emulated cuBLASLt).
// Eight partial sums in k order, combined pairwise, then the tail: one summation order
// in both, so the two give the same bits for the same GEMM (and the compiler can
// vectorize the eight lanes without -ffast-math).
#pragma once

#include <cstddef>

namespace ir_test {

inline float dot8(const float* a, const float* b, size_t k) {
  float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= k; i += 8)
    for (int j = 0; j < 8; ++j) p[j] += a[i + j] * b[i + j];
  float s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
  for (; i < k; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace ir_test
