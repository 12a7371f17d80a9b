#!/usr/bin/env bash
# demo.sh: the main job on the embedded corpus, end to end:
#   1. install and build (scripts/setup.sh);
#   2. build the corpus and a 4096-token tokenizer, tokenize into HDF5 shards;
#   3. train configs/tiny.yaml on 2 MPI ranks (data parallel, ZeRO-1), checkpointing;
#   4. resume from the mid-run checkpoint on another layout (tensor parallel) and show that
#      the resumed steps match the uninterrupted run;
#   5. export the final checkpoint to a q8_0 GGUF and generate text from it.
# Extra arguments go to both qtx train runs (e.g. --set train.steps=100).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI="mpirun --oversubscribe -np 2"
scripts/setup.sh
scripts/make_tiny_data.sh build/qtx
rm -rf runs/tiny runs/tiny_resumed
$MPI build/qtx train configs/tiny.yaml --set data.micro_batch=4 --set parallel.zero=1 \
  --set train.ckpt_every=150 "$@"
$MPI build/qtx train configs/tiny.yaml --set data.micro_batch=4 --set parallel.tp=2 \
  --set train.out_dir=runs/tiny_resumed \
  --resume=runs/tiny/ckpt/step_00000150 "$@"
python3 - runs/tiny/metrics.jsonl runs/tiny_resumed/metrics.jsonl <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in rows if "loss" in r]
val = [r for r in rows if "val_loss" in r]
print(f"train loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}; "
      f"val loss {val[0]['val_loss']:.3f} (step {val[0]['step']}) -> {val[-1]['val_loss']:.3f} (step {val[-1]['step']})")
a = {r["step"]: r["loss"] for r in steps}
b = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[2])) if "loss" in r}
worst = max(abs(a[s] - b[s]) / a[s] for s in b)
print(f"resumed on tp2 from step {min(b) - 1}: steps {min(b)}-{max(b)} within {worst:.1e} of the dp2 run")
PY
build/qtx export runs/tiny --quant q8_0 -o runs/tiny/tiny-q8_0.gguf --force
echo "--- qtx generate runs/tiny/tiny-q8_0.gguf -p 'And God said' -n 60 --temp 0.7 --seed 1"
build/qtx generate runs/tiny/tiny-q8_0.gguf -p "And God said" -n 60 --temp 0.7 --seed 1
