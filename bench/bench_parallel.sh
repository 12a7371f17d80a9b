#!/usr/bin/env bash
# bench_parallel.sh: training tokens/s of the small model (configs/small.yaml shapes) on one
# rank against dp2, tp2 and pp2, ranks x threads = 2 (this machine's cores), side by side
# in one run, and the share of step time each layout spends waiting on communication (the
# blocked time of every collective and transfer, from out_dir/comm/rank_*.json).
#   bench/bench_parallel.sh BUILD_DIR [STEPS]
# Needs the tiny dataset (scripts/make_tiny_data.sh); the small model's larger vocabulary is
# fine (the ids are a subset). Prints a Markdown table for docs/BENCHMARKS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
steps=${2:-12}
cores=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$root"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--set data.train='data/tiny/train_*.h5' --set data.val= --set train.eval_every=0
  --set train.steps="$steps" --set optim.warmup_steps=1 --set train.ckpt_every=0
  --set train.log_every=1000)

case_run() { # name ranks micro_batch sets...
  local name=$1 np=$2 mb=$3
  shift 3
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  mpirun --oversubscribe --bind-to none -np "$np" "$build/qtx" train configs/small.yaml "${common[@]}" \
    --set data.micro_batch="$mb" --set device.threads=$((cores / np)) \
    --set train.out_dir="$work/$name" "${sets[@]}" >"$work/$name.log" 2>&1 ||
    { cat "$work/$name.log" >&2; exit 1; }
  # the final checkpoint is not part of the measurement: metrics rows are per step
  python3 - "$work/$name" "$name" "$np" <<'PY'
import glob, json, statistics, sys
d, name, np = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(l) for l in open(f"{d}/metrics.jsonl") if '"tokens_per_s"' in l]
tps = statistics.median(r["tokens_per_s"] for r in rows[2:])
wait = step = 0.0
for p in glob.glob(f"{d}/comm/rank_*.json"):
    r = json.load(open(p))
    step += r["step_s"]
    for g in r["groups"].values():
        for op, c in g.items():
            if isinstance(c, dict): wait += c["wait_s"]
print(f"{name}\t{np}\t{tps:.0f}\t{100 * wait / step:.1f}")
PY
}

{
  case_run one_rank 1 4
  case_run dp2 2 2 parallel.dp=2
  case_run tp2 2 4 parallel.tp=2
  case_run pp2 2 1 parallel.pp=2 # 4 micro-batches: 1F1B bubble (2-1)/(4+2-1) = 20%
} >"$work/table.tsv"
echo "| layout | ranks x threads | tokens/s | vs one rank | step time waiting on communication |"
echo "|---|---|---|---|---|"
awk -F'\t' -v c="$cores" 'NR == 1 { base = $3 }
  { printf "| %s | %d x %d | %s | %.2fx | %s%% |\n", $1, $2, c / $2, $3, $3 / base, $4 }' "$work/table.tsv"
