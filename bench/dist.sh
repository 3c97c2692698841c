#!/usr/bin/env bash
# Issue 11 on a 2-GPU machine (device tool, kind nvidia-h200-x2; carry [".device", "src/backend/tfjs_gradients.js"]):
#   source .device/env.sh && bash bench/dist.sh
# 1. builds the addon (NCCL must be found: the build log says which), runs test/gpu/nccl.test.ts;
# 2. parity: `train --gpus 2` vs one GPU on the tiny Llama fixture, fp32, every strategy — the
#    10 losses must agree within 1e-5 and the exported adapters match;
# 3. throughput: Llama-3.2-1B LoRA, 8×1024 tokens per GPU, ddp on 1 and 2 GPUs (goal ≥ 1.8×);
# 4. memory: Llama-3.1-8B shape, zero3 with activation checkpointing on 1 and 2 GPUs (bf16 weights:
#    tokens/s and memory; NF4: memory of the frozen weights only — QLinear has no cuda kernel yet).
# Logs under $OUT; the rows for bench/README.md at the end.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
cmake -S kernels -B build/kernels -DCMAKE_BUILD_TYPE=Release > "$OUT/build.log" 2>&1 && cmake --build build/kernels -j32 >> "$OUT/build.log" 2>&1
rc=$?; grep -E "NCCL" "$OUT/build.log"; echo "build rc=$rc"
[ $rc -ne 0 ] && { grep -E "error" -A3 "$OUT/build.log" | head -40; exit $rc; }

timeout 600 npx vitest run --config vitest.gpu.config.ts test/gpu/nccl.test.ts > "$OUT/nccl-test.log" 2>&1
echo "nccl.test rc=$?"; grep -E "×|→|Tests " "$OUT/nccl-test.log"

# 2. parity on the fixture
dir=$(mktemp -d)
cat > "$dir/r.yaml" <<YAML
model: { path: $PWD/test/fixtures/tiny-llama, backend: cuda }
adapter: { type: lora, r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: [q_proj, v_proj, down_proj] }
data: { path: $PWD/datasets/alice_qa.jsonl, format: prompt_completion, max_length: 32 }
training: { max_steps: 10, batch_size: 1, gradient_accumulation_steps: 6, learning_rate: 0.01, max_grad_norm: 1.0, seed: 7 }
logging: { tensorboard: false }
output: { export: [peft] }
YAML
losses() { grep '"event":"step"' "$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.stringify(s.trim().split("\n").map(l=>JSON.parse(l).loss))))'; }
npx tsx src/cli/train.ts --recipe "$dir/r.yaml" --set output.dir=$dir/one --json > "$dir/one.jsonl" 2> "$dir/one.err"; echo "1 GPU rc=$?"
for s in ddp zero1 zero2 zero3; do
  npx tsx src/cli/train.ts --recipe "$dir/r.yaml" --gpus 2 --set output.dir=$dir/$s --set distributed.strategy=$s --json > "$dir/$s.jsonl" 2> "$dir/$s.err"
  echo "2 GPUs $s rc=$?"; grep -E "error|peak memory" "$dir/$s.err"
  node -e '
    const [a, b] = process.argv.slice(1).map(JSON.parse);
    const d = Math.max(...a.map((x, i) => Math.abs(x - b[i])));
    console.log(`  max |loss 1 GPU − 2 GPUs| over ${a.length} steps: ${d.toExponential(2)} ${d < 1e-5 && a.length === b.length ? "OK" : "MISMATCH"}`);
  ' "$(losses $dir/one.jsonl)" "$(losses $dir/$s.jsonl)"
done
cp -r "$dir" "$OUT/parity"

# 3 and 4. benchmarks (one process per case and GPU)
run() { timeout "${BENCH_CASE_TIMEOUT:-900}" npx tsx bench/dist.ts "$@" >> "$OUT/bench.log" 2>&1; echo "bench $* rc=$?" >> "$OUT/bench.log"; }
run --gpus 1 --model llama --strategy ddp
run --gpus 2 --model llama --strategy ddp --master-port 29512
run --gpus 1 --model llama8b --strategy zero3 --ckpt on --steps 2 --warmup 1
run --gpus 2 --model llama8b --strategy zero3 --ckpt on --steps 2 --warmup 1 --master-port 29513
run --gpus 2 --model llama8b --strategy zero3 --ckpt on --memory-only --nf4 --master-port 29514
grep -E "^rank|^\[rank|rc=" "$OUT/bench.log"
echo; echo "| model | GPUs | strategy | checkpointing | throughput | peak GiB (rank 0) | frozen layer weights kept / whole GiB |"
echo "|---|---|---|---|---|---|---|"
grep -E "^\| " "$OUT/bench.log"
