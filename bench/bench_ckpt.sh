#!/usr/bin/env bash
# bench_ckpt.sh: checkpoint save and load of the small model with its AdamW state (36M
# parameters, 435 MB), on 1 rank against 4 ranks (dp2 x pp2, ZeRO-1), next to what the disk
# itself does for a file of the same size (dd with fsync, and a cold-cache read where the
# kernel lets us drop caches). Prints a Markdown table for docs/BENCHMARKS.md.
#   bench/bench_ckpt.sh BUILD_DIR [WORK_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$root"
work=$(mktemp -d "${2:-/tmp}/qtx-bench-ckpt.XXXXXX")
trap 'rm -rf "$work"' EXIT
common=(--set data.train='data/tiny/train_*.h5' --set data.val= --set train.eval_every=0
  --set train.steps=1 --set optim.warmup_steps=1 --set train.ckpt_every=0 --set data.micro_batch=1)
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

measure() { # name ranks sets...
  local name=$1 np=$2
  shift 2
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  mpirun --oversubscribe --bind-to none -np "$np" "$build/qtx" train configs/small.yaml "${common[@]}" \
    --set train.out_dir="$work/$name" "${sets[@]}" >"$work/$name.save.log" 2>&1
  drop
  mpirun --oversubscribe --bind-to none -np "$np" "$build/qtx" train configs/small.yaml "${common[@]}" \
    --set train.out_dir="$work/${name}_load" --resume="$work/$name/ckpt/step_00000001" "${sets[@]}" \
    >"$work/$name.load.log" 2>&1
  python3 - "$work/$name.save.log" "$work/$name.load.log" "$name" "$np" <<'PY'
import re, sys
save = re.search(r"checkpoint \S+: ([\d.]+) MB in ([\d.]+) s", open(sys.argv[1]).read())
load = re.search(r"checkpoint loaded: ([\d.]+) MB read by \d+ ranks in ([\d.]+) s", open(sys.argv[2]).read())
mb, s = float(save.group(1)), float(save.group(2))
lmb, ls = float(load.group(1)), float(load.group(2))
np = int(sys.argv[4])
print(f"| {sys.argv[3]} | {np} | {mb:.0f} MB | {s:.2f} s ({mb / 1e3 / s:.2f} GB/s) | "
      f"{ls:.2f} s ({lmb / 1e3 / ls:.2f} GB/s) |")
PY
}

echo "| layout | ranks | checkpoint | save | load |"
echo "|---|---|---|---|---|"
measure one_rank 1
measure dp2_pp2_zero1 4 parallel.dp=2 parallel.pp=2 parallel.zero=1
dd if=/dev/zero of="$work/dd" bs=1M count=435 conv=fsync 2>"$work/dd.log"
w=$(grep -o '[0-9.]* [GM]B/s' "$work/dd.log")
drop
r=$(dd if="$work/dd" of=/dev/null bs=1M 2>&1 | grep -o '[0-9.]* [GM]B/s')
echo "| disk (dd, 435 MB) | - | - | write + fsync $w | read $r |"
