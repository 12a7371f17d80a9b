#!/usr/bin/env bash
# gpu_check.sh: the GPU checks of issue #7 in one run, for the device tool's machine (nvcc and
# PyTorch, none of the Debian libraries): builds the GPU tests and the step benchmark with
# nvcc alone (scripts/build_gpu_tests.sh), runs the tests (the kernels, then 50 training steps
# against the CPU with the state crossing both ways), then trains a ~124M and a ~350M
# config at seq 1024 on qtx's CUDA backend (fp32 and bf16 GEMM inputs) and on PyTorch (bf16
# autocast, SDPA flash attention, torch.compile, fused AdamW), side by side, each printing
# tokens/s and MFU against 989 TFLOP/s (H100/H200 SXM dense bf16).
#   scripts/gpu_check.sh [OUT_DIR [STEPS]]      from the repository root; default build-gpu 5
# Exit status: the tests' (0 pass, 1 fail, 77 no GPU); the benchmarks only print.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$src/build-gpu}
steps=${2:-5}
cd "$src"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true
scripts/build_gpu_tests.sh "$out" || exit 1
"$out/test_gpu_kernels"
rc=$?
[ "$rc" = 0 ] || exit "$rc"
"$out/test_gpu_train" # 50 steps CPU vs CUDA fp32 and bf16, and the state crossing both ways
rc=$?
[ "$rc" = 0 ] || exit "$rc"
"$out/test_gpu_infer" # generate --device cuda's forward pass against the CPU's
rc=$?
[ "$rc" = 0 ] || exit "$rc"
# name dim layers heads kv_heads ffn vocab seq batch (untied head)
for cfg in "124M 768 12 12 12 2048 50304 1024 8" "350M 1024 24 16 16 2816 50304 1024 8"; do
  read -r name d l h kv f v t b <<<"$cfg"
  for bf16 in 0 1; do
    echo "qtx $name bf16=$bf16: $(timeout 300 "$out/bench_cuda_step" "$d" "$l" "$h" "$kv" "$f" "$v" \
      "$t" "$b" "$steps" "$bf16" 2>&1 | tail -1)"
  done
  echo "torch $name: $(timeout 600 python3 bench/torch_train.py --device cuda --bf16 --compile \
    --dim "$d" --n-layers "$l" --n-heads "$h" --n-kv-heads "$kv" --ffn "$f" --vocab "$v" \
    --seq "$t" --batch "$b" --steps "$steps" --warmup-steps 3 2>&1 | tail -1)"
done
exit "$rc"
