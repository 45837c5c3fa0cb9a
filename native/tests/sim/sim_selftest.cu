// sim_selftest.cu — the kernel simulator's own test: each case is a small kernel, most of
// them deliberately broken the way real kernels break, and the simulator must notice.
// Built (sanitized) as native/build/tools/ir_sim_selftest; run one case per process,
// because a fault inside a kernel loses the "device" as it would on a GPU:
//
//   ir_sim_selftest <case>     prints "RESULT <case> <what was observed>", exits 0
//                              (the sanitizer cases abort with the sanitizer's report)
//
// test/node/native-kernel-sim.test.ts runs every case and checks each observation.
// Cases: ok-reduce, race, race-fixed, race-warps, race-warps-fixed, syncwarp-missing, syncwarp-fixed, wmma-misaligned,
// shfl-exited, syncthreads-exited, divergent, deadlock, block-too-big, smem-limit, smem-uninit, oob-read,
// misaligned-float4.
#include <mma.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common.cuh"

using namespace ir::cuda;
namespace wmma = nvcuda::wmma;

namespace {

__global__ void reduce_kernel(const float* x, float* out) {
  __shared__ float scratch[32];
  const float s = block_sum(x[threadIdx.x], scratch);
  if (threadIdx.x == 0) out[0] = s;
}

// Each thread publishes its index and reads its neighbour's — with or without a barrier.
template <bool kBarrier>
__global__ void neighbour_kernel(int* out) {
  __shared__ int buf[256];
  buf[threadIdx.x] = static_cast<int>(threadIdx.x) + 1000;
  if (kBarrier) __syncthreads();
  out[threadIdx.x] = buf[(threadIdx.x + 1) % 256];
}

// Two warps: each reads what the other wrote. The __syncwarp() is not enough (it orders a
// warp's own lanes); only the __syncthreads() orders the two warps.
template <bool kBarrier>
__global__ void cross_warp_kernel(int* out) {
  __shared__ int buf[64];
  buf[threadIdx.x] = static_cast<int>(threadIdx.x) + 1000;
  __syncwarp();
  if (kBarrier) __syncthreads();
  out[threadIdx.x] = buf[63 - threadIdx.x];
}

// One warp: each lane writes 8 of the 256 elements of a 16×16 A tile (B = identity),
// then the warp multiplies — with or without the __syncwarp() in between.
template <bool kSync>
__global__ void tile_kernel(float* out, int offset) {
  __shared__ __align__(128) __half a[16 * 16 + 64];
  __shared__ __align__(128) __half b[16 * 16];
  __shared__ __align__(128) float d[16 * 16];
  const int lane = threadIdx.x;
  for (int i = lane * 8; i < lane * 8 + 8; ++i) {
    a[i + offset] = __float2half(static_cast<float>(i % 17));
    b[i] = __float2half((i / 16) == (i % 16) ? 1.0f : 0.0f);
  }
  if (kSync) __syncwarp();
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, a + offset, 16);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(d, acc, 16, wmma::mem_row_major);
  __syncwarp();
  for (int i = lane; i < 256; i += 32) out[i] = d[i];
}

__global__ void half_warp_exits_kernel(float* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = warp_sum(1.0f);
}

__global__ void early_exit_barrier_kernel(float* out) {
  __shared__ float s[64];
  if (threadIdx.x >= 32) return;
  s[threadIdx.x] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % 32];
}

// Half a warp at one collective, the other half at another.
__global__ void divergent_kernel(float* out) {
  float v = 1.0f;
  if (threadIdx.x < 16) __syncwarp();
  else v = __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

// Lanes 0-15 wait at the block barrier, lanes 16-31 at a warp barrier naming all 32.
__global__ void deadlock_kernel(float* out) {
  if (threadIdx.x < 16) __syncthreads();
  else __syncwarp();
  out[threadIdx.x] = 1.0f;
}

__global__ void noop_kernel(float* out) {
  if (out && threadIdx.x == 0 && blockIdx.x == 0) out[0] = 1.0f;
}

__global__ void dyn_smem_kernel(float* out, int n) {
  extern __shared__ __align__(128) unsigned char raw[];
  float* f = reinterpret_cast<float*>(raw);
  if (threadIdx.x == 0) out[0] = f[n - 1];  // read before any thread wrote it
}

__global__ void read_past_end_kernel(const float* x, float* out, int n) {
  out[threadIdx.x] = x[threadIdx.x + n - 31];  // thread 31 reads x[n]
}

__global__ void float4_kernel(const float* x, float* out) {
  const float4 v = *reinterpret_cast<const float4*>(x + 1);  // 4-byte aligned only
  out[threadIdx.x] = v.x + v.y + v.z + v.w;
}

template <typename T>
struct Buf {
  T* p = nullptr;
  explicit Buf(size_t n) { cudaMalloc(&p, n * sizeof(T)); }
  ~Buf() { cudaFree(p); }
  std::vector<T> down(size_t n) const {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
};

const char* err_name(cudaError_t e) { return cudaGetErrorName(e); }

int run_case(const std::string& c) {
  if (c == "ok-reduce") {
    std::vector<float> h(256);
    double want = 0;
    for (int i = 0; i < 256; ++i) {
      h[i] = static_cast<float>(i % 7) - 3.0f;
      want += h[i];
    }
    Buf<float> x(256), out(1);
    cudaMemcpy(x.p, h.data(), 256 * sizeof(float), cudaMemcpyHostToDevice);
    reduce_kernel<<<1, 256>>>(x.p, out.p);
    const cudaError_t e = cudaDeviceSynchronize();
    std::printf("RESULT %s sum=%g want=%g err=%s\n", c.c_str(), out.down(1)[0], want, err_name(e));
    return 0;
  }
  if (c == "race" || c == "race-fixed") {
    Buf<int> out(256);
    if (c == "race") neighbour_kernel<false><<<1, 256>>>(out.p);
    else neighbour_kernel<true><<<1, 256>>>(out.p);
    const cudaError_t e = cudaDeviceSynchronize();
    const auto h = out.down(256);
    int wrong = 0;
    for (int t = 0; t < 256; ++t) wrong += h[t] != (t + 1) % 256 + 1000;
    std::printf("RESULT %s wrong=%d err=%s\n", c.c_str(), wrong, err_name(e));
    return 0;
  }
  if (c == "race-warps" || c == "race-warps-fixed") {
    Buf<int> out(64);
    if (c == "race-warps") cross_warp_kernel<false><<<1, 64>>>(out.p);
    else cross_warp_kernel<true><<<1, 64>>>(out.p);
    const cudaError_t e = cudaDeviceSynchronize();
    const auto h = out.down(64);
    int wrong = 0;
    for (int t = 0; t < 64; ++t) wrong += h[t] != 63 - t + 1000;
    std::printf("RESULT %s wrong=%d err=%s\n", c.c_str(), wrong, err_name(e));
    return 0;
  }
  if (c == "syncwarp-missing" || c == "syncwarp-fixed" || c == "wmma-misaligned") {
    Buf<float> out(256);
    cudaMemset(out.p, 0, 256 * sizeof(float));
    if (c == "syncwarp-missing") tile_kernel<false><<<1, 32>>>(out.p, 0);
    else if (c == "syncwarp-fixed") tile_kernel<true><<<1, 32>>>(out.p, 0);
    else tile_kernel<true><<<1, 32>>>(out.p, 8);  // a + 8 halves: 16-byte, not 32-byte aligned
    const cudaError_t e = cudaDeviceSynchronize();
    const auto h = out.down(256);
    int wrong = 0;
    for (int i = 0; i < 256; ++i) wrong += h[i] != static_cast<float>(i % 17);
    std::printf("RESULT %s wrong=%d err=%s\n", c.c_str(), wrong, err_name(e));
    return 0;
  }
  if (c == "shfl-exited" || c == "syncthreads-exited" || c == "divergent" || c == "deadlock") {
    Buf<float> out(64);
    if (c == "shfl-exited") half_warp_exits_kernel<<<1, 32>>>(out.p);
    else if (c == "syncthreads-exited") early_exit_barrier_kernel<<<1, 64>>>(out.p);
    else if (c == "divergent") divergent_kernel<<<1, 32>>>(out.p);
    else deadlock_kernel<<<1, 32>>>(out.p);
    const cudaError_t e = cudaDeviceSynchronize();
    std::printf("RESULT %s err=%s\n", c.c_str(), err_name(e));
    return 0;
  }
  if (c == "block-too-big") {
    noop_kernel<<<1, 2048>>>(nullptr);
    const cudaError_t launch = cudaGetLastError();
    noop_kernel<<<1, 1024>>>(nullptr);
    const cudaError_t after = cudaGetLastError();
    std::printf("RESULT %s launch=%s next=%s sync=%s\n", c.c_str(), err_name(launch), err_name(after), err_name(cudaDeviceSynchronize()));
    return 0;
  }
  if (c == "smem-limit") {
    Buf<float> out(1);
    const int n = 64 * 1024 / 4;
    dyn_smem_kernel<<<1, 32, 64 * 1024>>>(out.p, n);
    const cudaError_t before = cudaGetLastError();
    const cudaError_t too_much = cudaFuncSetAttribute(dyn_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 1 << 20);
    const cudaError_t raised = cudaFuncSetAttribute(dyn_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024);
    dyn_smem_kernel<<<1, 32, 64 * 1024>>>(out.p, n);
    const cudaError_t after = cudaGetLastError();
    std::printf("RESULT %s before=%s optin_exceeded=%s raised=%s after=%s\n", c.c_str(), err_name(before), err_name(too_much),
                err_name(raised), err_name(after));
    return 0;
  }
  if (c == "smem-uninit") {
    Buf<float> out(1);
    dyn_smem_kernel<<<1, 32, 1024>>>(out.p, 256);
    const cudaError_t e = cudaDeviceSynchronize();
    std::printf("RESULT %s value=%s err=%s\n", c.c_str(), std::isnan(out.down(1)[0]) ? "nan" : "number", err_name(e));
    return 0;
  }
  if (c == "oob-read") {
    Buf<float> x(256), out(32);
    read_past_end_kernel<<<1, 32>>>(x.p, out.p, 256);
    std::printf("RESULT %s not-detected err=%s\n", c.c_str(), err_name(cudaDeviceSynchronize()));
    return 0;
  }
  if (c == "misaligned-float4") {
    Buf<float> x(64), out(32);
    cudaMemset(x.p, 0, 64 * sizeof(float));
    float4_kernel<<<1, 32>>>(x.p, out.p);
    std::printf("RESULT %s not-detected err=%s\n", c.c_str(), err_name(cudaDeviceSynchronize()));
    return 0;
  }
  std::fprintf(stderr, "unknown case %s\n", c.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ir_sim_selftest <case>\n");
    return 2;
  }
  return run_case(argv[1]);
}
