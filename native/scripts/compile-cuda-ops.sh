#!/usr/bin/env bash
# Compile check for the engine's CUDA op files (src/cuda/*.cu except engine.cu) and the
# standalone op test driver (tests/test_ops.cu), for sm_80 and sm_90, into a temp dir.
# Links tests/test_ops against the static CUDA runtime. Needs only nvcc (no GPU, no
# cuBLAS). Usage: bash native/scripts/compile-cuda-ops.sh [--keep] (prints the binary's path).
# Environment: NVCC (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc), JOBS (parallel
# compiles, default nproc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
KEEP=0
[[ "${1:-}" == "--keep" ]] && KEEP=1

OPS=(preprocess embed layernorm attention elementwise head)
FLAGS=(
  -std=c++17 -O3
  -gencode arch=compute_80,code=sm_80
  -gencode arch=compute_90,code=sm_90
  -Xcompiler -fPIC,-Wall,-Wextra
  -Werror all-warnings
  -I"$ROOT/src/cuda"
)

TMP="$(mktemp -d "${TMPDIR:-/tmp}/ir-cuda-ops.XXXXXX")"
if [[ $KEEP -eq 0 ]]; then trap 'rm -rf "$TMP"' EXIT; fi

echo "nvcc: $NVCC ($("$NVCC" --version | tail -1))"
echo "flags: ${FLAGS[*]}"
t0=$(date +%s)

compile() {  # src obj
  local t=$(date +%s)
  "$NVCC" "${FLAGS[@]}" -c "$1" -o "$2"
  echo "  compiled $(basename "$1") in $(( $(date +%s) - t ))s"
}

pids=()
objs=()
fail=0
srcs=()
for op in "${OPS[@]}"; do srcs+=("$ROOT/src/cuda/$op.cu"); done
srcs+=("$ROOT/tests/test_ops.cu")
for src in "${srcs[@]}"; do
  obj="$TMP/$(basename "$src" .cu).o"
  objs+=("$obj")
  compile "$src" "$obj" &
  pids+=($!)
  # throttle to JOBS concurrent compiles
  while [[ $(jobs -rp | wc -l) -ge $JOBS ]]; do wait -n || fail=1; done
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
if [[ $fail -ne 0 ]]; then
  echo "compile-cuda-ops: FAILED (compile)" >&2
  exit 1
fi

"$NVCC" -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -cudart static "${objs[@]}" -o "$TMP/test_ops"
echo "  linked test_ops"
echo "compile-cuda-ops: OK in $(( $(date +%s) - t0 ))s (${#srcs[@]} files, sm_80 + sm_90)"
if [[ $KEEP -eq 1 ]]; then echo "test_ops: $TMP/test_ops"; fi
