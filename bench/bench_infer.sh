#!/usr/bin/env bash
# bench_infer.sh: prompt and decode tokens/s of qtx generate against llama.cpp on the same
# GGUF files, side by side in one run: the small config and a ~100M-parameter config, at f32,
# q8_0 and q4_0, with 1 and 2 threads; and the memory-bandwidth bound of decoding, weight
# bytes read per token over the read bandwidth bench_membw measures in the same run over a
# buffer the weights' size (what streaming those bytes can reach, caches included: a CPU
# whose last-level cache holds them reads faster than DRAM), beside DRAM's (512 MiB) and
# DESIGN.md's 73 GB/s. Weights are a 1-step checkpoint (speed does not depend on training).
# The machine is shared and noisy: every figure is the median of ROUNDS rounds; within a round
# qtx and llama.cpp run back to back, and the bandwidth is measured again (same thread count)
# right before the decodes, so the ratios (qtx / llama.cpp, qtx / bound) are the figures to
# trust.
#   bench/bench_infer.sh BUILD_DIR LLAMA_BENCH [DECODE_TOKENS [ROUNDS]]
# LLAMA_BENCH: llama.cpp's llama-bench binary (built from the llama-cpp-python sdist's vendor/
# llama.cpp: cmake -B build -DLLAMA_CURL=OFF && cmake --build build --target llama-bench; on a
# CPU that reports AMX but whose VM faults on it, add -DGGML_NATIVE=OFF and the AVX/AVX2/FMA/
# F16C/BMI2/AVX512/AVX512_VBMI/AVX512_VNNI/AVX512_BF16/AVX_VNNI options, docs/BENCHMARKS.md).
# Prompt: the same ~340 tokens for both (llama-bench -p N; qtx generate -n 1 on a prompt of N
# tokens). Decode: from an almost empty context in both (llama-bench -n; qtx after a 2-token
# prompt). KV cache: llama.cpp f16, qtx q8.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
lbench=${2:?usage: bench_infer.sh BUILD_DIR LLAMA_BENCH [DECODE_TOKENS [ROUNDS]]}
nd=${3:-64}
rounds=${4:-3}
cd "$root"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--set data.train='data/tiny/train_*.h5' --set data.val= --set train.eval_every=0
  --set train.steps=1 --set optim.warmup_steps=1 --set data.seq_len=64 --set data.global_batch=1
  --set data.micro_batch=1 --set train.peak_flops=1e11)
"$build/qtx" train configs/small.yaml "${common[@]}" --set train.out_dir="$work/small" >/dev/null 2>&1
"$build/qtx" train configs/small.yaml "${common[@]}" --set train.out_dir="$work/m100" \
  --set model.dim=768 --set model.n_layers=12 --set model.n_heads=12 --set model.n_kv_heads=12 \
  --set model.ffn_dim=2048 >/dev/null 2>&1
prompt=$(head -c 700 README.md | tr -s '[:space:]' ' ') # a few hundred tokens

echo "| model | weights | threads | prompt tok/s qtx | llama.cpp | qtx / llama.cpp | decode tok/s qtx | llama.cpp | qtx / llama.cpp | read GB/s, 512 MiB | read GB/s, the weights' size | decode bound tok/s | qtx / bound | bound at 73 GB/s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

# Bytes a decode step reads: every tensor but the embedding table, which is read whole only
# when it is also the output head (tied).
weight_bytes() {
  python3 - "$1" <<'PY'
import sys
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
names = {t.name for t in r.tensors}
tied = "output.weight" not in names
print(sum(int(t.n_bytes) for t in r.tensors if tied or t.name != "token_embd.weight"))
PY
}

median() { python3 -c 'import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))' "$@"; }

for model in small m100; do
  for q in f32 q8_0 q4_0; do
    g="$work/$model-$q.gguf"
    "$build/qtx" export "$work/$model" --quant $q -o "$g" -q >/dev/null 2>&1
    wb=$(weight_bytes "$g")
    for t in 1 2; do
      qp=() qd=() lp=() ld=() bws=() bwds=() fr=()
      for ((r = 0; r < rounds; r++)); do
        "$build/qtx" generate "$g" -p "$prompt" -n 1 --temp 0 --threads $t --kv-quant q8 \
          >/dev/null 2>"$work/p.err"
        n_prompt=$(sed -n 's/.*prompt: \([0-9]*\) tokens.*/\1/p' "$work/p.err")
        qp+=("$(sed -n 's/.*prompt: [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tokens\/s).*/\1/p' "$work/p.err")")
        bwd=$("$build/bench/bench_membw" 512 3 "$t" | awk -v t="$t" '$1 == t {print $2}')
        bw=$("$build/bench/bench_membw" "$(((wb + 1048575) / 1048576))" 5 "$t" |
          awk -v t="$t" '$1 == t {print $2}')
        bws+=("$bw")
        bwds+=("$bwd")
        "$build/qtx" generate "$g" -p "Hello world" -n "$nd" --temp 0 --threads $t --kv-quant q8 \
          >/dev/null 2>"$work/d.err"
        d=$(sed -n 's/.*decode: [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tokens\/s).*/\1/p' "$work/d.err")
        qd+=("$d")
        fr+=("$(python3 -c "print($d / ($bw * 1e9 / $wb))")")
        read -r a b < <("$lbench" -m "$g" -p "$n_prompt" -n "$nd" -t $t -r 1 -o csv 2>/dev/null |
          python3 -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
p = [r for r in rows if int(r["n_prompt"]) > 0][0]["avg_ts"]
d = [r for r in rows if int(r["n_gen"]) > 0][0]["avg_ts"]
print(p, d)')
        lp+=("$a")
        ld+=("$b")
      done
      python3 - "$(median "${qp[@]}")" "$(median "${lp[@]}")" "$(median "${qd[@]}")" \
        "$(median "${ld[@]}")" "$wb" "$(median "${bws[@]}")" "$(median "${fr[@]}")" \
        "$(median "${bwds[@]}")" <<PY
import sys
qp, lp, qd, ld, wb, bw, fr, bwd = map(float, sys.argv[1:])
bound, bound73 = bw * 1e9 / wb, 73e9 / wb
print(f"| $model | $q | $t | {qp:.0f} | {lp:.0f} | {qp / lp:.2f} | {qd:.1f} | {ld:.1f} | "
      f"{qd / ld:.2f} | {bwd:.1f} | {bw:.1f} | {bound:.0f} | {fr:.0%} | {bound73:.0f} |")
PY
    done
  done
done
