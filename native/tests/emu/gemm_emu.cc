// gemm_emu.cc — a host GemmRunner (gemm.cuh's contract: D[M, N] (+)= A[M, K] · W[N, K]ᵀ
// (+ bias), fp32 accumulation, T or fp32 out) and the cuBLASLt loader's surface with
// nothing loaded, for the engine's CPU builds: ir_engine_emu (with ops_emu.cc's host ops)
// and ir_engine_sim (with the real kernels in the kernel simulator). cuBLASLt itself is
// not emulated: its GEMMs are checked on a GPU (tests/test_ops.cu).
#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cuda/cublaslt_loader.h"
#include "cuda/gemm.cuh"
#include "../dot8.h"
#include "../ref_ops.h"
#include "../storage_types.h"

namespace ir {

// ---- the cuBLASLt loader's surface (nothing is loaded) ----------------------------------
namespace {
CublasLtApi& emu_api() {
  static CublasLtApi api = [] {
    CublasLtApi a{};
    a.path = "none (CPU emulation)";
    a.version = 0;
    return a;
  }();
  return api;
}
}  // namespace

const CublasLtApi* cublaslt_try(std::string*) { return &emu_api(); }
const CublasLtApi& cublaslt() { return emu_api(); }
const char* cublaslt_first_soname() { return "none (CPU emulation)"; }
std::string CublasLtApi::version_string() const { return "emulation"; }

namespace cuda {

using ref::ft;
using ref::tf;

// ---- GemmRunner: D[M, N] (+)= A[M, K] · W[N, K]ᵀ (+ bias[N]), fp32 accumulation ----------
struct GemmRunner::Plan {};

GemmRunner::GemmRunner(bool fp16, cudaStream_t stream) : fp16_(fp16), stream_(stream) {}
GemmRunner::~GemmRunner() = default;

GemmRunner::Plan* GemmRunner::plan_for(const GemmArgs& g) {
  check_gemm_args(g);
  const Key key{g.M, g.N, g.K, g.d_f32, g.bias != nullptr || g.bias_t != nullptr, g.accumulate};
  auto& p = plans_[key];
  if (!p) p = std::make_unique<Plan>();
  return p.get();
}

void GemmRunner::prepare(const GemmArgs& g) { plan_for(g); }

namespace {
// Rows split over the host's threads (the full-size model is ~120 GFLOP per pair); each dot
// product in 8 interleaved fp32 partial sums (vectorizable without reassociation flags).
template <typename T>
void gemm_host(const GemmArgs& g) {
  const T* A = static_cast<const T*>(g.A);
  const T* W = static_cast<const T*>(g.W);
  std::vector<float> w(static_cast<size_t>(g.N) * g.K);
  for (size_t i = 0; i < w.size(); ++i) w[i] = tf(W[i]);
  auto rows = [&](int m0, int m1) {
    std::vector<float> a(static_cast<size_t>(g.K));
    for (int m = m0; m < m1; ++m) {
      for (int k = 0; k < g.K; ++k) a[k] = tf(A[static_cast<size_t>(m) * g.K + k]);
      for (int n = 0; n < g.N; ++n) {
        const float* wr = &w[static_cast<size_t>(n) * g.K];
        float s = ir_test::dot8(a.data(), wr, static_cast<size_t>(g.K));
        if (g.bias) s += g.bias[n];
        else if (g.bias_t) s += tf(static_cast<const T*>(g.bias_t)[n]);
        const size_t i = static_cast<size_t>(m) * g.N + n;
        if (g.d_f32) {
          float* D = static_cast<float*>(g.D);
          D[i] = g.accumulate ? D[i] + s : s;
        } else {
          static_cast<T*>(g.D)[i] = ft<T>(s);
        }
      }
    }
  };
  const long work = static_cast<long>(g.M) * g.N * g.K;
  const int nt = work < (1L << 22) ? 1 : std::max(1, std::min<int>(static_cast<int>(std::thread::hardware_concurrency()), g.M));
  if (nt == 1) return rows(0, g.M);
  std::vector<std::thread> pool;
  for (int t = 0; t < nt; ++t) pool.emplace_back(rows, static_cast<int>(static_cast<long>(g.M) * t / nt), static_cast<int>(static_cast<long>(g.M) * (t + 1) / nt));
  for (auto& th : pool) th.join();
}
}  // namespace

void GemmRunner::run(const GemmArgs& g) {
  plan_for(g);
  if (fp16_) gemm_host<__half>(g);
  else gemm_host<__nv_bfloat16>(g);
}

}  // namespace cuda
}  // namespace ir
