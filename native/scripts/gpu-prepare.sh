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
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PREP="$ROOT/native/build-gpu"
BUILD="${BUILD:-$(mktemp -d "${TMPDIR:-/tmp}/ir-gpu-prepare.XXXXXX")}"
cd "$ROOT"
t0=$(date +%s)
node --import tsx bench/gpu-refs.ts "$PREP/refs"
cmake -S native -B "$BUILD" -DIMAGEREWARD_ADDON=OFF -DIMAGEREWARD_CUDA=ON "-DIMAGEREWARD_CUDA_ARCHS=80;90" -DCMAKE_BUILD_TYPE=Release >"$BUILD/cmake.txt"
cmake --build "$BUILD" -j "$(nproc)" >"$BUILD/build.txt"
mkdir -p "$PREP/bin"
for t in ir_test_ops ir_engine_check ir_random_model; do cp "$BUILD/tools/$t" "$PREP/bin/$t"; done
rm -rf "$BUILD"
echo "gpu-prepare: $(du -sh "$PREP" | cut -f1) in $PREP ($(( $(date +%s) - t0 )) s): carry native/build-gpu, run bash native/scripts/gpu-check.sh"
