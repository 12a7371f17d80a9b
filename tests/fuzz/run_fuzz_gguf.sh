#!/usr/bin/env bash
# run_fuzz_gguf.sh: builds tests/fuzz/fuzz_gguf.c (the GGUF reader, infer/gguf_read.c) with
# libFuzzer, ASan and UBSan, makes a seed corpus with the exporter (a tiny model trained for one
# step, exported as f32, f16, q8_0 and q4_0, plus short cuts of each), and fuzzes for SECONDS.
# Not part of CTest (it runs for minutes and needs clang); run it by hand or in a nightly job.
#
# Usage: tests/fuzz/run_fuzz_gguf.sh [SECONDS] [JOBS]     (defaults: 300 s, 1 job)
# Env:   QTX   a built qtx for the seeds (default: build/qtx)
#        WORK  build and corpus directory (default: build-fuzz; the corpus grows across runs)
# Needs: clang with its libFuzzer runtime (Debian/Ubuntu: apt-get install clang), a built qtx,
#        bible-kjv for the training corpus (scripts/setup.sh installs it), python3.
# Exit status: 0 when the time ran out with no finding; libFuzzer's (non-zero) on a crash, with
# the input saved as WORK/crash-* (reproduce: WORK/fuzz_gguf WORK/crash-...).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_TO_RUN=${1:-300}
JOBS=${2:-1}
QTX=$(realpath "${QTX:-$SRC/build/qtx}")
WORK=$(mkdir -p "${WORK:-$SRC/build-fuzz}" && cd "${WORK:-$SRC/build-fuzz}" && pwd)
CC=${CC:-clang}

if ! command -v "$CC" >/dev/null; then
  echo "run_fuzz_gguf.sh: $CC is missing; install it (apt-get install clang)" >&2
  exit 2
fi
# QTX_GGUF_READ_COPY: the reader reads into an exact-size heap buffer instead of mmap, so ASan
# reports any read past the end of the file.
"$CC" -std=c17 -g -O1 -D_GNU_SOURCE -DQTX_GGUF_READ_COPY -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$SRC/core" -I"$SRC/infer" \
  "$SRC/tests/fuzz/fuzz_gguf.c" "$SRC/infer/gguf_read.c" "$SRC/core/check.c" \
  -o "$WORK/fuzz_gguf"

seeds=$WORK/seeds
if [ ! -s "$seeds/tiny_q4_0.gguf" ]; then
  [ -x "$QTX" ] || { echo "run_fuzz_gguf.sh: no qtx at $QTX for the seeds; set QTX" >&2; exit 2; }
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/qtx-fuzz-seed.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (
    cd "$tmp"
    bash "$SRC/scripts/make_corpus.sh" "$tmp/corpus" >/dev/null 2>&1
    # the smallest model: a short vocabulary keeps the seeds a few KB
    "$QTX" tokenizer train --vocab-size 300 --doc-sep '<|doc|>' -o tok.json corpus/kjv_*.txt
    "$QTX" prep --tokenizer tok.json -o data --doc-sep '<|doc|>' -q corpus/kjv_*.txt
    cat >cfg.yaml <<'YAML'
model: {vocab_size: 300, dim: 32, n_layers: 1, n_heads: 2, n_kv_heads: 1, ffn_dim: 48, max_seq_len: 16}
data: {train: data/train_*.h5, seq_len: 16, global_batch: 2, micro_batch: 1}
optim: {warmup_steps: 0}
train: {steps: 1, eval_every: 0, out_dir: run}
device: {threads: 1}
YAML
    "$QTX" train cfg.yaml >train.log 2>&1
  ) >/dev/null 2>&1 || { echo "run_fuzz_gguf.sh: making the seed checkpoint failed" >&2; exit 1; }
  mkdir -p "$seeds"
  for q in f32 f16 q8_0 q4_0; do
    "$QTX" export "$tmp/run" --quant $q -q --force -o "$seeds/tiny_$q.gguf"
  done
  # prefixes: the header and metadata alone reach deeper paths sooner
  python3 - "$seeds" <<'PY'
import os, sys
d = sys.argv[1]
b = open(os.path.join(d, "tiny_q4_0.gguf"), "rb").read()
for n in (24, 64, 512, 2048, len(b) // 2):
    open(os.path.join(d, f"cut_{n}.gguf"), "wb").write(b[:n])
PY
fi
mkdir -p "$WORK/corpus"
echo "fuzzing the GGUF reader for $SECONDS_TO_RUN s ($JOBS job(s)); corpus $WORK/corpus"
cd "$WORK"
parallel=()
[ "$JOBS" -gt 1 ] && parallel=(-jobs="$JOBS" -workers="$JOBS")
exec ./fuzz_gguf -max_total_time="$SECONDS_TO_RUN" "${parallel[@]}" \
  -rss_limit_mb=2048 -timeout=10 -max_len=131072 -print_final_stats=1 \
  -artifact_prefix="$WORK/" corpus "$seeds"
