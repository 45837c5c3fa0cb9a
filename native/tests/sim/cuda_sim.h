// cuda_sim.h — the kernel simulator's device side: what a .cu file needs to compile as
// host C++ and run its __global__ kernels, unchanged, on the CPU (force-included before
// every simulated source; see sim_runtime.cc for the scheduler and README below).
//
// Why: no GPU is lent to most sessions. The engine emulation (tests/emu/) proves the
// engine's orchestration with host *reference* ops; this simulator runs the real kernels
// (src/cuda/*.cu, tests/test_ops.cu) so their indexing, shared-memory layout, barriers,
// warp shuffles and WMMA tile addressing are checked against the same references in CI.
//
// Model: a launch runs its blocks one after another; the threads of a block are fibers
// (own stacks) that run until they reach a barrier, a warp collective or their end.
//   __syncthreads()      every thread of the block that has not exited must arrive;
//                        a thread that exited before a block barrier is an error
//                        (CUDA: the barrier must be reached by the whole block).
//   __syncwarp(m), __shfl_*_sync(m, ...)
//                        every lane named in m must arrive at the same kind of
//                        collective; a named lane that exited is an error.
//   WMMA (mma.h here)    each lane holds the whole 16×16 tile; loads/stores check the
//                        256-bit pointer alignment and ldm rules of the CUDA guide.
//   shared memory        `__shared__` arrays are per-block statics; the dynamic
//                        (extern) array is a fresh buffer per block filled with 0xFF
//                        bytes (NaN as float/bf16/fp16), so reading it before writing
//                        shows up as NaN.
// Between barriers the threads run in an order set by IR_SIM_ORDER (forward, reverse,
// or shuffle with IR_SIM_SEED): a result that changes with the order is a data race.
// Launch checks: block ≤ 1024 threads, grid y/z ≤ 65535, dynamic shared memory ≤ 48 KB
// unless cudaFuncSetAttribute raised it (≤ the device's opt-in limit, IR_SIM_SMEM_OPTIN,
// default 232448 = H100). A violation inside a kernel stops the launch, prints where,
// and loses the "device" (sticky cudaErrorLaunchFailure / cudaErrorMisalignedAddress),
// as a real context would; a bad launch configuration is cudaGetLastError's error.
#pragma once

#ifndef __global__
#define __global__
#endif
#ifndef __device__
#define __device__
#endif
#ifndef __host__
#define __host__
#endif

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace ir_sim {

// The simulated thread running now (set by the scheduler before each switch).
struct ThreadState {
  uint3 tid;
  uint3 bid;
  dim3 bdim;
  dim3 gdim;
  unsigned lane;
  unsigned warp;
  uint64_t mma_seq;  // WMMA mma_sync calls this thread has made in this block
};
ThreadState& current();

// The launch configuration of `kernel<<<grid, block, smem, stream>>>`.
struct Cfg {
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  Cfg(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) : grid(g), block(b), smem(s), stream(st) {}
};

// Runs body() once per thread of every block — or, while cfg.stream is capturing, records
// the launch for each replay of the graph; returns the launch error (cudaSuccess, a
// configuration error, or the error a violation inside the kernel raised).
cudaError_t run_grid(const char* name, const void* fn, const Cfg& cfg, const std::function<void()>& body);

// The rewritten launch statement: `name<<<cfg>>>(args)` → `launch("name", name, Cfg(cfg), args)`.
template <typename... P, typename... A>
void launch(const char* name, void (*kernel)(P...), const Cfg& cfg, A&&... args) {
  // The arguments are copied now, as a launch (and a graph capturing it) does.
  std::tuple<std::decay_t<P>...> params(static_cast<std::decay_t<P>>(std::forward<A>(args))...);
  run_grid(name, reinterpret_cast<const void*>(kernel), cfg, [params, kernel] { std::apply(kernel, params); });
}

// Collectives (the calling fiber yields to the scheduler).
void sync_block();
void sync_warp(unsigned mask, const char* what);
// Exchange 8 bytes with the lane `src_lane(lane)` of the same warp.
uint64_t warp_exchange(unsigned mask, uint64_t mine, unsigned src_lane, const char* what);
// A violation inside a kernel: prints, stops the launch (never returns).
[[noreturn]] void fault(cudaError_t err, const char* fmt, ...);

// D = A·B + C on 16×16 fp32 tiles ([row][col], A [m][k], B [k][n]), products exact, sums
// in fp32 in k order. Every lane of a warp computes the same tile; the first lane's result
// is kept (by call number) and the others' operands must match it — lanes that disagree
// loaded memory at different times (a missing __syncwarp) or diverged, and fault.
void mma_16x16x16(float* d, const float* a, const float* b, const float* c);

// The block's dynamic shared memory (extern __shared__).
unsigned char* dynamic_smem();

// Lane `src` of the caller's warp's value of v (every lane named in mask takes part).
template <typename T>
T shfl_from(unsigned mask, T v, unsigned src, const char* what) {
  static_assert(sizeof(T) <= 8, "shuffle of > 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = warp_exchange(mask, bits, src, what);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}

// The source lanes of the three shuffles, within segments of `width` lanes (a source
// outside the segment reads the caller's own value, as on the hardware).
inline unsigned segment_base(int width) { return current().lane & ~static_cast<unsigned>(width - 1); }
inline unsigned src_xor(int lane_mask, int width) {
  const unsigned src = current().lane ^ static_cast<unsigned>(lane_mask);
  return src >= segment_base(width) + static_cast<unsigned>(width) ? current().lane : src;
}
inline unsigned src_down(unsigned delta, int width) {
  const unsigned lane = current().lane;
  return lane + delta < segment_base(width) + static_cast<unsigned>(width) ? lane + delta : lane;
}
inline unsigned src_idx(int src_lane, int width) { return segment_base(width) + (static_cast<unsigned>(src_lane) & static_cast<unsigned>(width - 1)); }

}  // namespace ir_sim

// ---- the CUDA built-ins ------------------------------------------------------------------
#define threadIdx (::ir_sim::current().tid)
#define blockIdx (::ir_sim::current().bid)
#define blockDim (::ir_sim::current().bdim)
#define gridDim (::ir_sim::current().gdim)
#define warpSize 32

inline void __syncthreads() { ::ir_sim::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::ir_sim::sync_warp(mask, "__syncwarp"); }
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::ir_sim::shfl_from(mask, v, ::ir_sim::src_xor(lane_mask, width), "__shfl_xor_sync");
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::ir_sim::shfl_from(mask, v, ::ir_sim::src_down(delta, width), "__shfl_down_sync");
}
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  return ::ir_sim::shfl_from(mask, v, ::ir_sim::src_idx(src_lane, width), "__shfl_sync");
}

// Device math the host library lacks (IEEE round-to-nearest on the host: SSE).
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __expf(float x) { return std::exp(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

// CUDA's integer min/max overloads (device code calls them unqualified).
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline auto min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(a) : static_cast<C>(b);
}
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline auto max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}

// Static shared arrays: one per kernel instantiation, shared by the block's fibers
// (blocks of one OS thread run one at a time; thread_local keeps OS threads apart).
#undef __shared__
#define __shared__ static thread_local

// cuda_runtime.h's typed cudaFuncSetAttribute is visible to nvcc only.
template <typename... P>
inline cudaError_t cudaFuncSetAttribute(void (*fn)(P...), cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(fn), attr, value);
}
