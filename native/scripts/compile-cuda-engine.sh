#!/usr/bin/env bash
# Compile check for the CUDA engine core (no GPU, no cuBLAS needed): the cuBLASLt loader
# layer, GEMM, weights, engine and tools/engine_check, for sm_80 and sm_90, into a temp
# dir; links engine_check against the static CUDA runtime together with the op kernels
# (src/cuda/{preprocess,embed,layernorm,attention,elementwise,head,engine_kernels}.cu).
# If an op file is missing or fails to compile, the engine's own files are still compiled
# (-c only) and the link is skipped: the script says so and exits 0 only when our files
# compiled. cublaslt_check.cc is compiled too when a real cublasLt.h is found
# ($IMAGEREWARD_CUBLAS_INCLUDE, the CUDA include dir, or the nvidia-cublas pip wheel).
# Usage: bash native/scripts/compile-cuda-engine.sh [--keep]   Env: NVCC, CXX, JOBS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
CUDA_HOME="${CUDA_HOME:-$(cd "$(dirname "$(readlink -f "$NVCC")")/.." && pwd)}"
[[ -f "$CUDA_HOME/include/cuda_runtime_api.h" ]] || CUDA_HOME=/usr/local/cuda
CXX="${CXX:-g++}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
KEEP=0
[[ "${1:-}" == "--keep" ]] && KEEP=1

GENCODE=(-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90)
NVFLAGS=(-std=c++17 -O3 "${GENCODE[@]}" -Xcompiler -fPIC,-Wall,-Wextra,-Wno-unused-parameter --expt-relaxed-constexpr
         -DIMAGEREWARD_CUDA_ARCHS=\"80\;90\" -I"$ROOT/src")
CXXFLAGS=(-std=c++17 -O3 -fPIC -fno-fast-math -Wall -Wextra -Wno-unused-parameter -I"$CUDA_HOME/include" -I"$ROOT/src")

TMP="$(mktemp -d "${TMPDIR:-/tmp}/ir-cuda-engine.XXXXXX")"
if [[ $KEEP -eq 0 ]]; then trap 'rm -rf "$TMP"' EXIT; fi
echo "nvcc: $NVCC ($("$NVCC" --version | tail -1))"
echo "nvcc flags: ${NVFLAGS[*]}"
echo "c++ flags:  ${CXXFLAGS[*]}"
t0=$(date +%s)

OURS_CU=(gemm engine)
OURS_CC=(cublaslt_loader weights cuda_error)
OPS=(preprocess embed layernorm attention elementwise head)
[[ -f "$ROOT/src/cuda/engine_kernels.cu" ]] && OURS_CU+=(engine_kernels)

compile_cu() { local t=$(date +%s); "$NVCC" "${NVFLAGS[@]}" -c "$1" -o "$2" && echo "  compiled $(basename "$1") in $(( $(date +%s) - t ))s"; }
compile_cc() { local t=$(date +%s); "$CXX" "${CXXFLAGS[@]}" -c "$1" -o "$2" && echo "  compiled $(basename "$1") in $(( $(date +%s) - t ))s"; }

# ours: must compile
pids=(); fail=0; objs=()
for f in "${OURS_CU[@]}"; do objs+=("$TMP/$f.o"); compile_cu "$ROOT/src/cuda/$f.cu" "$TMP/$f.o" & pids+=($!); while [[ $(jobs -rp | wc -l) -ge $JOBS ]]; do wait -n || fail=1; done; done
for f in "${OURS_CC[@]}"; do objs+=("$TMP/$f.o"); compile_cc "$ROOT/src/cuda/$f.cc" "$TMP/$f.o" & pids+=($!); while [[ $(jobs -rp | wc -l) -ge $JOBS ]]; do wait -n || fail=1; done; done
compile_cc "$ROOT/tools/engine_check.cc" "$TMP/engine_check.o" & pids+=($!)
for p in "${pids[@]}"; do wait "$p" || fail=1; done
if [[ $fail -ne 0 ]]; then echo "compile-cuda-engine: FAILED (the engine's own files)" >&2; exit 1; fi

# the real-header check, where a cublasLt.h exists
CUBLAS_INC="${IMAGEREWARD_CUBLAS_INCLUDE:-}"
if [[ -z "$CUBLAS_INC" && -f "$CUDA_HOME/include/cublasLt.h" ]]; then CUBLAS_INC="$CUDA_HOME/include"; fi
if [[ -z "$CUBLAS_INC" ]]; then
  w="$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__))' 2>/dev/null || true)"
  [[ -n "$w" && -f "$w/include/cublasLt.h" ]] && CUBLAS_INC="$w/include"
fi
if [[ -n "$CUBLAS_INC" ]]; then
  "$CXX" "${CXXFLAGS[@]}" -I"$CUBLAS_INC" -fsyntax-only "$ROOT/src/cuda/cublaslt_check.cc" && echo "  cublaslt_check.cc: our declarations match $CUBLAS_INC/cublasLt.h"
else
  echo "  cublaslt_check.cc: skipped (no cublasLt.h found)"
fi

# the op kernels (written separately): link only if all compile
opfail=0; opobjs=()
pids=()
for op in "${OPS[@]}"; do
  src="$ROOT/src/cuda/$op.cu"
  if [[ ! -f "$src" ]]; then echo "  op file $op.cu missing"; opfail=1; continue; fi
  opobjs+=("$TMP/op_$op.o")
  compile_cu "$src" "$TMP/op_$op.o" & pids+=($!)
  while [[ $(jobs -rp | wc -l) -ge $JOBS ]]; do wait -n || opfail=1; done
done
for p in "${pids[@]}"; do wait "$p" || opfail=1; done
if [[ $opfail -ne 0 ]]; then
  echo "compile-cuda-engine: OK (-c only) in $(( $(date +%s) - t0 ))s: the engine's files compiled; op kernels missing or failing, engine_check NOT linked"
  exit 0
fi
"$NVCC" "${GENCODE[@]}" -cudart static "${objs[@]}" "${opobjs[@]}" "$TMP/engine_check.o" -ldl -lpthread -o "$TMP/engine_check"
echo "  linked engine_check (static cudart, -ldl)"
echo "compile-cuda-engine: OK in $(( $(date +%s) - t0 ))s (sm_80 + sm_90)"
if [[ $KEEP -eq 1 ]]; then echo "engine_check: $TMP/engine_check"; fi
