#!/usr/bin/env bash
# One call on the GPU machine: build the addon, run test:gpu (and the bench when asked),
# logs under $OUT. Usage (device tool, carry [".device", "src/backend/tfjs_gradients.js"]: the gradients bundle is built by `npm ci`, gitignored):
#   source .device/env.sh && bash bench/device.sh [test-files…|all] [--bench]
set -uo pipefail
BENCH_ARGS=(${BENCH_ARGS:-})
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
start=$(date +%s)
cmake -S kernels -B build/kernels -DCMAKE_BUILD_TYPE=Release > "$OUT/build.log" 2>&1 &&
  cmake --build build/kernels -j16 >> "$OUT/build.log" 2>&1
rc=$?
echo "build rc=$rc in $(( $(date +%s) - start ))s"
if [ $rc -ne 0 ]; then grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit $rc; fi
bench=0
files=()
for a in "$@"; do
  if [ "$a" = "--bench" ]; then bench=1; elif [ "$a" != "all" ]; then files+=("$a"); fi
done
start=$(date +%s)
timeout "${TEST_TIMEOUT:-420}" vitest run --config vitest.gpu.config.ts "${files[@]}" > "$OUT/test.log" 2>&1
echo "test:gpu rc=$? in $(( $(date +%s) - start ))s"
grep -E "×|FAIL|→|Error:" "$OUT/test.log" | head -80
grep -E "Test Files|Tests " "$OUT/test.log"
if [ $bench -eq 1 ]; then
  # One process per case: a case that runs out of memory cannot leave the next one short.
  for m in ${BENCH_MODELS:-llama qwen}; do for a in ${BENCH_ADAPTERS:-lora loreft}; do for c in ${BENCH_CKPT:-on off}; do
    timeout "${BENCH_CASE_TIMEOUT:-120}" tsx bench/train.ts --models $m --adapters $a --ckpt $c "${BENCH_ARGS[@]}" >> "$OUT/bench.log" 2>&1
    echo "bench $m $a ckpt=$c rc=$?" >> "$OUT/bench.log"
  done; done; done
  grep -E "parameters built|tokens/s|failed|rc=|Error" "$OUT/bench.log" | head -60
  grep -E "^\| " "$OUT/bench.log" | grep -v "^| model\|^|---" | sort -u
fi
