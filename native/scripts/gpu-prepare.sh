#!/usr/bin/env bash
# Prepares the standing GPU check (native/scripts/gpu-check.sh) on the dev machine, which
# has Node and nvcc but no GPU; the GPU machine has no Node and no internet.
#
#   bash native/scripts/gpu-prepare.sh     then carry native/build-gpu to the GPU machine
#
# Writes native/build-gpu/ (git-ignored, ~22 MB):
#   refs/   fp32 references from ONNX Runtime on CPU (bench/gpu-refs.ts): the full-size
#           deterministic random model's rewards for 27 real image × prompt pairs
#   bin/    ir_test_ops, ir_engine_check, ir_random_model built here for sm_80 + sm_90
#           (static CUDA runtime, cuBLASLt by dlopen): the check's fallback when the build
#           on the GPU machine fails, so one lent GPU always yields numbers.
# Before that, a pre-flight on this machine: the kernels and gemm.cu on the kernel
# simulator (tools/ir_test_ops_sim, threads forward and reverse, the emulated cuBLASLt) —
# a kernel that fails there would only waste the GPU's minutes, so the script stops.
# SKIP_SIM=1 skips the pre-flight (where the build has no simulator).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PREP="$ROOT/native/build-gpu"
BUILD="${BUILD:-$(mktemp -d "${TMPDIR:-/tmp}/ir-gpu-prepare.XXXXXX")}"
cd "$ROOT"
t0=$(date +%s)
node --import tsx bench/gpu-refs.ts "$PREP/refs"
cmake -S native -B "$BUILD" -DIMAGEREWARD_ADDON=OFF -DIMAGEREWARD_CUDA=ON "-DIMAGEREWARD_CUDA_ARCHS=80;90" -DCMAKE_BUILD_TYPE=Release >"$BUILD/cmake.txt"
cmake --build "$BUILD" -j "$(nproc)" >"$BUILD/build.txt"
if [[ "${SKIP_SIM:-0}" != 1 ]]; then
  if [[ ! -x "$BUILD/tools/ir_test_ops_sim" ]]; then
    echo "gpu-prepare: no kernel simulator in this build (IMAGEREWARD_KERNEL_SIM); SKIP_SIM=1 to go on without the pre-flight" >&2
    exit 1
  fi
  for order in forward reverse; do
    if ! IR_SIM_ORDER=$order IMAGEREWARD_CUBLASLT="$BUILD/tools/libcublaslt_emu.so" "$BUILD/tools/ir_test_ops_sim" >"$BUILD/sim-$order.txt" 2>&1; then
      grep -E 'FAIL|^ir_sim:' "$BUILD/sim-$order.txt" | head -20 >&2
      echo "gpu-prepare: the kernels fail on the simulator (IR_SIM_ORDER=$order, full log $BUILD/sim-$order.txt): fix that before spending GPU time" >&2
      exit 1
    fi
  done
  echo "gpu-prepare: pre-flight on the kernel simulator passed ($(grep -c ' PASS$' "$BUILD/sim-forward.txt") cases, threads forward and reverse)"
fi
mkdir -p "$PREP/bin"
for t in ir_test_ops ir_engine_check ir_random_model; do cp "$BUILD/tools/$t" "$PREP/bin/$t"; done
rm -rf "$BUILD"
echo "gpu-prepare: $(du -sh "$PREP" | cut -f1) in $PREP ($(( $(date +%s) - t0 )) s): carry native/build-gpu, run bash native/scripts/gpu-check.sh"
