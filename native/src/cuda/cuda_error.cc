// cuda_error.cc — CUDA error → EngineError (declared in gemm.cuh): which errors are
// sticky (the context is unusable: DeviceLost), which mean out of memory or no device.
// Plain host C++: shared by the engine and its CPU emulation (native/tests/emu).
#include <string>

#include "cuda/gemm.cuh"

namespace ir::cuda {

bool is_sticky_cuda_error(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorLaunchTimeout:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
    case cudaErrorNvlinkUncorrectable:
    case cudaErrorContextIsDestroyed:
    case cudaErrorDevicesUnavailable:
    case cudaErrorUnknown:
      return true;
    default:
      return false;
  }
}

EngineErrorCode classify_cuda_error(cudaError_t e) {
  switch (e) {
    case cudaErrorMemoryAllocation:
      return EngineErrorCode::OutOfMemory;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
      return EngineErrorCode::NoDevice;
    default:
      return is_sticky_cuda_error(e) ? EngineErrorCode::DeviceLost : EngineErrorCode::Cuda;
  }
}

void throw_cuda_error(cudaError_t e, const char* expr, const char* file, int line) {
  const char* base = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/') base = p + 1;
  std::string msg = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e) + " (" + expr + " at " + base + ":" + std::to_string(line) + ")";
  throw EngineError(classify_cuda_error(e), msg);
}

}  // namespace ir::cuda
