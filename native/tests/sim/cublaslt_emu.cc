// cublaslt_emu.cc — a stand-in libcublasLt for the CPU builds (libcublaslt_emu.so, loaded by
// the engine's own loader through IMAGEREWARD_CUBLASLT), so gemm.cu's plan code runs
// unchanged without a GPU: the descriptors, layouts, epilogue and bias attributes it sets,
// the heuristic query, the per-call bias pointer, beta = 1 accumulation.
//
// Written from cuBLASLt's documented semantics, with our declarations (cublaslt_api.h)
// for the enum values — the values themselves are checked against the real cublasLt.h by
// cublaslt_check.cc wherever one exists. What it computes (column-major throughout):
//   D = alpha · op(A) · op(B) + beta · C  (+ bias[row] with CUBLASLT_EPILOGUE_BIAS)
//   op(A) is m × k, op(B) k × n, C and D m × n; products of the 16-bit inputs are exact,
//   sums in fp32 (CUBLAS_COMPUTE_32F), D rounded once to its type.
// What it refuses, as the library does (CUBLAS_STATUS_INVALID_VALUE / NOT_SUPPORTED):
//   an attribute buffer of the wrong size, an unknown attribute, inconsistent dimensions,
//   ld < rows, row-major or batched layouts (not emulated), A and B of different types,
//   C ≠ D layouts, a bias epilogue without a bias pointer, workspace larger than offered,
//   an algo that did not come from the heuristic, and operand pointers less aligned than
//   the heuristic was told they would be (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES,
//   256 by default: the library may pick kernels that need all 256, so a pointer aligned
//   to less must be declared in the preference) or a bias pointer not 16-byte aligned.
// It cannot say which type combinations or shapes the real library has kernels for;
// IR_CUBLASLT_EMU_NO_BIAS=1 plays one that has no BIAS epilogue at all.
#include <dlfcn.h>

#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/cublaslt_api.h"
#include "../dot8.h"

using namespace ir::lt;

namespace {

constexpr uint64_t kMagicHandle = 0x49524c5448414e44ull;  // "IRLTHAND"
constexpr uint64_t kMagicAlgo = 0x49524c54414c474full;    // "IRLTALGO"

struct Handle {
  uint64_t magic = kMagicHandle;
};

struct Layout {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t order = CUBLASLT_ORDER_COL;
  int32_t batch = 1;
};

struct Desc {
  int32_t compute;
  int32_t scale;
  int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int32_t bias_type = -1;  // -1: D's type
};

struct Pref {
  uint64_t max_ws = 0;
  uint32_t min_align[4] = {256, 256, 256, 256};  // A, B, C, D: cuBLASLt's defaults
};

static_assert(sizeof(Layout) <= sizeof(cublasLtMatrixLayoutOpaque_t), "Layout fits the opaque type");
static_assert(sizeof(Desc) <= sizeof(cublasLtMatmulDescOpaque_t), "Desc fits the opaque type");
static_assert(sizeof(Pref) <= sizeof(cublasLtMatmulPreferenceOpaque_t), "Pref fits the opaque type");

Layout* L(cublasLtMatrixLayout_t p) { return reinterpret_cast<Layout*>(p); }
Desc* D(cublasLtMatmulDesc_t p) { return reinterpret_cast<Desc*>(p); }

bool is16(cudaDataType_t t) { return t == CUDA_R_16F || t == CUDA_R_16BF; }

float load(const void* p, cudaDataType_t t, size_t i) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_16F: return __half2float(static_cast<const __half*>(p)[i]);
    case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: return 0.0f;
  }
}

void store(void* p, cudaDataType_t t, size_t i, float v) {
  switch (t) {
    case CUDA_R_32F: static_cast<float*>(p)[i] = v; break;
    case CUDA_R_16F: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    case CUDA_R_16BF: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    default: break;
  }
}

struct Problem {
  uint64_t m, n, k;
};

// The checks the heuristic and the matmul share.
cublasStatus_t check(const Desc& d, const Layout& a, const Layout& b, const Layout& c, const Layout& dd, Problem* pr) {
  if (d.compute != CUBLAS_COMPUTE_32F && d.compute != CUBLAS_COMPUTE_32F_PEDANTIC) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d.scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  for (const Layout* l : {&a, &b, &c, &dd}) {
    if (l->order != CUBLASLT_ORDER_COL || l->batch != 1) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (l->ld < static_cast<int64_t>(l->rows) || l->rows == 0 || l->cols == 0) return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (a.type != b.type || !is16(a.type)) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (dd.type != a.type && dd.type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (std::memcmp(&c, &dd, sizeof(Layout)) != 0) return CUBLAS_STATUS_NOT_SUPPORTED;  // in place: C's layout is D's
  const uint64_t am = d.transa == CUBLAS_OP_N ? a.rows : a.cols, ak = d.transa == CUBLAS_OP_N ? a.cols : a.rows;
  const uint64_t bk = d.transb == CUBLAS_OP_N ? b.rows : b.cols, bn = d.transb == CUBLAS_OP_N ? b.cols : b.rows;
  if (ak != bk || am != dd.rows || bn != dd.cols) return CUBLAS_STATUS_INVALID_VALUE;
  if (d.epilogue != CUBLASLT_EPILOGUE_DEFAULT && d.epilogue != CUBLASLT_EPILOGUE_BIAS) return CUBLAS_STATUS_NOT_SUPPORTED;
  // IR_CUBLASLT_EMU_NO_BIAS=1: a library with no BIAS-epilogue algorithm at all (how the
  // tests drive gemm.cu's add_bias fallback).
  static const bool no_bias = [] { const char* e = std::getenv("IR_CUBLASLT_EMU_NO_BIAS"); return e && *e == '1'; }();
  if (no_bias && d.epilogue == CUBLASLT_EPILOGUE_BIAS) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d.epilogue == CUBLASLT_EPILOGUE_BIAS) {
    const int32_t bt = d.bias_type == -1 ? static_cast<int32_t>(dd.type) : d.bias_type;
    if (bt != CUDA_R_32F && bt != static_cast<int32_t>(a.type)) return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  *pr = {am, bn, ak};
  return CUBLAS_STATUS_SUCCESS;
}

template <typename T>
cublasStatus_t set_exact(T* field, const void* buf, size_t size) {
  if (!buf || size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(field, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

bool aligned_to(const void* p, uint64_t bytes) { return bytes != 0 && (reinterpret_cast<uintptr_t>(p) % bytes) == 0; }

struct Matmul {
  Desc desc;
  Layout a, b, d;
  Problem pr;
  const void *A, *B, *C;
  void* D;
  float alpha, beta;
};

void run_matmul(const Matmul& m) {
  const Desc& ds = m.desc;
  const Layout &la = m.a, &lb = m.b, &ld = m.d;
  const Problem& pr = m.pr;
  const void *A = m.A, *B = m.B, *C = m.C;
  void* Dp = m.D;
  const bool bias = ds.epilogue == CUBLASLT_EPILOGUE_BIAS;
  const cudaDataType_t bias_type = ds.bias_type == -1 ? ld.type : static_cast<cudaDataType_t>(ds.bias_type);
  const float al = m.alpha, be = m.beta;
  const bool ta = ds.transa == CUBLAS_OP_T, tb = ds.transb == CUBLAS_OP_T;
  // op(A) as fp32 rows [m][k] and op(B) as fp32 columns [n][k], so each D element is one
  // contiguous dot product (8 interleaved fp32 partial sums, vectorizable as written).
  std::vector<float> ar(pr.m * pr.k), bc(pr.n * pr.k);
  for (uint64_t i = 0; i < pr.m; ++i)
    for (uint64_t kk = 0; kk < pr.k; ++kk) ar[i * pr.k + kk] = load(A, la.type, ta ? kk + i * la.ld : i + kk * la.ld);
  for (uint64_t j = 0; j < pr.n; ++j)
    for (uint64_t kk = 0; kk < pr.k; ++kk) bc[j * pr.k + kk] = load(B, lb.type, tb ? j + kk * lb.ld : kk + j * lb.ld);
  auto cols = [&](uint64_t j0, uint64_t j1) {
    for (uint64_t j = j0; j < j1; ++j) {
      const float* bj = &bc[j * pr.k];
      for (uint64_t i = 0; i < pr.m; ++i) {
        const float* ai = &ar[i * pr.k];
        const float s = ir_test::dot8(ai, bj, static_cast<size_t>(pr.k));
        const size_t at = i + j * ld.ld;
        float v = al * s;
        if (be != 0.0f) v += be * load(C, ld.type, at);
        if (bias) v += load(ds.bias, bias_type, i);
        store(Dp, ld.type, at, v);
      }
    }
  };
  const uint64_t work = pr.m * pr.n * pr.k;
  const unsigned nt = work < (1ull << 22) ? 1u : std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), static_cast<unsigned>(pr.n)));
  if (nt == 1) {
    cols(0, pr.n);
  } else {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < nt; ++t) pool.emplace_back(cols, pr.n * t / nt, pr.n * (t + 1) / nt);
    for (auto& th : pool) th.join();
  }
}

// The runtime stand-in's capture hook (tests/emu/cuda_runtime_emu.cc), when the executable
// exports it: a matmul on a capturing stream is recorded for the graph, not run.
using CaptureHook = int (*)(cudaStream_t, void (*)(void*), void*, void (*)(void*));
CaptureHook capture_hook() {
  static const CaptureHook h = reinterpret_cast<CaptureHook>(dlsym(RTLD_DEFAULT, "ir_emu_capture_record"));
  return h;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  if (!h) return CUBLAS_STATUS_INVALID_VALUE;
  *h = reinterpret_cast<cublasLtHandle_t>(new (std::nothrow) Handle);
  return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
  auto* p = reinterpret_cast<Handle*>(h);
  if (!p || p->magic != kMagicHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
  p->magic = 0;
  delete p;
  return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) size_t cublasLtGetVersion(void) { return 130000; }
__attribute__((visibility("default"))) size_t cublasLtGetCudartVersion(void) { return 13000; }

__attribute__((visibility("default"))) const char* cublasLtGetStatusString(cublasStatus_t st) {
  switch (st) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS (emulated cuBLASLt)";
  }
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* out, cudaDataType type, uint64_t rows,
                                                                                  uint64_t cols, int64_t ld) {
  if (!out) return CUBLAS_STATUS_INVALID_VALUE;
  if (type != CUDA_R_32F && !is16(type)) return CUBLAS_STATUS_NOT_SUPPORTED;
  auto* l = new (std::nothrow) cublasLtMatrixLayoutOpaque_t{};
  if (!l) return CUBLAS_STATUS_ALLOC_FAILED;
  new (l) Layout{type, rows, cols, ld};
  *out = l;
  return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete l;
  return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l,
                                                                                       cublasLtMatrixLayoutAttribute_t attr, const void* buf,
                                                                                       size_t size) {
  if (!l) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_ORDER: return set_exact(&L(l)->order, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return set_exact(&L(l)->batch, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_ROWS: return set_exact(&L(l)->rows, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_COLS: return set_exact(&L(l)->cols, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_LD: return set_exact(&L(l)->ld, buf, size);
    default: return CUBLAS_STATUS_INVALID_VALUE;
  }
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* out, cublasComputeType_t compute,
                                                                               cudaDataType_t scale) {
  if (!out) return CUBLAS_STATUS_INVALID_VALUE;
  auto* d = new (std::nothrow) cublasLtMatmulDescOpaque_t{};
  if (!d) return CUBLAS_STATUS_ALLOC_FAILED;
  new (d) Desc{static_cast<int32_t>(compute), static_cast<int32_t>(scale)};
  *out = d;
  return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  delete d;
  return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                                                                     const void* buf, size_t size) {
  if (!d) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return set_exact(&D(d)->transa, buf, size);
    case CUBLASLT_MATMUL_DESC_TRANSB: return set_exact(&D(d)->transb, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return set_exact(&D(d)->epilogue, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set_exact(&D(d)->bias, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return set_exact(&D(d)->bias_type, buf, size);
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return set_exact(&D(d)->compute, buf, size);
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return set_exact(&D(d)->scale, buf, size);
    default: return CUBLAS_STATUS_INVALID_VALUE;
  }
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* out) {
  if (!out) return CUBLAS_STATUS_INVALID_VALUE;
  auto* p = new (std::nothrow) cublasLtMatmulPreferenceOpaque_t{};
  if (!p) return CUBLAS_STATUS_ALLOC_FAILED;
  new (p) Pref{};
  *out = p;
  return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  delete p;
  return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                                                           cublasLtMatmulPreferenceAttributes_t attr,
                                                                                           const void* buf, size_t size) {
  if (!p) return CUBLAS_STATUS_INVALID_VALUE;
  Pref* pr = reinterpret_cast<Pref*>(p);
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return set_exact(&pr->max_ws, buf, size);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return set_exact(&pr->min_align[0], buf, size);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return set_exact(&pr->min_align[1], buf, size);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return set_exact(&pr->min_align[2], buf, size);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return set_exact(&pr->min_align[3], buf, size);
    default: return CUBLAS_STATUS_INVALID_VALUE;
  }
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t op,
                                                                                     cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                                                     cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                                                                     cublasLtMatmulPreference_t pref, int requested,
                                                                                     cublasLtMatmulHeuristicResult_t results[], int* returned) {
  if (!h || reinterpret_cast<Handle*>(h)->magic != kMagicHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!op || !a || !b || !c || !d || !pref || requested < 1 || !results || !returned) return CUBLAS_STATUS_INVALID_VALUE;
  *returned = 0;
  Problem pr{};
  const cublasStatus_t st = check(*D(op), *L(a), *L(b), *L(c), *L(d), &pr);
  if (st == CUBLAS_STATUS_INVALID_VALUE) return st;
  if (st != CUBLAS_STATUS_SUCCESS) return CUBLAS_STATUS_NOT_SUPPORTED;  // the library: no algorithm
  std::memset(&results[0], 0, sizeof(results[0]));
  results[0].algo.data[0] = kMagicAlgo;
  results[0].algo.data[1] = pr.m;
  results[0].algo.data[2] = pr.n;
  results[0].algo.data[3] = pr.k;
  // The alignments this algo relies on: all the preference allowed (the worst case).
  const Pref& pf = *reinterpret_cast<const Pref*>(pref);
  results[0].algo.data[4] = uint64_t(pf.min_align[0]) | uint64_t(pf.min_align[1]) << 16 | uint64_t(pf.min_align[2]) << 32 | uint64_t(pf.min_align[3]) << 48;
  results[0].workspaceSize = 0;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void* alpha, const void* A,
                                                                     cublasLtMatrixLayout_t a, const void* B, cublasLtMatrixLayout_t b,
                                                                     const void* beta, const void* C, cublasLtMatrixLayout_t c, void* Dp,
                                                                     cublasLtMatrixLayout_t d, const cublasLtMatmulAlgo_t* algo, void* workspace,
                                                                     size_t workspace_bytes, cudaStream_t stream) {
  if (!h || reinterpret_cast<Handle*>(h)->magic != kMagicHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!op || !a || !b || !c || !d || !alpha || !beta || !A || !B || !C || !Dp) return CUBLAS_STATUS_INVALID_VALUE;
  Problem pr{};
  cublasStatus_t st = check(*D(op), *L(a), *L(b), *L(c), *L(d), &pr);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  // an algo from the heuristic, for this very problem (cuBLASLt: undefined otherwise)
  if (!algo || algo->data[0] != kMagicAlgo || algo->data[1] != pr.m || algo->data[2] != pr.n || algo->data[3] != pr.k)
    return CUBLAS_STATUS_INVALID_VALUE;
  (void)workspace;
  (void)workspace_bytes;
  const uint64_t al = algo->data[4];
  if (!aligned_to(A, al & 0xffff) || !aligned_to(B, (al >> 16) & 0xffff) || !aligned_to(C, (al >> 32) & 0xffff) || !aligned_to(Dp, al >> 48))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const Desc& ds = *D(op);
  if (ds.epilogue == CUBLASLT_EPILOGUE_BIAS && !ds.bias) return CUBLAS_STATUS_INVALID_VALUE;
  if (ds.epilogue == CUBLASLT_EPILOGUE_BIAS && !aligned_to(ds.bias, 16)) return CUBLAS_STATUS_NOT_SUPPORTED;
  // Everything by value, as the library bakes it into the kernels it launches (and a CUDA
  // graph capturing them keeps): the descriptor's bias pointer, layouts, alpha and beta.
  auto* m = new Matmul{ds, *L(a), *L(b), *L(d), pr, A, B, C, Dp, *static_cast<const float*>(alpha), *static_cast<const float*>(beta)};
  if (capture_hook() && capture_hook()(stream, [](void* c) { run_matmul(*static_cast<Matmul*>(c)); }, m, [](void* c) { delete static_cast<Matmul*>(c); }))
    return CUBLAS_STATUS_SUCCESS;
  run_matmul(*m);
  delete m;
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
