#!/usr/bin/env bash
# The standing GPU check (issue 4): one call on a lent GPU machine builds the
# CUDA engine, runs the per-op tests, checks end-to-end parity on the full-size
# deterministic random model against fp32 references computed beforehand with
# ONNX Runtime on CPU (and against PyTorch on the device), benchmarks the engine
# beside PyTorch, and prints one short table last.
#
# The GPU machine has nvcc, CMake, Python + PyTorch (with the nvidia-cublas wheel)
# and no Node and no internet. Prepare on the dev machine, then run there:
#
#   node --import tsx bench/gpu-refs.ts            # → native/build-gpu/refs/{refs.json,refs.bin}
#   device run: bash native/scripts/gpu-check.sh   (carry: native/build-gpu/refs)
#
# Environment: OUT (results folder; the device tool's $OUT), SECONDS_PER_CASE (bench
# time per batch size, default 3), BATCHES (default 1,8,32,128,256), SKIP_TORCH=1.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-/tmp/imagereward-gpu-check}"
REFS="${REFS:-$ROOT/native/build-gpu/refs}"
BUILD="${BUILD:-/tmp/imagereward-gpu-build}"
MODEL="${MODEL:-/tmp/imagereward-random-full}"
BATCHES="${BATCHES:-1,8,32,128,256}"
SECS="${SECONDS_PER_CASE:-3}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.md"
: >"$SUMMARY"
t0=$(date +%s)
step() { echo; echo "== [$(( $(date +%s) - t0 ))s] $*"; }
row() { echo "$*" | tee -a "$SUMMARY"; }
status=0

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader | tee "$OUT/gpu.txt"
CC="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')"
ARCHS="${ARCHS:-$CC}"
nvcc --version | tail -1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1 | tail -1

# cuBLASLt: from the CUDA toolkit when present, else PyTorch's nvidia-cublas wheel.
CUBLAS_DIR="$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__))' 2>/dev/null || true)"
if [ -n "$CUBLAS_DIR" ]; then
  export IMAGEREWARD_CUBLASLT_DIR="$CUBLAS_DIR/lib"
  export LD_LIBRARY_PATH="$CUBLAS_DIR/lib:${LD_LIBRARY_PATH:-}"
  echo "cuBLASLt wheel: $CUBLAS_DIR"
fi

step "build (sm_$ARCHS, no Node: IMAGEREWARD_ADDON=OFF)"
cmake -S "$ROOT/native" -B "$BUILD" -DIMAGEREWARD_ADDON=OFF -DIMAGEREWARD_CUDA=ON "-DIMAGEREWARD_CUDA_ARCHS=$ARCHS" \
  ${CUBLAS_DIR:+"-DIMAGEREWARD_CUBLAS_INCLUDE=$CUBLAS_DIR/include"} -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake.txt" 2>&1 || { tail -30 "$OUT/cmake.txt"; exit 1; }
grep -E "imagereward engine" "$OUT/cmake.txt"
cmake --build "$BUILD" -j "$(nproc)" >"$OUT/build.txt" 2>&1 || { grep -E "error|Error" "$OUT/build.txt" | head -40; exit 1; }
echo "built: $(ls "$BUILD/tools")"

step "per-op tests"
"$BUILD/tools/ir_test_ops" | tee "$OUT/test_ops.txt"
ops_rc=${PIPESTATUS[0]}
ops_pass=$(grep -c "PASS" "$OUT/test_ops.txt" || true)
ops_fail=$(grep -c "FAIL" "$OUT/test_ops.txt" || true)
[ "$ops_rc" = 0 ] || status=1

step "full-size random model (seed from refs.json)"
SEED="$(python3 -c "import json; print(json.load(open('$REFS/refs.json'))['seed'])")"
"$BUILD/tools/ir_random_model" --out "$MODEL" --seed "$SEED" --size full
python3 - "$MODEL/model.safetensors" "$REFS/refs.json" <<'EOF' | tee "$OUT/weights.txt"
import hashlib, json, struct, sys
path, refs = sys.argv[1], json.load(open(sys.argv[2]))
with open(path, "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8)); header = json.loads(f.read(n)); base = 8 + n
    h = hashlib.sha256()
    for name in sorted(k for k in header if k != "__metadata__"):
        a, b = header[name]["data_offsets"]; f.seek(base + a)
        h.update(name.encode()); h.update(f.read(b - a))
ok = h.hexdigest() == refs["tensors_sha256"]
print("weights identical to the references' model:", ok)
sys.exit(0 if ok else 1)
EOF
weights_ok=${PIPESTATUS[0]}
[ "$weights_ok" = 0 ] || status=1

step "engine: parity against ORT fp32 references, then benchmark"
"$BUILD/tools/ir_engine_check" --model "$MODEL" --refs "$REFS" --bench --batches "$BATCHES" --seconds "$SECS" | tee "$OUT/engine_check.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

if [ "${SKIP_TORCH:-0}" != 1 ]; then
  step "PyTorch on the same card: fp32 parity, upstream-style fp32 loop, bf16 + SDPA batched"
  python3 "$ROOT/bench/torch_gpu.py" --model "$MODEL" --refs "$REFS" --seconds "$SECS" --batches 32,128 | tee "$OUT/torch.txt"
fi

step "summary ($(date -u +%Y-%m-%d), $(head -1 "$OUT/gpu.txt"))"
row "| check | result |"
row "| --- | --- |"
row "| per-op tests | $ops_pass passed, $ops_fail failed (exit $ops_rc) |"
row "| random weights == refs' | $([ "$weights_ok" = 0 ] && echo yes || echo NO) |"
grep -E "^\| " "$OUT/engine_check.txt" | tee -a "$SUMMARY" >/dev/null || true
if [ -f "$OUT/torch.txt" ]; then
  python3 - "$OUT/torch.txt" <<'EOF' | tee -a "$SUMMARY"
import json, sys
s = [json.loads(l)["summary"] for l in open(sys.argv[1]) if '"summary"' in l]
if s:
    s = s[-1]
    print("| PyTorch fp32 vs ORT refs, max abs diff | %.2e |" % s.get("torch_fp32_vs_ort_max_abs_diff", float("nan")))
    print("| PyTorch fp32 upstream-style loop, pairs/s | %.1f |" % s.get("fp32_loop_pairs_per_s", float("nan")))
    for k, v in s.items():
        if k.startswith("bf16_sdpa_pairs_per_s_b"):
            print("| PyTorch bf16 + SDPA batch %s, pairs/s | %.0f |" % (k.rsplit("b", 1)[-1], v))
EOF
fi
echo
cat "$SUMMARY"
exit $status
