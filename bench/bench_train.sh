#!/usr/bin/env bash
# bench_train.sh: qtx train tokens/s against the PyTorch reference model (bench/torch_train.py)
# on the same shapes and thread count, side by side in one run, for the tiny and small
# configs of issue #2. Prints a Markdown table for docs/BENCHMARKS.md.
#   bench/bench_train.sh BUILD_DIR [THREADS] [STEPS]
# Needs the tiny dataset (scripts/make_tiny_data.sh) for token shards; vocabularies larger
# than the tokenizer's are fine (ids are a subset).
set -euo pipefail
export OMP_NUM_THREADS=${2:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
threads=${2:-2}
steps=${3:-12}
qtx=$build/qtx
cd "$root" # configs/tiny.yaml names data/tiny/ relative to the source root
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# median tokens/s over the steps after the first two (warmup)
median_tps() {
  python3 - "$1" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
print(f"{statistics.median(r['tokens_per_s'] for r in rows[2:]):.0f}")
PY
}

run_case() { # name dim layers heads kv ffn vocab seq batch
  local name=$1 dim=$2 L=$3 H=$4 KV=$5 F=$6 V=$7 T=$8 B=$9
  "$qtx" train "$root/configs/tiny.yaml" \
    --set model.dim=$dim --set model.n_layers=$L --set model.n_heads=$H --set model.n_kv_heads=$KV \
    --set model.ffn_dim=$F --set model.vocab_size=$V --set model.max_seq_len=$T \
    --set data.seq_len=$T --set data.global_batch=$B --set data.micro_batch=$B \
    --set train.steps=$steps --set optim.warmup_steps=1 --set train.eval_every=0 --set train.out_dir="$work/$name" \
    --set device.threads=$threads >"$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
  local ours
  ours=$(median_tps "$work/$name/metrics.jsonl")
  local theirs
  "$root/bench/torch_env.sh" --dim $dim --n-layers $L --n-heads $H --n-kv-heads $KV \
    --ffn $F --vocab $V --seq $T --batch $B --steps $steps --threads $threads >"$work/$name.torch"
  theirs=$(python3 -c 'import json, sys
print(round(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["tokens_per_s"]))' "$work/$name.torch")
  local flops
  flops=$(python3 -c "
V,C,L,F,H,KV,T=$V,$dim,$L,$F,$H,$KV,$T
hd=C//H; n=L*(2*C+C*C+2*KV*hd*C+C*C+3*C*F)+C+V*C
print(6*n+12*L*T*C)")
  python3 -c "
o,t,f=$ours,$theirs,$flops
print(f'| $name | $threads | {o} | {t} | {o/t:.2f}x | {o*f/1e9:.0f} |')"
}

echo "| config | threads | qtx tokens/s | PyTorch tokens/s | ratio | qtx GFLOP/s |"
echo "|---|---|---|---|---|---|"
run_case tiny 256 4 8 4 768 4096 256 8
run_case small 512 8 8 8 1536 8192 512 4
