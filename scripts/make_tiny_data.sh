#!/usr/bin/env bash
# make_tiny_data.sh: the data configs/tiny.yaml trains on: builds the embedded corpus
# (scripts/make_corpus.sh -> data/corpus/), trains a 4096-token byte-level BPE tokenizer into
# data/tiny/tokenizer.json and tokenizes the corpus into data/tiny/train_*.h5, data/tiny/val_*.h5
# and data/tiny/index.json (5% of the chapters for validation, seed 1234). Idempotent.
# Usage: scripts/make_tiny_data.sh QTX   (the qtx binary, e.g. build/qtx)
set -euo pipefail
if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 QTX   (path of the qtx binary, e.g. build/qtx)" >&2
  exit 2
fi
QTX=$(realpath "$1")
cd "$(dirname "$0")/.."

ls data/corpus/kjv_*.txt >/dev/null 2>&1 || bash scripts/make_corpus.sh data/corpus
mkdir -p data/tiny
"$QTX" tokenizer train --vocab-size 4096 --doc-sep '<|doc|>' -o data/tiny/tokenizer.json \
  data/corpus/kjv_*.txt
"$QTX" prep --tokenizer data/tiny/tokenizer.json -o data/tiny --force --doc-sep '<|doc|>' \
  --val-fraction 0.05 --seed 1234 data/corpus/kjv_*.txt
