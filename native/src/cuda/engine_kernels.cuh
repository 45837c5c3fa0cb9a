// engine_kernels.cuh — declarations of engine_kernels.cu (the engine's own kernels that
// ops.cuh does not have). Same conventions as ops.cuh: enqueue only, return the launch
// status, never print / exit / abort.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace ir::cuda {

// x T [n] = gelu_erf(x), in place (exact erf GELU in fp32 math).
template <typename T>
cudaError_t gelu_inplace(T* x, long n, cudaStream_t stream);

}  // namespace ir::cuda
