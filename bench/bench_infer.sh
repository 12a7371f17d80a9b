#!/usr/bin/env bash
# bench_infer.sh: prompt and decode tokens/s of qtx generate against llama.cpp on the same
# GGUF files, side by side: the small config and a ~100M-parameter config, at f32, q8_0 and
# q4_0, with 1 and 2 threads; and the memory-bandwidth bound of decoding (weight bytes per
# token / BW, BW = 73 GB/s from DESIGN.md unless BW_GBS is set). Weights are a 1-step
# checkpoint (speed does not depend on training). Prints a Markdown table.
#   bench/bench_infer.sh BUILD_DIR LLAMA_BENCH [DECODE_TOKENS]
# LLAMA_BENCH: llama.cpp's llama-bench binary (built from the llama-cpp-python sdist's vendor/
# llama.cpp: cmake -B build -DLLAMA_CURL=OFF && cmake --build build --target llama-bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
lbench=${2:?usage: bench_infer.sh BUILD_DIR LLAMA_BENCH}
nd=${3:-64}
bw=${BW_GBS:-73}
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
echo "| model | weights | threads | qtx prompt tok/s | llama.cpp prompt tok/s | qtx decode tok/s | llama.cpp decode tok/s | decode bound tok/s | qtx / bound |"
echo "|---|---|---|---|---|---|---|---|---|"
for model in small m100; do
  for q in f32 q8_0 q4_0; do
    g="$work/$model-$q.gguf"
    "$build/qtx" export "$work/$model" --quant $q -o "$g" -q >/dev/null 2>&1
    for t in 1 2; do
      "$build/qtx" generate "$g" -p "$prompt" -n "$nd" --temp 0 --threads $t --kv-quant q8 \
        >/dev/null 2>"$work/gen.err"
      ours=$(python3 - "$work/gen.err" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
m = re.search(r"prompt: (\d+) tokens in ([\d.]+) s \(([\d.]+) tokens/s\); decode: (\d+) tokens in ([\d.]+) s \(([\d.]+) tokens/s\)", t)
print(m.group(3), m.group(6), m.group(1))
PY
)
      n_prompt=${ours##* } # llama.cpp gets a prompt of the same length
      ours=${ours% *}
      theirs=$("$lbench" -m "$g" -p "$n_prompt" -n "$nd" -t $t -r 2 -o csv 2>/dev/null | python3 -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
p = [r for r in rows if int(r["n_prompt"]) > 0][0]["avg_ts"]
d = [r for r in rows if int(r["n_gen"]) > 0][0]["avg_ts"]
print(f"{float(p):.1f} {float(d):.1f}")')
      bytes=$(stat -c %s "$g")
      python3 -c "
ours_p, ours_d = map(float, '$ours'.split()); th_p, th_d = map(float, '$theirs'.split())
bound = $bw * 1e9 / $bytes
print(f'| $model | $q | $t | {ours_p:.0f} | {th_p:.0f} | {ours_d:.1f} | {th_d:.1f} | {bound:.0f} | {ours_d / bound:.0%} |')"
    done
  done
done
