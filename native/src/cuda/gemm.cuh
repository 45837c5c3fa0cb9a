// gemm.cuh — every GEMM of the engine, through cuBLASLt (loaded at run time by
// cublaslt_loader.cc), plus the CUDA-error → EngineError helpers (cuda_error.cc) that gemm.cu,
// weights.cc and engine.cu share. Plain C++ (no device code): weights.cc includes it.
//
// The one GEMM shape the model needs, row-major (PyTorch Linear):
//     D[M, N] (+)= A[M, K] · W[N, K]ᵀ (+ bias[N])
// A: activations T, contiguous (lda = K); W: weight T in PyTorch [out, in] layout
// (ldw = K); D: T or fp32, contiguous (ldd = N); bias fp32 [N].
//
// Layout mapping (the usual transpose trick): cuBLASLt is column-major. A row-major
// [r, c] matrix with leading dimension c IS a column-major [c, r] matrix with the same
// leading dimension. So we ask cuBLASLt for Dᵀ = W · Aᵀ in column-major terms:
//     cuBLAS "A" = W   viewed column-major [K, N] ld K, op T   → [N, K]
//     cuBLAS "B" = A   viewed column-major [K, M] ld K, op N   → [K, M]
//     cuBLAS "D" = D   viewed column-major [N, M] ld N         (m = N, n = M, k = K)
// The BIAS epilogue adds a vector indexed by cuBLAS rows = our N (output features):
// exactly Linear's bias.
//
// Epilogues: NONE; BIAS (fp32 bias via CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = R_32F,
// also when D is T — where a cuBLASLt build offers no algorithm for that, the plan
// falls back to a bias of type T that the caller passes as bias_t); ACCUMULATE: beta = 1
// with C = D (in place; D must be fp32: the residual stream). Where the library has no
// BIAS-epilogue algorithm at all for a GEMM (neither bias type), the plan runs without an
// epilogue and with beta = 1 after our own kernel (elementwise.cu add_bias, same stream,
// so graphs capture it too) has seeded D with the bias (D = bias, or D += bias when
// accumulating): D = A·Wᵀ + bias with one rounding, as the T-bias epilogue would give —
// a little slower, never a failed forward. bias_seeded_count() says how many plans took
// that road. cuBLASLt's GELU epilogues use the tanh approximation, so GELU is never fused
// here (elementwise.cu bias_gelu).
//
// Plans (matmul desc + 3 layouts + the heuristic's best algorithm) are cached per
// (M, N, K, D type, epilogue, bias type, accumulate); the heuristic runs once per plan.
// One GemmRunner per stream: it owns the 32 MiB workspace and the plan cache, and is
// used by one thread at a time (the engine's per-stream mutex), so plans' bias pointers
// can be set per call without locking.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "cuda/engine.h"

namespace ir::cuda {

// ---- errors ---------------------------------------------------------------------------
// Maps a CUDA error to the engine's codes: allocation → OutOfMemory; no device / driver
// → NoDevice; sticky (illegal address, launch failure, ECC, …) → DeviceLost; else Cuda.
EngineErrorCode classify_cuda_error(cudaError_t e);
bool is_sticky_cuda_error(cudaError_t e);
[[noreturn]] void throw_cuda_error(cudaError_t e, const char* expr, const char* file, int line);

#define IR_CHECK(...)                                                                      \
  do {                                                                                     \
    const cudaError_t ir_check_err_ = (__VA_ARGS__);                                       \
    if (ir_check_err_ != cudaSuccess) ::ir::cuda::throw_cuda_error(ir_check_err_, #__VA_ARGS__, __FILE__, __LINE__); \
  } while (0)

// ---- GEMM -----------------------------------------------------------------------------
constexpr uintptr_t kGemmAlign = 256;  // cuBLASLt's default CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES

struct GemmArgs {
  int M = 0, N = 0, K = 0;
  const void* A = nullptr;      // T [M, K]
  const void* W = nullptr;      // T [N, K]
  void* D = nullptr;            // T or fp32 [M, N]
  bool d_f32 = false;           // D (and C) is fp32
  const float* bias = nullptr;  // fp32 [N] or nullptr (no bias)
  const void* bias_t = nullptr; // the same bias in T (fallback for T output), may be nullptr
  bool accumulate = false;      // D += result (beta = 1, C = D); needs d_f32
};

// Throws EngineError(BadInput) for an empty shape, a null operand, or accumulation into a
// T output (the residual stream is fp32). Shared by gemm.cu and the CPU emulation.
inline void check_gemm_args(const GemmArgs& g) {
  if (g.M <= 0 || g.N <= 0 || g.K <= 0 || !g.A || !g.W || !g.D)
    throw EngineError(EngineErrorCode::BadInput, "GEMM: empty shape or null pointer (M=" + std::to_string(g.M) + " N=" + std::to_string(g.N) +
                                                     " K=" + std::to_string(g.K) + ")");
  if (g.accumulate && !g.d_f32) throw EngineError(EngineErrorCode::BadInput, "GEMM: accumulate needs an fp32 output");
  // Plans are chosen with cuBLASLt's default preference, which lets the heuristic pick
  // kernels that assume 256-byte aligned A, B, C and D; a less aligned pointer would make
  // cublasLtMatmul refuse (or misbehave) only on a real device, so refuse it here, on
  // every build. Every engine buffer and weight starts on a 256-byte boundary.
  auto misaligned = [](const void* p, uintptr_t a) { return p && (reinterpret_cast<uintptr_t>(p) % a) != 0; };
  if (misaligned(g.A, kGemmAlign) || misaligned(g.W, kGemmAlign) || misaligned(g.D, kGemmAlign) || misaligned(g.bias, 16) ||
      misaligned(g.bias_t, 16))
    throw EngineError(EngineErrorCode::BadInput, "GEMM: operands must be 256-byte aligned and biases 16-byte aligned (M=" + std::to_string(g.M) +
                                                     " N=" + std::to_string(g.N) + " K=" + std::to_string(g.K) + ")");
}

class GemmRunner {
 public:
  static constexpr size_t kWorkspaceBytes = 32u << 20;  // 32 MiB

  // fp16: the storage type T is __half (else __nv_bfloat16). Allocates the workspace on
  // the current device; loads cuBLASLt (throws CublasMissing).
  GemmRunner(bool fp16, cudaStream_t stream);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  // Enqueues one GEMM on the runner's stream (capturable into a CUDA graph once its plan
  // exists). Throws EngineError (Cublas, BadInput, OutOfMemory, DeviceLost, Cuda).
  void run(const GemmArgs& g);
  // Creates the plan for g without running it (before graph capture).
  void prepare(const GemmArgs& g);

  size_t plan_count() const { return plans_.size(); }
  // Plans whose bias add_bias seeds because cuBLASLt offered no BIAS epilogue (readable
  // from any thread: DeviceInfo sums it over the engine's streams).
  size_t bias_seeded_count() const { return bias_seeded_.load(std::memory_order_relaxed); }

 private:
  struct Plan;
  enum class BiasMode { None, F32, T };
  using Key = std::tuple<int, int, int, bool, bool, bool>;  // M, N, K, d_f32, has bias, accumulate
  Plan* plan_for(const GemmArgs& g);
  Plan* make_plan(const GemmArgs& g, BiasMode mode, std::string* why);

  bool fp16_;
  cudaStream_t stream_;
  void* workspace_ = nullptr;
  void* handle_ = nullptr;  // lt::cublasLtHandle_t
  std::map<Key, std::unique_ptr<Plan>> plans_;
  std::atomic<size_t> bias_seeded_{0};
};

}  // namespace ir::cuda
