// cublaslt_api.h — the engine's OWN declarations of the cuBLASLt C API subset it
// calls: a thin loader layer. CI machines (and the dev machines) have nvcc but no
// cuBLAS headers or libraries, so the engine never includes <cublasLt.h> and never
// links libcublasLt: cublaslt_loader.cc dlopen()s the library at run time and
// dlsym()s every function below into a table of function pointers.
//
// Everything here is an interface fact of cuBLASLt (enum values, struct layouts,
// function signatures), written from cublasLt.h / cublas_api.h of cuBLAS 13.4
// (CUBLAS_VER_MAJOR 13, CUBLAS_VER_MINOR 4, shipped with CUDA 13.x). Every value
// used here has been stable since CUDA 11.x/12.0 (libcublasLt.so.12 and .so.13 share
// them); cublaslt_check.cc static_asserts each value and struct size against a real
// cublasLt.h wherever CMake finds one (CUDA toolkit, or the nvidia-cublas pip wheel).
//
// Names keep the C spelling but live in namespace ir::lt, so this header and the real
// cublasLt.h can be included in one translation unit (cublaslt_check.cc does).
// cudaDataType values come from the CUDA runtime's own <library_types.h> (shipped with
// nvcc, so always present); kR* below are checked against it at compile time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cuda_runtime_api.h>  // cudaStream_t
#include <library_types.h>     // cudaDataType_t

namespace ir::lt {

// ---- cublas_api.h -------------------------------------------------------------------
enum cublasStatus_t : int {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_ARCH_MISMATCH = 8,
  CUBLAS_STATUS_MAPPING_ERROR = 11,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_INTERNAL_ERROR = 14,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
  CUBLAS_STATUS_LICENSE_ERROR = 16,
};

enum cublasOperation_t : int {
  CUBLAS_OP_N = 0,
  CUBLAS_OP_T = 1,
};

enum cublasComputeType_t : int {
  CUBLAS_COMPUTE_32F = 68,           // fp32 accumulation, the only one we use
  CUBLAS_COMPUTE_32F_PEDANTIC = 69,
};

// cudaDataType_t values (library_types.h), named here for the GEMM plans.
constexpr cudaDataType_t kR32F = CUDA_R_32F;    // 0
constexpr cudaDataType_t kR16F = CUDA_R_16F;    // 2
constexpr cudaDataType_t kR16BF = CUDA_R_16BF;  // 14
static_assert(static_cast<int>(CUDA_R_32F) == 0 && static_cast<int>(CUDA_R_16F) == 2 && static_cast<int>(CUDA_R_16BF) == 14,
              "library_types.h disagrees with the documented cudaDataType values");

// ---- cublasLt.h: opaque handles -------------------------------------------------------
struct cublasLtContext;
typedef cublasLtContext* cublasLtHandle_t;

// Semi-opaque descriptors: we only ever hold pointers returned by the *Create functions.
struct cublasLtMatrixLayoutOpaque_t { uint64_t data[14]; };
typedef cublasLtMatrixLayoutOpaque_t* cublasLtMatrixLayout_t;
struct cublasLtMatmulDescOpaque_t { uint64_t data[32]; };
typedef cublasLtMatmulDescOpaque_t* cublasLtMatmulDesc_t;
struct cublasLtMatmulPreferenceOpaque_t { uint64_t data[12]; };
typedef cublasLtMatmulPreferenceOpaque_t* cublasLtMatmulPreference_t;

// Algorithm descriptor, returned by value inside the heuristic result (layout matters).
struct cublasLtMatmulAlgo_t { uint64_t data[8]; };

struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  cublasStatus_t state;
  float wavesCount;
  int reserved[4];
};

// ---- cublasLt.h: enums ----------------------------------------------------------------
enum cublasLtOrder_t : int {
  CUBLASLT_ORDER_COL = 0,
  CUBLASLT_ORDER_ROW = 1,
};

enum cublasLtMatrixLayoutAttribute_t : int {
  CUBLASLT_MATRIX_LAYOUT_TYPE = 0,         // uint32_t (cudaDataType)
  CUBLASLT_MATRIX_LAYOUT_ORDER = 1,        // int32_t (cublasLtOrder_t)
  CUBLASLT_MATRIX_LAYOUT_ROWS = 2,         // uint64_t
  CUBLASLT_MATRIX_LAYOUT_COLS = 3,         // uint64_t
  CUBLASLT_MATRIX_LAYOUT_LD = 4,           // int64_t
  CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5,  // int32_t
  CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6,  // int64_t
};

enum cublasLtMatmulDescAttributes_t : int {
  CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0,  // int32_t (cublasComputeType_t)
  CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1,    // int32_t (cudaDataType)
  CUBLASLT_MATMUL_DESC_POINTER_MODE = 2,  // int32_t (cublasLtPointerMode_t), default host
  CUBLASLT_MATMUL_DESC_TRANSA = 3,        // int32_t (cublasOperation_t)
  CUBLASLT_MATMUL_DESC_TRANSB = 4,        // int32_t (cublasOperation_t)
  CUBLASLT_MATMUL_DESC_TRANSC = 5,
  CUBLASLT_MATMUL_DESC_FILL_MODE = 6,
  CUBLASLT_MATMUL_DESC_EPILOGUE = 7,      // uint32_t (cublasLtEpilogue_t)
  CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,  // const void*
  CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE = 10,
  CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26,  // int32_t (cudaDataType), default -1 = D's type
};

enum cublasLtEpilogue_t : int {
  CUBLASLT_EPILOGUE_DEFAULT = 1,
  CUBLASLT_EPILOGUE_RELU = 2,
  CUBLASLT_EPILOGUE_BIAS = 4,
  CUBLASLT_EPILOGUE_GELU = 32,       // tanh approximation: NOT used (the model needs erf GELU)
  CUBLASLT_EPILOGUE_GELU_BIAS = 36,  // idem
};

enum cublasLtMatmulPreferenceAttributes_t : int {
  CUBLASLT_MATMUL_PREF_SEARCH_MODE = 0,
  CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,  // uint64_t
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,  // uint32_t
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8,
};

// ---- cublasLt.h: functions (as function-pointer types for dlsym) ----------------------
// All are `extern "C"` in the library with the default calling convention on Linux.
extern "C" {
typedef cublasStatus_t (*PFN_cublasLtCreate)(cublasLtHandle_t* handle);
typedef cublasStatus_t (*PFN_cublasLtDestroy)(cublasLtHandle_t handle);
typedef size_t (*PFN_cublasLtGetVersion)(void);
typedef size_t (*PFN_cublasLtGetCudartVersion)(void);
typedef const char* (*PFN_cublasLtGetStatusString)(cublasStatus_t status);
typedef cublasStatus_t (*PFN_cublasLtMatrixLayoutCreate)(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows, uint64_t cols,
                                                          int64_t ld);
typedef cublasStatus_t (*PFN_cublasLtMatrixLayoutDestroy)(cublasLtMatrixLayout_t layout);
typedef cublasStatus_t (*PFN_cublasLtMatrixLayoutSetAttribute)(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                                const void* buf, size_t size);
typedef cublasStatus_t (*PFN_cublasLtMatmulDescCreate)(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale);
typedef cublasStatus_t (*PFN_cublasLtMatmulDescDestroy)(cublasLtMatmulDesc_t desc);
typedef cublasStatus_t (*PFN_cublasLtMatmulDescSetAttribute)(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const void* buf,
                                                              size_t size);
typedef cublasStatus_t (*PFN_cublasLtMatmulPreferenceCreate)(cublasLtMatmulPreference_t* pref);
typedef cublasStatus_t (*PFN_cublasLtMatmulPreferenceDestroy)(cublasLtMatmulPreference_t pref);
typedef cublasStatus_t (*PFN_cublasLtMatmulPreferenceSetAttribute)(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr,
                                                                    const void* buf, size_t size);
typedef cublasStatus_t (*PFN_cublasLtMatmulAlgoGetHeuristic)(cublasLtHandle_t handle, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                                              cublasLtMatmulPreference_t pref, int requested,
                                                              cublasLtMatmulHeuristicResult_t results[], int* returned);
typedef cublasStatus_t (*PFN_cublasLtMatmul)(cublasLtHandle_t handle, cublasLtMatmulDesc_t op, const void* alpha, const void* A,
                                              cublasLtMatrixLayout_t a, const void* B, cublasLtMatrixLayout_t b, const void* beta,
                                              const void* C, cublasLtMatrixLayout_t c, void* D, cublasLtMatrixLayout_t d,
                                              const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes,
                                              cudaStream_t stream);
}

}  // namespace ir::lt
