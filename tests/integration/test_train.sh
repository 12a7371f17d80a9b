#!/usr/bin/env bash
# test_train.sh: qtx train end to end on real text (the embedded KJV corpus): two runs of the
# same config give bit-identical losses in metrics.jsonl; the validation loss falls;
# gradient accumulation (micro_batch < global_batch) runs; non-finite steps are skipped and
# optim.max_skips in a row stop the run with its message (weights driven to overflow by
# lr * weight_decay > 1); data from a larger vocabulary than
# the model's, validation shards from another tokenizer and data shorter than a sample are
# refused with exit 2 before out_dir exists; a corrupt chunk is named with exit 2.
# Usage: test_train.sh QTX SOURCE_ROOT
set -uo pipefail
QTX=$(realpath "$1")
SRC=$(realpath "$2")
PY=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/qtx-train.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
export OMP_NUM_THREADS=2

# ---- data: the corpus, a 512-token tokenizer, shards ------------------------------------------
bash "$SRC/scripts/make_corpus.sh" "$work/corpus" >/dev/null 2>&1 || { echo "FAIL: corpus"; exit 1; }
"$QTX" tokenizer train --vocab-size 512 --doc-sep '<|doc|>' -o tok.json corpus/kjv_*.txt 2>/dev/null
"$QTX" prep --tokenizer tok.json -o data --doc-sep '<|doc|>' --val-fraction 0.05 --seed 1 \
  corpus/kjv_*.txt 2>/dev/null
ls data/train_*.h5 data/val_*.h5 >/dev/null 2>&1 && ok "dataset" || { fail "dataset"; exit 1; }

cat > cfg.yaml <<'YAML'
model: {vocab_size: 512, dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 176, max_seq_len: 64}
data: {train: data/train_*.h5, val: data/val_*.h5, seq_len: 64, global_batch: 8, micro_batch: 4}
optim: {lr: 1e-2, min_lr: 1e-3, warmup_steps: 5}
train: {steps: 40, eval_every: 20, eval_batches: 4, out_dir: run1}
device: {threads: 2}
YAML

# ---- determinism: two runs, same bits ---------------------------------------------------------
"$QTX" train cfg.yaml >log1 2>&1 || fail "run 1 exit $?"
"$QTX" train cfg.yaml --set train.out_dir=run2 >log2 2>&1 || fail "run 2 exit $?"
losses() { "$PY" -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(r["step"], r.get("loss", ""), r.get("val_loss", ""))' "$1"; }
losses run1/metrics.jsonl >l1
losses run2/metrics.jsonl >l2
[ "$(grep -c . l1)" = 43 ] && ok "metrics.jsonl has 40 steps and 3 evaluations (0, 20, 40)" || fail "metrics rows: $(wc -l <l1)"
cmp -s l1 l2 && ok "two runs give bit-identical losses" || fail "losses differ run to run: $(diff l1 l2 | head -3)"
"$PY" - run1/metrics.jsonl <<'PY' && ok "validation loss falls" || fail "validation loss did not fall"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
val = [r["val_loss"] for r in rows if "val_loss" in r]
first = next(r["loss"] for r in rows if "loss" in r)
print("first train loss", first, "val", val)
sys.exit(0 if abs(first - math.log(512)) < 0.5 and abs(val[0] - first) < 0.2
         and val[2] < val[1] < val[0] - 1.0 else 1)
PY
grep -q '^step 40/40 | loss' log1 && ok "progress lines" || fail "no progress line: $(tail -2 log1)"
grep -Eq '^qtx: model state on rank 0: [0-9]+ params \(psi\) -> params .* \(16 psi\)' log1 && ok "model-state bytes printed" || fail "model state line: $(grep 'model state' log1)"

# ---- non-finite steps -------------------------------------------------------------------------
"$QTX" train cfg.yaml --set optim.lr=10 --set optim.weight_decay=10 --set optim.warmup_steps=0 --set optim.grad_clip=0 \
  --set optim.max_skips=3 --set train.out_dir=run3 >log3 2>&1
rc=$?
[ $rc = 1 ] && ok "diverged run exits 1" || fail "diverged run exit $rc"
grep -q '^qtx: error: 3 consecutive non-finite steps at step [0-9]*; lower optim.lr or raise optim.warmup_steps$' log3 &&
  ok "max_skips message" || fail "max_skips message: $(tail -1 log3)"
[ "$(grep -c 'update skipped' log3)" = 3 ] && ok "3 skips logged" || fail "skip warnings: $(grep -c 'update skipped' log3)"
"$PY" -c 'import json,sys
rows=[json.loads(l) for l in open("run3/metrics.jsonl") if "val_loss" not in l]
sys.exit(0 if [r["skipped"] for r in rows][-3:] == [1, 1, 1] else 1)' && ok "skips in metrics" || fail "skips in metrics"

# ---- data from a bigger vocabulary than the model's: exit 2, nothing written -------------------
"$QTX" train cfg.yaml --set model.vocab_size=300 --set train.out_dir=run4 >log4 2>&1
rc=$?
[ $rc = 2 ] && ok "vocab mismatch exits 2" || fail "vocab mismatch exit $rc"
grep -q "^qtx: error: .*train_00000.h5.*vocab" log4 && ok "vocab mismatch names the shard" || fail "message: $(cat log4)"
[ ! -e run4 ] && ok "no out_dir on bad data" || fail "run4 was created"

# ---- validation shards from another tokenizer: exit 2, nothing written ------------------------
"$QTX" tokenizer train --vocab-size 400 --doc-sep '<|doc|>' -o tok2.json corpus/kjv_*.txt 2>/dev/null
"$QTX" prep --tokenizer tok2.json -o data2 --doc-sep '<|doc|>' --val-fraction 0.05 --seed 1 \
  corpus/kjv_*.txt 2>/dev/null
"$QTX" train cfg.yaml --set 'data.val=data2/val_*.h5' --set train.out_dir=run5 >log5 2>&1
rc=$?
[ $rc = 2 ] && ok "other tokenizer exits 2" || fail "other tokenizer exit $rc"
grep -Eq "^qtx: error: shard data2/val_00000.h5: tokenizer_hash '[0-9a-f]{64}' differs from the run's '[0-9a-f]{64}': the shard was made with another tokenizer; re-run qtx prep with this one$" log5 &&
  ok "other tokenizer message" || fail "other tokenizer message: $(cat log5)"
[ ! -e run5 ] && ok "no out_dir for another tokenizer" || fail "run5 was created"

# ---- a corrupt shard: the chunk checksum names the file, exit 2, no HDF5 noise ----------------
mkdir bad && cp data/train_00000.h5 bad/
"$PY" -c 'p = "bad/train_00000.h5"; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0xFF; open(p, "wb").write(b)'
"$QTX" train cfg.yaml --set 'data.train=bad/train_*.h5' --set train.out_dir=run6 >log6 2>&1
rc=$?
[ $rc = 2 ] && ok "corrupt shard exits 2" || fail "corrupt shard exit $rc"
grep -Eq '^qtx: error: shard bad/train_00000.h5: chunk checksum mismatch reading tokens \[[0-9]+, [0-9]+\): the file is corrupt; regenerate it with qtx prep$' log6 &&
  ok "corrupt shard message" || fail "corrupt shard message: $(grep error log6)"
! grep -q HDF5 log6 && ok "no HDF5 noise" || fail "HDF5 printed: $(grep HDF5 log6)"

# ---- seq_len longer than the data ------------------------------------------------------------
printf 'Short.\n' >short.txt
"$QTX" prep --tokenizer tok.json -o short --val-fraction 0 short.txt 2>/dev/null
"$QTX" train cfg.yaml --set 'data.train=short/train_*.h5' --set data.val= --set train.eval_every=0 \
  --set train.out_dir=run7 >log7 2>&1
rc=$?
[ $rc = 2 ] && ok "short data exits 2" || fail "short data exit $rc"
grep -q "^qtx: error: data: seq_len 64 is too long for every shard of 'short/train_\*.h5' (a sample needs 65 tokens, the longest shard has 7): lower seq_len or use more data$" log7 &&
  ok "short data message" || fail "short data message: $(cat log7)"
[ ! -e run7 ] && ok "no out_dir for short data" || fail "run7 was created"

echo "$passed passed, $failed failed"
[ $failed = 0 ]
