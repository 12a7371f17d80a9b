#!/usr/bin/env bash
# test_infer.sh: export and inference end to end on a model trained here. qtx eval of the f32
# GGUF equals the checkpoint's exactly (same weights, same code); q8_0 and q4_0 perplexity
# stay within 1% and 5% of f32; quantized KV caches (q8, q4) barely move it, and their
# attention outputs keep cosine >= 0.999 (q8, every head output) and >= 0.99 on average
# (q4) against f32; greedy
# generation is the same from the checkpoint and from the f32 GGUF, streams only text to
# stdout, and a seed repeats a sampled generation; the KV cache's bytes per token are
# printed and exact; bad model files and bad usage get one line and exit 2.
# Usage: test_infer.sh QTX SOURCE_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh" infer "$@"
qtx_dataset 512
# head size 32, so q8/q4 KV caches and q8_0/q4_0 weights apply everywhere
cat > cfg.yaml <<'YAML'
model: {vocab_size: 512, dim: 128, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 256, max_seq_len: 128}
data: {train: data/train_*.h5, seq_len: 64, global_batch: 16, micro_batch: 16}
optim: {lr: 3e-3, min_lr: 3e-4, warmup_steps: 10}
train: {steps: 80, eval_every: 0, out_dir: run, peak_flops: 1e11}
device: {threads: 2}
YAML
"$QTX" train cfg.yaml >train.log 2>&1 && ok "trained" || { fail "train: $(tail -3 train.log)"; exit 1; }
for q in f32 q8_0 q4_0; do
  "$QTX" export run --quant $q -o m_$q.gguf >exp_$q.log 2>&1 || fail "export $q: $(cat exp_$q.log)"
done

# ---- perplexity ---------------------------------------------------------------------------
ev() { "$QTX" eval "$1" --data data --windows 24 --ctx 64 "${@:2}" 2>"ev.err" | sed -n 's/^loss \([0-9.]*\) perplexity \([0-9.]*\) .*/\2/p'; }
p_ckpt=$(ev run)
p_f32=$(ev m_f32.gguf)
p_q8=$(ev m_q8_0.gguf)
p_q4=$(ev m_q4_0.gguf)
p_kv8=$(ev m_f32.gguf --kv-quant q8)
p_kv4=$(ev m_f32.gguf --kv-quant q4)
echo "perplexity: checkpoint $p_ckpt, f32 $p_f32, q8_0 $p_q8, q4_0 $p_q4, f32 with q8 KV $p_kv8, q4 KV $p_kv4"
[ -n "$p_f32" ] && [ "$p_f32" = "$p_ckpt" ] && ok "f32 GGUF perplexity equals the checkpoint's ($p_f32)" ||
  fail "f32 $p_f32 vs checkpoint $p_ckpt"
within() { "$PY" -c "import sys; a, b, t = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) / b <= t else 1)" "$1" "$2" "$3"; }
within "$p_q8" "$p_f32" 0.01 && ok "q8_0 within 1% of f32" || fail "q8_0 $p_q8 vs $p_f32"
within "$p_q4" "$p_f32" 0.05 && ok "q4_0 within 5% of f32" || fail "q4_0 $p_q4 vs $p_f32"
within "$p_kv8" "$p_f32" 0.005 && ok "q8 KV cache within 0.5% of f32" || fail "q8 KV $p_kv8"
within "$p_kv4" "$p_f32" 0.03 && ok "q4 KV cache within 3% of f32" || fail "q4 KV $p_kv4"

# Attention outputs with quantized KV against an f32 twin, on this trained model's activations,
# every head output: q8 keys and values >= 0.999; q4 keys (f32 or q8 values) >= 0.99; q4 keys
# and values >= 0.985, 0.997 on average (measured 0.9999, 0.9928, 0.9930, 0.9882 / 0.9975;
# q4 keys were 0.971 before keys were rotated and fit, 0.978 also without the key offset).
for kv in q8:0.999:0.999 q4,f32:0.99:0.999 q4,q8:0.99:0.999 q4:0.985:0.997; do
  IFS=: read -r t want_min want_mean <<<"$kv"
  "$QTX" eval m_f32.gguf --data data --windows 8 --ctx 64 --kv-quant "$t" --kv-compare \
    >/dev/null 2>cmp.err
  c=$(sed -n 's/.*cosine min \([0-9.]*\) mean \([0-9.]*\).*/\1 \2/p' cmp.err)
  "$PY" -c "import sys; a, b, x, y = map(float, sys.argv[1:]); sys.exit(0 if a >= x and b >= y else 1)" \
    ${c:-0 0} "$want_min" "$want_mean" &&
    ok "$t KV: attention cosine vs f32 min/mean $c (>= $want_min / $want_mean)" || fail "$t KV cosine: $(cat cmp.err)"
done

# ---- generation -------------------------------------------------------------------------------
"$QTX" generate run -p "And God said" -n 24 --temp 0 --kv-quant f32 >g_ckpt.out 2>g_ckpt.err
"$QTX" generate m_f32.gguf -p "And God said" -n 24 --temp 0 --kv-quant f32 >g_f32.out 2>g_f32.err
[ -s g_f32.out ] && cmp -s g_ckpt.out g_f32.out && ok "greedy: checkpoint and f32 GGUF agree: $(head -c 60 g_f32.out)" ||
  fail "greedy differs: $(cat g_ckpt.out) | $(cat g_f32.out)"
! grep -q 'qtx' g_f32.out && grep -q 'decode: [0-9]* tokens in .* tokens/s' g_f32.err &&
  ok "stdout holds only the text; speeds on stderr" || fail "streams: $(cat g_f32.err)"
"$QTX" generate m_f32.gguf -p "And God said unto Moses" -n 24 --temp 0 >g_copy.out 2>/dev/null
"$QTX" generate m_f32.gguf -p "And God said unto Moses" -n 24 --temp 0 --mmap >g_mmap.out 2>/dev/null
[ -s g_copy.out ] && cmp -s g_copy.out g_mmap.out && [ "$(ev m_f32.gguf --mmap)" = "$p_f32" ] &&
  ok "--mmap (weights mapped, not copied to huge pages) generates and evaluates the same" ||
  fail "--mmap: $(cat g_copy.out) | $(cat g_mmap.out)"
# q4_0 and q8_0 weights are repacked (q4_0r, q8_0r) in the private copy where the CPU has the
# kernels (core/quant.h), and kept as mapped with --mmap: the same perplexity up to float
# rounding.
for q in q4_0 q8_0; do
  p_map=$(ev m_$q.gguf --mmap)
  p_copy=$([ $q = q4_0 ] && echo "$p_q4" || echo "$p_q8")
  "$QTX" generate m_$q.gguf -p "And" -n 2 2>rp.err >/dev/null
  "$QTX" generate m_$q.gguf -p "And" -n 2 --mmap 2>rp_map.err >/dev/null
  if [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo &&
    grep -qw f16c /proc/cpuinfo; then
    grep -q "$q weights repacked for avx" rp.err && ! grep -q repacked rp_map.err &&
      ok "$q repacked in the copy, not in the mapping: $(grep -o "$q weights repacked.*" rp.err)" ||
      fail "repack $q: $(cat rp.err) | $(cat rp_map.err)"
  else
    ! grep -q repacked rp.err && ok "no repacking kernels on this CPU: $q kept as it is" ||
      fail "repack without kernels: $(cat rp.err)"
  fi
  python3 -c "import sys; a, b = map(float, sys.argv[1:]); sys.exit(abs(a - b) > 1e-4 * b)" \
    "$p_copy" "$p_map" && ok "$q perplexity copied $p_copy, mapped $p_map (within 1e-4)" ||
    fail "$q copied $p_copy vs mapped $p_map"
done
"$QTX" generate m_q8_0.gguf -p "In the beginning" -n 24 --seed 7 >s1.out 2>/dev/null
"$QTX" generate m_q8_0.gguf -p "In the beginning" -n 24 --seed 7 >s2.out 2>/dev/null
"$QTX" generate m_q8_0.gguf -p "In the beginning" -n 24 --seed 8 >s3.out 2>/dev/null
cmp -s s1.out s2.out && ! cmp -s s1.out s3.out && ok "a seed repeats a sampled generation" ||
  fail "seeds: $(cat s1.out) | $(cat s2.out) | $(cat s3.out)"
# KV bytes per token: 2 (K, V) x layers 2 x kv heads 2 x head 32 values
for kv in f32:1.0 q8:0.3 q4:0.1 q4,q8:0.2; do
  "$QTX" generate m_q4_0.gguf -p "And" -n 2 --kv-quant "${kv%%:*}" >/dev/null 2>kv.err
  grep -q "KV cache: 128 tokens, ${kv##*:} KiB per token" kv.err && ok "KV ${kv%%:*}: $(grep -o 'KV cache: .*' kv.err)" ||
    fail "KV ${kv%%:*}: $(grep KV kv.err)"
done

# ---- bad input ---------------------------------------------------------------------------------
bad() { # bad EXPECT CMD...
  local want=$1
  shift
  "$@" >bad.out 2>bad.err
  local rc=$?
  if [ $rc = 2 ] && [ "$(wc -l <bad.err)" = 1 ] && grep -q '^qtx: error: ' bad.err &&
    grep -qF -- "$want" bad.err; then ok "refused: $(cat bad.err)"; else
    fail "$*: rc $rc: $(cat bad.err)"; fi
}
head -c 1000 m_q8_0.gguf >trunc.gguf
bad "the file is corrupt or incomplete: export or copy it again" "$QTX" generate trunc.gguf -p x
printf 'PK\003\004 not a model at all, just bytes' >zip.gguf
bad "zip.gguf: not a GGUF file" "$QTX" generate zip.gguf -p x
bad "missing --prompt" "$QTX" generate m_q8_0.gguf
bad "--kv-quant 'q5': expected f32, q8 or q4, or K,V (q4,q8)" "$QTX" generate m_q8_0.gguf -p x --kv-quant q5
bad "--kv-quant 'q4,': expected f32, q8 or q4, or K,V (q4,q8)" "$QTX" eval m_q8_0.gguf --data data --kv-quant q4,
bad "-n 200 exceed the context of 128 tokens; lower -n or raise --ctx" "$QTX" generate m_q8_0.gguf -p "And God said" -n 200
bad "nothing.gguf: no such file or directory" "$QTX" eval nothing.gguf --data data
bad "--device 'gpu': expected cpu, cuda or cuda:N" "$QTX" generate m_q8_0.gguf -p x --device gpu
bad "--device 'cuda:x': expected cpu, cuda or cuda:N" "$QTX" generate m_q8_0.gguf -p x --device cuda:x
# Where no GPU is visible (or CUDA was not built), --device cuda is refused in one line.
if ! nvidia-smi -L >/dev/null 2>&1; then
  "$QTX" generate m_q8_0.gguf -p x -n 2 --device cuda >bad.out 2>bad.err
  rc=$?
  if [ $rc = 2 ] && [ "$(wc -l <bad.err)" = 1 ] &&
    grep -qE '^qtx: error: --device cuda: (no GPU \(.+\); use --device cpu|this qtx was built without CUDA \(QTX_CUDA=OFF\); use --device cpu)$' bad.err; then
    ok "refused: $(cat bad.err)"
  else
    fail "--device cuda without a GPU: rc $rc: $(cat bad.err)"
  fi
fi

qtx_done
