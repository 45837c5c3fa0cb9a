// cublaslt_loader.cc — see cublaslt_loader.h. dlopen(RTLD_NOW | RTLD_LOCAL): the
// library's symbols stay out of the global namespace; every function we call is
// resolved up front so a missing one fails at load, not mid-forward.
#include "cuda/cublaslt_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "cuda/engine.h"

namespace ir {
namespace {

const char* const kSonames[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};

struct LoadState {
  std::once_flag once;
  CublasLtApi api;
  bool ok = false;
  std::string error;
};

LoadState& state() {
  static LoadState s;
  return s;
}

template <typename F>
bool sym(void* lib, const char* name, F* out, std::string* missing) {
  dlerror();
  void* p = dlsym(lib, name);
  if (!p) {
    if (!missing->empty()) *missing += ", ";
    *missing += name;
    return false;
  }
  *out = reinterpret_cast<F>(p);
  return true;
}

// Resolves every symbol; on failure returns false with the missing names in *why.
bool resolve(void* lib, CublasLtApi* a, std::string* why) {
  std::string missing;
  bool ok = true;
  ok &= sym(lib, "cublasLtCreate", &a->Create, &missing);
  ok &= sym(lib, "cublasLtDestroy", &a->Destroy, &missing);
  ok &= sym(lib, "cublasLtGetVersion", &a->GetVersion, &missing);
  ok &= sym(lib, "cublasLtGetCudartVersion", &a->GetCudartVersion, &missing);
  ok &= sym(lib, "cublasLtGetStatusString", &a->GetStatusString, &missing);
  ok &= sym(lib, "cublasLtMatrixLayoutCreate", &a->MatrixLayoutCreate, &missing);
  ok &= sym(lib, "cublasLtMatrixLayoutDestroy", &a->MatrixLayoutDestroy, &missing);
  ok &= sym(lib, "cublasLtMatrixLayoutSetAttribute", &a->MatrixLayoutSetAttribute, &missing);
  ok &= sym(lib, "cublasLtMatmulDescCreate", &a->MatmulDescCreate, &missing);
  ok &= sym(lib, "cublasLtMatmulDescDestroy", &a->MatmulDescDestroy, &missing);
  ok &= sym(lib, "cublasLtMatmulDescSetAttribute", &a->MatmulDescSetAttribute, &missing);
  ok &= sym(lib, "cublasLtMatmulPreferenceCreate", &a->MatmulPreferenceCreate, &missing);
  ok &= sym(lib, "cublasLtMatmulPreferenceDestroy", &a->MatmulPreferenceDestroy, &missing);
  ok &= sym(lib, "cublasLtMatmulPreferenceSetAttribute", &a->MatmulPreferenceSetAttribute, &missing);
  ok &= sym(lib, "cublasLtMatmulAlgoGetHeuristic", &a->MatmulAlgoGetHeuristic, &missing);
  ok &= sym(lib, "cublasLtMatmul", &a->Matmul, &missing);
  if (!ok) *why = "missing symbols: " + missing;
  return ok;
}

void load(LoadState* s) {
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("IMAGEREWARD_CUBLASLT"); p && *p) candidates.emplace_back(p);
  for (const char* n : kSonames) candidates.emplace_back(n);
  if (const char* d = std::getenv("IMAGEREWARD_CUBLASLT_DIR"); d && *d) {
    std::string dir(d);
    if (dir.back() != '/') dir += '/';
    for (const char* n : kSonames) candidates.push_back(dir + n);
  }
  std::string tried;
  for (const std::string& c : candidates) {
    void* lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      tried += "\n  " + c + ": " + (e ? e : "dlopen failed");
      continue;
    }
    CublasLtApi api;
    std::string why;
    if (!resolve(lib, &api, &why)) {
      tried += "\n  " + c + ": " + why;
      dlclose(lib);
      continue;
    }
    api.path = c;
    api.version = api.GetVersion();
    s->api = api;
    s->ok = true;
    return;  // stays loaded for the life of the process
  }
  s->error = "cannot load libcublasLt (set IMAGEREWARD_CUBLASLT to the library file or IMAGEREWARD_CUBLASLT_DIR to its folder); tried:" + tried;
}

}  // namespace

std::string CublasLtApi::version_string() const {
  if (!version) return "";
  return std::to_string(version / 10000) + "." + std::to_string((version / 100) % 100) + "." + std::to_string(version % 100);
}

const CublasLtApi* cublaslt_try(std::string* why) {
  LoadState& s = state();
  std::call_once(s.once, [&s] { load(&s); });
  if (!s.ok) {
    if (why) *why = s.error;
    return nullptr;
  }
  return &s.api;
}

const CublasLtApi& cublaslt() {
  std::string why;
  const CublasLtApi* a = cublaslt_try(&why);
  if (!a) throw EngineError(EngineErrorCode::CublasMissing, why);
  return *a;
}

const char* cublaslt_first_soname() { return kSonames[0]; }

std::string cublas_status_text(int status) {
  const char* name = "CUBLAS_STATUS_UNKNOWN";
  switch (status) {
    case lt::CUBLAS_STATUS_SUCCESS: name = "CUBLAS_STATUS_SUCCESS"; break;
    case lt::CUBLAS_STATUS_NOT_INITIALIZED: name = "CUBLAS_STATUS_NOT_INITIALIZED"; break;
    case lt::CUBLAS_STATUS_ALLOC_FAILED: name = "CUBLAS_STATUS_ALLOC_FAILED"; break;
    case lt::CUBLAS_STATUS_INVALID_VALUE: name = "CUBLAS_STATUS_INVALID_VALUE"; break;
    case lt::CUBLAS_STATUS_ARCH_MISMATCH: name = "CUBLAS_STATUS_ARCH_MISMATCH"; break;
    case lt::CUBLAS_STATUS_MAPPING_ERROR: name = "CUBLAS_STATUS_MAPPING_ERROR"; break;
    case lt::CUBLAS_STATUS_EXECUTION_FAILED: name = "CUBLAS_STATUS_EXECUTION_FAILED"; break;
    case lt::CUBLAS_STATUS_INTERNAL_ERROR: name = "CUBLAS_STATUS_INTERNAL_ERROR"; break;
    case lt::CUBLAS_STATUS_NOT_SUPPORTED: name = "CUBLAS_STATUS_NOT_SUPPORTED"; break;
    case lt::CUBLAS_STATUS_LICENSE_ERROR: name = "CUBLAS_STATUS_LICENSE_ERROR"; break;
    default: break;
  }
  std::string s = std::string(name) + " (" + std::to_string(status) + ")";
  std::string why;
  if (const CublasLtApi* a = cublaslt_try(&why); a && a->GetStatusString) {
    if (const char* t = a->GetStatusString(static_cast<lt::cublasStatus_t>(status))) s += ": " + std::string(t);
  }
  return s;
}

}  // namespace ir
