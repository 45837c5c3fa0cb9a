// gemm.cu — cuBLASLt GEMM plans (see gemm.cuh for the row-major ↔ column-major mapping
// and the epilogue choices). The CUDA error helpers gemm.cuh declares are in cuda_error.cc.
#include "cuda/gemm.cuh"

#include <string>

#include "cuda/cublaslt_api.h"
#include "cuda/cublaslt_loader.h"
#include "cuda/ops.cuh"

namespace ir::cuda {

// ---- plans ----------------------------------------------------------------------------
namespace {

[[noreturn]] void throw_cublas(int st, const std::string& what) {
  EngineErrorCode code = EngineErrorCode::Cublas;
  std::string extra;
  if (st == lt::CUBLAS_STATUS_ALLOC_FAILED) code = EngineErrorCode::OutOfMemory;
  if (st == lt::CUBLAS_STATUS_EXECUTION_FAILED) {
    // A kernel launch failed inside cuBLASLt: look for the CUDA error behind it.
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
      code = classify_cuda_error(e);
      if (code == EngineErrorCode::Cuda) code = EngineErrorCode::Cublas;
      extra = std::string("; CUDA: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
    }
  }
  throw EngineError(code, "cuBLASLt " + what + ": " + cublas_status_text(st) + extra);
}

}  // namespace

struct GemmRunner::Plan {
  const CublasLtApi* api = nullptr;
  lt::cublasLtMatmulDesc_t desc = nullptr;
  lt::cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  lt::cublasLtMatmulAlgo_t algo{};
  BiasMode bias = BiasMode::None;
  bool accumulate = false;
  bool bias_seeded = false;        // no BIAS epilogue: add_bias seeds D, then beta = 1
  const void* bias_ptr = nullptr;  // last value set on desc

  ~Plan() {
    if (!api) return;
    if (d) api->MatrixLayoutDestroy(d);
    if (b) api->MatrixLayoutDestroy(b);
    if (a) api->MatrixLayoutDestroy(a);
    if (desc) api->MatmulDescDestroy(desc);
  }
};

GemmRunner::GemmRunner(bool fp16, cudaStream_t stream) : fp16_(fp16), stream_(stream) {
  const CublasLtApi& api = cublaslt();
  lt::cublasLtHandle_t h = nullptr;
  const int st = api.Create(&h);
  if (st != lt::CUBLAS_STATUS_SUCCESS) throw_cublas(st, "cublasLtCreate");
  handle_ = h;
  const cudaError_t e = cudaMalloc(&workspace_, kWorkspaceBytes);
  if (e != cudaSuccess) {
    api.Destroy(h);
    handle_ = nullptr;
    workspace_ = nullptr;
    throw_cuda_error(e, "cudaMalloc(GEMM workspace)", __FILE__, __LINE__);
  }
}

GemmRunner::~GemmRunner() {
  plans_.clear();
  if (handle_) cublaslt().Destroy(static_cast<lt::cublasLtHandle_t>(handle_));
  if (workspace_) cudaFree(workspace_);
}

GemmRunner::Plan* GemmRunner::make_plan(const GemmArgs& g, BiasMode mode, std::string* why) {
  const CublasLtApi& api = cublaslt();
  auto p = std::make_unique<Plan>();
  p->api = &api;
  p->bias = mode;
  p->accumulate = g.accumulate;
  const cudaDataType_t tT = fp16_ ? lt::kR16F : lt::kR16BF;
  const cudaDataType_t tD = g.d_f32 ? lt::kR32F : tT;
  auto fail = [&](int st, const char* what) -> Plan* {
    *why = std::string(what) + ": " + cublas_status_text(st);
    return nullptr;
  };
  int st = api.MatmulDescCreate(&p->desc, lt::CUBLAS_COMPUTE_32F, lt::kR32F);
  if (st) return fail(st, "cublasLtMatmulDescCreate");
  const int32_t opT = lt::CUBLAS_OP_T, opN = lt::CUBLAS_OP_N;
  if ((st = api.MatmulDescSetAttribute(p->desc, lt::CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)))) return fail(st, "TRANSA");
  if ((st = api.MatmulDescSetAttribute(p->desc, lt::CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)))) return fail(st, "TRANSB");
  const uint32_t epi = mode == BiasMode::None ? lt::CUBLASLT_EPILOGUE_DEFAULT : lt::CUBLASLT_EPILOGUE_BIAS;
  if ((st = api.MatmulDescSetAttribute(p->desc, lt::CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)))) return fail(st, "EPILOGUE");
  if (mode != BiasMode::None) {
    const int32_t bt = mode == BiasMode::F32 ? static_cast<int32_t>(lt::kR32F) : static_cast<int32_t>(tT);
    if ((st = api.MatmulDescSetAttribute(p->desc, lt::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)))) return fail(st, "BIAS_DATA_TYPE");
    const void* bp = mode == BiasMode::F32 ? static_cast<const void*>(g.bias) : g.bias_t;
    if ((st = api.MatmulDescSetAttribute(p->desc, lt::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof(bp)))) return fail(st, "BIAS_POINTER");
    p->bias_ptr = bp;
  }
  // Column-major views (see gemm.cuh): cuBLAS A = W [K, N] ld K (op T), B = A [K, M] ld K,
  // C = D [N, M] ld N.
  if ((st = api.MatrixLayoutCreate(&p->a, tT, static_cast<uint64_t>(g.K), static_cast<uint64_t>(g.N), g.K))) return fail(st, "layout W");
  if ((st = api.MatrixLayoutCreate(&p->b, tT, static_cast<uint64_t>(g.K), static_cast<uint64_t>(g.M), g.K))) return fail(st, "layout A");
  if ((st = api.MatrixLayoutCreate(&p->d, tD, static_cast<uint64_t>(g.N), static_cast<uint64_t>(g.M), g.N))) return fail(st, "layout D");

  lt::cublasLtMatmulPreference_t pref = nullptr;
  if ((st = api.MatmulPreferenceCreate(&pref))) return fail(st, "cublasLtMatmulPreferenceCreate");
  const uint64_t ws = kWorkspaceBytes;
  st = api.MatmulPreferenceSetAttribute(pref, lt::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  lt::cublasLtMatmulHeuristicResult_t res[4] = {};
  int n = 0;
  if (!st) st = api.MatmulAlgoGetHeuristic(static_cast<lt::cublasLtHandle_t>(handle_), p->desc, p->a, p->b, p->d, p->d, pref, 4, res, &n);
  api.MatmulPreferenceDestroy(pref);
  if (st) return fail(st, "cublasLtMatmulAlgoGetHeuristic");
  for (int i = 0; i < n; i++) {
    if (res[i].state == lt::CUBLAS_STATUS_SUCCESS && res[i].workspaceSize <= kWorkspaceBytes) {
      p->algo = res[i].algo;
      return p.release();
    }
  }
  *why = "no algorithm for this shape/type (heuristic returned " + std::to_string(n) + ")";
  return nullptr;
}

GemmRunner::Plan* GemmRunner::plan_for(const GemmArgs& g) {
  check_gemm_args(g);
  const bool has_bias = g.bias != nullptr || g.bias_t != nullptr;
  const Key key{g.M, g.N, g.K, g.d_f32, has_bias, g.accumulate};
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();

  std::string why, why2;
  Plan* p = nullptr;
  if (!has_bias) {
    p = make_plan(g, BiasMode::None, &why);
  } else {
    if (g.bias) p = make_plan(g, BiasMode::F32, &why);
    if (!p && g.bias_t && !g.d_f32) p = make_plan(g, BiasMode::T, &why2);
    if (!p && g.bias) {  // no BIAS epilogue for this GEMM: add_bias seeds D, then D += A·Wᵀ
      std::string why3;
      p = make_plan(g, BiasMode::None, &why3);
      if (p) {
        p->bias_seeded = true;
        bias_seeded_.fetch_add(1, std::memory_order_relaxed);
      } else {
        why2 += (why2.empty() ? "" : "; ") + std::string("without an epilogue: ") + why3;
      }
    }
  }
  if (!p) {
    throw EngineError(EngineErrorCode::Cublas, "cuBLASLt plan for GEMM M=" + std::to_string(g.M) + " N=" + std::to_string(g.N) + " K=" +
                                                   std::to_string(g.K) + (g.d_f32 ? " ->fp32" : " ->T") + (has_bias ? " +bias" : "") +
                                                   (g.accumulate ? " +=" : "") + ": " + why + (why2.empty() ? "" : "; with a T bias: " + why2));
  }
  plans_.emplace(key, std::unique_ptr<Plan>(p));
  return p;
}

void GemmRunner::prepare(const GemmArgs& g) { plan_for(g); }

void GemmRunner::run(const GemmArgs& g) {
  Plan* p = plan_for(g);
  const CublasLtApi& api = *p->api;
  if (p->bias != BiasMode::None) {
    const void* bp = p->bias == BiasMode::F32 ? static_cast<const void*>(g.bias) : g.bias_t;
    if (!bp) throw EngineError(EngineErrorCode::BadInput, "GEMM: the plan needs a bias of the other type");
    if (bp != p->bias_ptr) {
      const int st = api.MatmulDescSetAttribute(p->desc, lt::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof(bp));
      if (st) throw_cublas(st, "set BIAS_POINTER");
      p->bias_ptr = bp;
    }
  }
  if (p->bias_seeded) {
    if (!g.bias) throw EngineError(EngineErrorCode::BadInput, "GEMM: the plan seeds D with an fp32 bias, none given");
    // (accumulate implies an fp32 D: check_gemm_args)
    IR_CHECK(g.d_f32  ? add_bias(static_cast<float*>(g.D), g.bias, g.M, g.N, g.accumulate, stream_)
             : fp16_ ? add_bias(static_cast<__half*>(g.D), g.bias, g.M, g.N, false, stream_)
                     : add_bias(static_cast<__nv_bfloat16*>(g.D), g.bias, g.M, g.N, false, stream_));
  }
  const float alpha = 1.0f, beta = g.accumulate || p->bias_seeded ? 1.0f : 0.0f;
  const int st = api.Matmul(static_cast<lt::cublasLtHandle_t>(handle_), p->desc, &alpha, g.W, p->a, g.A, p->b, &beta, g.D, p->d, g.D, p->d, &p->algo,
                            workspace_, kWorkspaceBytes, stream_);
  if (st) throw_cublas(st, "cublasLtMatmul M=" + std::to_string(g.M) + " N=" + std::to_string(g.N) + " K=" + std::to_string(g.K));
}

}  // namespace ir::cuda
