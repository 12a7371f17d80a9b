#!/usr/bin/env bash
# bench_tokenizer.sh: tokenizer throughput, qtx against Hugging Face tokenizers on the same file,
# tokenizer.json and thread count.
#   encode: qtx tokenizer encode --threads T FILE (the whole command: reading the file, loading
#           the tokenizer and printing the ids are included) versus tokenizers' encode_batch over
#           ~64 KB pieces of FILE with RAYON_NUM_THREADS=T (only the call is timed), and for T=1
#           also tokenizers' encode of FILE as one string;
#   train:  qtx tokenizer train --vocab-size 8000 versus tokenizers' BpeTrainer (same size,
#           byte-level alphabet, <|endoftext|>).
# Usage: bench/bench_tokenizer.sh QTX [FILE] [THREADS...]
#   FILE defaults to the embedded corpus (data/corpus, built when missing) repeated 5 times
#   (about 21 MB); THREADS default to 1 and the number of cores.
set -euo pipefail
QTX=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/qtx-bench-tok.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ $# -ge 2 ] && [ -n "$2" ]; then
  FILE=$(realpath "$2")
else
  ls "$ROOT"/data/corpus/kjv_*.txt >/dev/null 2>&1 || bash "$ROOT/scripts/make_corpus.sh"
  for _ in 1 2 3 4 5; do cat "$ROOT"/data/corpus/kjv_*.txt; done > "$work/corpus.txt"
  FILE=$work/corpus.txt
fi
shift $(($# >= 2 ? 2 : 1))
THREADS=("$@")
[ ${#THREADS[@]} -gt 0 ] || THREADS=(1 "$(nproc)")
BYTES=$(wc -c < "$FILE")
MB=$(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1e6 }')
have_hf=1
"$PY" -c "import tokenizers" 2>/dev/null || have_hf=0
echo "file: $FILE ($MB MB); threads: ${THREADS[*]}; $(nproc) cores; tokenizers:" \
     "$([ $have_hf = 1 ] && "$PY" -c 'import tokenizers; print(tokenizers.__version__)' || echo missing)"

now() { date +%s.%N; }
rate() { awk -v b="$BYTES" -v t="$1" 'BEGIN { printf "%.1f", b / 1e6 / t }'; }

# ---- training
for t in "${THREADS[@]}"; do
  t0=$(now)
  "$QTX" tokenizer train --vocab-size 8000 --threads "$t" -o "$work/tok.json" "$FILE" 2> "$work/train.log"
  t1=$(now)
  dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
  echo "train  qtx        threads=$t: $(printf '%.2f' "$dt") s  $(rate "$dt") MB/s (vocab 8000)"
  if [ $have_hf = 1 ]; then
    RAYON_NUM_THREADS=$t "$PY" - "$FILE" "$BYTES" "$t" <<'EOF'
import sys, time
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
pieces, i = [], 0
while i < len(text):
    j = text.find("\n", i + 65536)
    j = len(text) if j < 0 else j + 1
    pieces.append(text[i:j]); i = j
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tr = trainers.BpeTrainer(vocab_size=8000, special_tokens=["<|endoftext|>"], show_progress=False,
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
t0 = time.time()
tok.train_from_iterator(pieces, tr)
dt = time.time() - t0
print(f"train  tokenizers threads={sys.argv[3]}: {dt:.2f} s  {int(sys.argv[2]) / 1e6 / dt:.1f} MB/s (vocab 8000)")
EOF
  fi
done

# ---- encoding (with the tokenizer qtx trained; the same file for both)
for t in "${THREADS[@]}"; do
  best=
  for _ in 1 2 3; do
    t0=$(now)
    "$QTX" tokenizer encode --tokenizer "$work/tok.json" --threads "$t" "$FILE" > "$work/ids.txt"
    t1=$(now)
    dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    best=$(awk -v a="${best:-1e9}" -v b="$dt" 'BEGIN { print (b < a) ? b : a }')
  done
  qtx_rate=$(rate "$best")
  echo "encode qtx        threads=$t: $(printf '%.2f' "$best") s  $qtx_rate MB/s ($(wc -w < "$work/ids.txt") ids; best of 3, whole command)"
  if [ $have_hf = 1 ]; then
    RAYON_NUM_THREADS=$t TOKENIZERS_PARALLELISM=true "$PY" - "$work/tok.json" "$FILE" "$BYTES" "$t" "$qtx_rate" <<'EOF'
import sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
text = open(sys.argv[2], encoding="utf-8", errors="replace").read()
nbytes, t, qtx_rate = int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
pieces, i = [], 0
while i < len(text):
    j = text.find("\n", i + 65536)
    j = len(text) if j < 0 else j + 1
    pieces.append(text[i:j]); i = j
best = min(__import__("timeit").repeat(lambda: tok.encode_batch(pieces), number=1, repeat=2))
hf = nbytes / 1e6 / best
print(f"encode tokenizers threads={t}: {best:.2f} s  {hf:.1f} MB/s (encode_batch, {len(pieces)} pieces)"
      f"  -> qtx/tokenizers = {qtx_rate / hf:.1f}x")
if t == "1":
    t0 = time.time(); tok.encode(text); dt = time.time() - t0
    print(f"encode tokenizers threads=1: {dt:.2f} s  {nbytes / 1e6 / dt:.1f} MB/s (encode, one string)"
          f"  -> qtx/tokenizers = {qtx_rate / (nbytes / 1e6 / dt):.1f}x")
EOF
  fi
done
