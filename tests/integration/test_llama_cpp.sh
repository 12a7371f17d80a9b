#!/usr/bin/env bash
# test_llama_cpp.sh (opt-in): our GGUF export works in llama.cpp itself. Token ids of ~150
# texts (KJV lines, Unicode, emoji, digits, whitespace, a special token) from llama.cpp's
# tokenizer equal ours, and llama.cpp's greedy continuations of an f32 export equal
# `qtx generate --temp 0`. Needs llama.cpp's llama-tokenize and llama-simple: set
# LLAMA_CPP_BIN to their directory (built from the llama-cpp-python sdist's vendor/llama.cpp:
#   cmake -B build -DLLAMA_CURL=OFF && cmake --build build --target llama-tokenize llama-simple);
# without it the test exits 77 (skipped): building llama.cpp takes longer than CI allows.
# Usage: test_llama_cpp.sh QTX SOURCE_ROOT
set -uo pipefail
L=${LLAMA_CPP_BIN:-}
if [ -z "$L" ] || [ ! -x "$L/llama-tokenize" ] || [ ! -x "$L/llama-simple" ]; then
  echo "SKIP: set LLAMA_CPP_BIN to a directory with llama.cpp's llama-tokenize and llama-simple"
  exit 77
fi
source "$(dirname "$0")/lib.sh" llama "$@"
qtx_dataset 1024
cat > cfg.yaml <<'YAML'
model: {vocab_size: 1024, dim: 128, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 256, max_seq_len: 128}
data: {train: data/train_*.h5, seq_len: 64, global_batch: 16, micro_batch: 16}
optim: {lr: 3e-3, min_lr: 3e-4, warmup_steps: 10}
train: {steps: 100, eval_every: 0, out_dir: run, peak_flops: 1e11}
YAML
"$QTX" train cfg.yaml >train.log 2>&1 || { fail "train"; exit 1; }
"$QTX" export run --quant f32 -o m.gguf -q >/dev/null 2>&1 || { fail "export"; exit 1; }

(head -c 30000 corpus/kjv_01_genesis.txt | head -150
  printf 'Hello, world! 123 4567  spaces\t tab\n\xc3\x9cn\xc3\xafc\xc3\xb6d\xc3\xa9 \xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88 \xf0\x9f\x98\x80 emoji\n<|endoftext|> special\n') >texts.txt
n=0
same=0
while IFS= read -r line; do
  [ -z "$line" ] && continue
  a=$(printf '%s' "$line" | "$QTX" tokenizer encode --tokenizer tok.json 2>/dev/null | tr -s ' ' ',')
  b=$("$L/llama-tokenize" -m m.gguf -p "$line" --ids --log-disable 2>/dev/null | tail -1 | tr -d '[] ')
  n=$((n + 1))
  [ "$a" = "$b" ] && same=$((same + 1)) || echo "differs: $line | $a | $b"
done <texts.txt
[ $same = $n ] && ok "$same/$n texts: llama.cpp's token ids equal ours" || fail "$same/$n texts tokenize alike"

for p in "And God said" "In the beginning" "The LORD is my shepherd" "And it came to pass"; do
  a=$("$QTX" generate m.gguf -p "$p" -n 32 --temp 0 --kv-quant f32 2>/dev/null)
  b=$("$L/llama-simple" -m m.gguf -n 32 "$p" 2>/dev/null)
  # llama-simple prints the prompt too, and no trailing newline
  [ "$p$a" = "$b" ] || [ "$p$a" = "$b"$'\n' ] || [ "$p${a%$'\n'}" = "${b%$'\n'}" ] &&
    ok "greedy continuation of '$p' equals llama.cpp's" || fail "'$p': qtx '$a' llama.cpp '$b'"
done
qtx_done
