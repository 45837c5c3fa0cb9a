// cublaslt_loader.h — run-time loading of libcublasLt (dlopen + dlsym) into a table of
// function pointers declared by cublaslt_api.h. No cuBLAS header or library is needed
// to build the engine; the library is needed only to run it.
//
// Search order (first that loads AND exports every symbol wins):
//   1. $IMAGEREWARD_CUBLASLT        an exact file path
//   2. libcublasLt.so.13, libcublasLt.so.12, libcublasLt.so   (the dynamic loader's path)
//   3. $IMAGEREWARD_CUBLASLT_DIR/libcublasLt.so.{13,12,}       (e.g. the nvidia-cublas pip
//      wheel's lib/ folder: python3 -c "import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__))")
// Failure throws EngineError(CublasMissing) naming every path tried and dlerror().
#pragma once

#include <string>

#include "cuda/cublaslt_api.h"

namespace ir {

struct CublasLtApi {
  lt::PFN_cublasLtCreate Create = nullptr;
  lt::PFN_cublasLtDestroy Destroy = nullptr;
  lt::PFN_cublasLtGetVersion GetVersion = nullptr;
  lt::PFN_cublasLtGetCudartVersion GetCudartVersion = nullptr;
  lt::PFN_cublasLtGetStatusString GetStatusString = nullptr;
  lt::PFN_cublasLtMatrixLayoutCreate MatrixLayoutCreate = nullptr;
  lt::PFN_cublasLtMatrixLayoutDestroy MatrixLayoutDestroy = nullptr;
  lt::PFN_cublasLtMatrixLayoutSetAttribute MatrixLayoutSetAttribute = nullptr;
  lt::PFN_cublasLtMatmulDescCreate MatmulDescCreate = nullptr;
  lt::PFN_cublasLtMatmulDescDestroy MatmulDescDestroy = nullptr;
  lt::PFN_cublasLtMatmulDescSetAttribute MatmulDescSetAttribute = nullptr;
  lt::PFN_cublasLtMatmulPreferenceCreate MatmulPreferenceCreate = nullptr;
  lt::PFN_cublasLtMatmulPreferenceDestroy MatmulPreferenceDestroy = nullptr;
  lt::PFN_cublasLtMatmulPreferenceSetAttribute MatmulPreferenceSetAttribute = nullptr;
  lt::PFN_cublasLtMatmulAlgoGetHeuristic MatmulAlgoGetHeuristic = nullptr;
  lt::PFN_cublasLtMatmul Matmul = nullptr;

  std::string path;     // the file that was loaded
  size_t version = 0;   // cublasLtGetVersion(): major * 10000 + minor * 100 + patch
  std::string version_string() const;  // "13.0.0"
};

// Loads once per process (thread-safe) and returns the table; throws
// EngineError(CublasMissing) when no candidate loads (the failure is remembered and
// rethrown on later calls). The library stays loaded until the process exits.
const CublasLtApi& cublaslt();

// Non-throwing probe: the loaded table, or nullptr (and the reason in *why).
const CublasLtApi* cublaslt_try(std::string* why);

// The first soname tried (for build info).
const char* cublaslt_first_soname();

// "CUBLAS_STATUS_NOT_SUPPORTED (the library's text)".
std::string cublas_status_text(int status);

}  // namespace ir
