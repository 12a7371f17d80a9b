#!/usr/bin/env bash
# demo.sh: the main job on the embedded corpus: install and build (scripts/setup.sh), build the
# corpus and a 4096-token tokenizer, tokenize into HDF5 shards, train configs/tiny.yaml.
# Multi-rank training, resume, export and generation join this script as they land
# (issues #4-#6); today it trains on one rank.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scripts/setup.sh
scripts/make_tiny_data.sh build/qtx
build/qtx train configs/tiny.yaml "$@"
python3 - runs/tiny/metrics.jsonl <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in rows if "loss" in r]
val = [r for r in rows if "val_loss" in r]
print(f"train loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}; "
      f"val loss {val[0]['val_loss']:.3f} (step {val[0]['step']}) -> {val[-1]['val_loss']:.3f} (step {val[-1]['step']})")
PY
