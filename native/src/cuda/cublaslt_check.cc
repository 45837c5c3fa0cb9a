// cublaslt_check.cc — compile-time proof that our own cuBLASLt declarations
// (cublaslt_api.h, the thin loader layer) equal the real library's. Compiled only
// where CMake finds a real cublasLt.h (CUDA toolkit with cuBLAS, or the nvidia-cublas
// pip wheel's include/); it defines nothing and is linked into nothing: if it
// compiles, every value and size below matches.
#include <cublasLt.h>

#include "cuda/cublaslt_api.h"

#define IR_SAME(name) static_assert(static_cast<long>(ir::lt::name) == static_cast<long>(::name), #name " differs from cublasLt.h")

// cublas_api.h
IR_SAME(CUBLAS_STATUS_SUCCESS);
IR_SAME(CUBLAS_STATUS_NOT_INITIALIZED);
IR_SAME(CUBLAS_STATUS_ALLOC_FAILED);
IR_SAME(CUBLAS_STATUS_INVALID_VALUE);
IR_SAME(CUBLAS_STATUS_ARCH_MISMATCH);
IR_SAME(CUBLAS_STATUS_MAPPING_ERROR);
IR_SAME(CUBLAS_STATUS_EXECUTION_FAILED);
IR_SAME(CUBLAS_STATUS_INTERNAL_ERROR);
IR_SAME(CUBLAS_STATUS_NOT_SUPPORTED);
IR_SAME(CUBLAS_STATUS_LICENSE_ERROR);
IR_SAME(CUBLAS_OP_N);
IR_SAME(CUBLAS_OP_T);
IR_SAME(CUBLAS_COMPUTE_32F);
IR_SAME(CUBLAS_COMPUTE_32F_PEDANTIC);

// cublasLt.h enums
IR_SAME(CUBLASLT_ORDER_COL);
IR_SAME(CUBLASLT_ORDER_ROW);
IR_SAME(CUBLASLT_MATRIX_LAYOUT_TYPE);
IR_SAME(CUBLASLT_MATRIX_LAYOUT_ORDER);
IR_SAME(CUBLASLT_MATRIX_LAYOUT_ROWS);
IR_SAME(CUBLASLT_MATRIX_LAYOUT_COLS);
IR_SAME(CUBLASLT_MATRIX_LAYOUT_LD);
IR_SAME(CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT);
IR_SAME(CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET);
IR_SAME(CUBLASLT_MATMUL_DESC_COMPUTE_TYPE);
IR_SAME(CUBLASLT_MATMUL_DESC_SCALE_TYPE);
IR_SAME(CUBLASLT_MATMUL_DESC_POINTER_MODE);
IR_SAME(CUBLASLT_MATMUL_DESC_TRANSA);
IR_SAME(CUBLASLT_MATMUL_DESC_TRANSB);
IR_SAME(CUBLASLT_MATMUL_DESC_TRANSC);
IR_SAME(CUBLASLT_MATMUL_DESC_FILL_MODE);
IR_SAME(CUBLASLT_MATMUL_DESC_EPILOGUE);
IR_SAME(CUBLASLT_MATMUL_DESC_BIAS_POINTER);
IR_SAME(CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE);
IR_SAME(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE);
IR_SAME(CUBLASLT_EPILOGUE_DEFAULT);
IR_SAME(CUBLASLT_EPILOGUE_RELU);
IR_SAME(CUBLASLT_EPILOGUE_BIAS);
IR_SAME(CUBLASLT_EPILOGUE_GELU);
IR_SAME(CUBLASLT_EPILOGUE_GELU_BIAS);
IR_SAME(CUBLASLT_MATMUL_PREF_SEARCH_MODE);
IR_SAME(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES);
IR_SAME(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES);
IR_SAME(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES);
IR_SAME(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES);
IR_SAME(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES);

// Underlying widths: enums are passed by value through the function pointers.
static_assert(sizeof(ir::lt::cublasStatus_t) == sizeof(::cublasStatus_t), "cublasStatus_t size");
static_assert(sizeof(ir::lt::cublasComputeType_t) == sizeof(::cublasComputeType_t), "cublasComputeType_t size");
static_assert(sizeof(ir::lt::cublasLtMatmulDescAttributes_t) == sizeof(::cublasLtMatmulDescAttributes_t), "desc attr size");
static_assert(sizeof(ir::lt::cublasLtMatrixLayoutAttribute_t) == sizeof(::cublasLtMatrixLayoutAttribute_t), "layout attr size");
static_assert(sizeof(ir::lt::cublasLtMatmulPreferenceAttributes_t) == sizeof(::cublasLtMatmulPreferenceAttributes_t), "pref attr size");

// Structs whose layout we rely on (returned by value / passed by pointer).
static_assert(sizeof(ir::lt::cublasLtMatmulAlgo_t) == sizeof(::cublasLtMatmulAlgo_t), "cublasLtMatmulAlgo_t size");
static_assert(alignof(ir::lt::cublasLtMatmulAlgo_t) == alignof(::cublasLtMatmulAlgo_t), "cublasLtMatmulAlgo_t alignment");
static_assert(sizeof(ir::lt::cublasLtMatmulHeuristicResult_t) == sizeof(::cublasLtMatmulHeuristicResult_t), "heuristic result size");
static_assert(offsetof(ir::lt::cublasLtMatmulHeuristicResult_t, workspaceSize) == offsetof(::cublasLtMatmulHeuristicResult_t, workspaceSize),
              "heuristic result workspaceSize offset");
static_assert(offsetof(ir::lt::cublasLtMatmulHeuristicResult_t, state) == offsetof(::cublasLtMatmulHeuristicResult_t, state),
              "heuristic result state offset");
static_assert(offsetof(ir::lt::cublasLtMatmulHeuristicResult_t, wavesCount) == offsetof(::cublasLtMatmulHeuristicResult_t, wavesCount),
              "heuristic result wavesCount offset");

// Function signatures: our pointer types must accept the real functions (modulo the
// namespaced enum/handle types, which are checked above), so compare arity and the
// return type via the real prototypes.
static_assert(sizeof(&::cublasLtMatmul) == sizeof(ir::lt::PFN_cublasLtMatmul), "function pointer size");
static_assert(sizeof(decltype(::cublasLtGetVersion())) == sizeof(size_t), "cublasLtGetVersion returns size_t");
