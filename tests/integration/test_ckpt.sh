#!/usr/bin/env bash
# test_ckpt.sh: sharded checkpoints. Exact resume (bit-identical losses after resuming, on one
# rank and on dp2 x tp2 x pp2 with ZeRO-1); resharding (a checkpoint of one layout loaded by
# five others and re-saved equals the original exactly, parameters and moments, and training
# continues within 1e-5 of the uninterrupted run); crash safety (SIGKILL at 20 random moments
# inside saves never breaks the previous checkpoint or latest, and resume always works);
# corruption of each kind of file is named; preemption signals save and exit 0; retention
# keeps the last N; a checkpoint of another model is refused.
# Usage: test_ckpt.sh QTX SOURCE_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh" ckpt "$@"
qtx_dataset 512

cat > cfg.yaml <<'YAML'
model: {vocab_size: 512, dim: 64, n_layers: 4, n_heads: 4, n_kv_heads: 4, ffn_dim: 128, max_seq_len: 32}
data: {train: data/train_*.h5, val: data/val_*.h5, seq_len: 32, global_batch: 16, micro_batch: 2}
optim: {lr: 1e-3, min_lr: 1e-4, warmup_steps: 5}
train: {steps: 20, eval_every: 5, eval_batches: 2, ckpt_every: 10, out_dir: a1, log_every: 1, peak_flops: 1e11}
device: {threads: 1}
YAML

# steps FILE: "step loss" of each training row, exactly as written.
steps() { "$PY" -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "loss" in r: print(r["step"], repr(r["loss"]))' "$1"; }
# close REF RUN: RUN's steps equal REF's within 1e-5 relative.
close() { "$PY" - "$1/metrics.jsonl" "$2/metrics.jsonl" <<'PY'
import json, sys
def rows(p): return {r["step"]: r["loss"] for r in map(json.loads, open(p)) if "loss" in r}
a, b = rows(sys.argv[1]), rows(sys.argv[2])
if sorted(b) != list(range(11, 21)): sys.exit(f"steps {sorted(b)}")
worst = max(abs(a[s] - b[s]) / abs(a[s]) for s in b)
print(f"{worst:.2e}")
sys.exit(0 if worst <= 1e-5 else 1)
PY
}
run() { # run NP OUT_DIR SETS... [-- ARGS]: qtx train under mpirun
  local np=$1 out=$2
  shift 2
  local args=()
  for s in "$@"; do if [[ $s == --* ]]; then args+=("$s"); else args+=(--set "$s"); fi; done
  $MPI -np "$np" "$QTX" train cfg.yaml --set "train.out_dir=$out" "${args[@]}" >"$out.log" 2>&1
}
layout() { echo "parallel.dp=$1 parallel.tp=$2 parallel.pp=$3 parallel.zero=$4"; }

# ---- exact resume ----------------------------------------------------------------------------
"$QTX" train cfg.yaml >a1.log 2>&1 || fail "a1 exit $?"
[ "$(cat a1/ckpt/latest)" = step_00000020 ] && [ -d a1/ckpt/step_00000010 ] &&
  ok "saves at 10 and at the end; latest names step_00000020" || fail "a1 checkpoints: $(ls a1/ckpt)"
"$QTX" train cfg.yaml --set train.out_dir=b1 --resume a1/ckpt/step_00000010 >b1.log 2>&1 ||
  fail "b1 exit $?"
steps a1/metrics.jsonl | awk '$1 > 10' >a1.steps
steps b1/metrics.jsonl >b1.steps
[ -s b1.steps ] && cmp -s a1.steps b1.steps && ok "one rank: steps 11-20 after resume are bit-identical" ||
  fail "one rank resume: $(diff a1.steps b1.steps | head -4)"
grep -q 'resumed from a1/ckpt/step_00000010 at step 10 (epoch 0, sample 160 of the epoch)' b1.log &&
  ok "resume log line" || fail "resume log: $(grep resum b1.log)"
grep -q 'resume: train.out_dir changed from "a1" to "b1"' b1.log && ok "changed settings logged" ||
  fail "changes: $(grep changed b1.log)"

L8=$(layout 2 2 2 1)
run 8 a8 $L8 || fail "a8 exit $?"
run 8 b8 $L8 --resume=a8/ckpt/step_00000010 || fail "b8 exit $?"
steps a8/metrics.jsonl | awk '$1 > 10' >a8.steps
steps b8/metrics.jsonl >b8.steps
[ -s b8.steps ] && cmp -s a8.steps b8.steps &&
  ok "dp2 x tp2 x pp2 ZeRO-1: steps 11-20 after resume are bit-identical" ||
  fail "2x2x2 resume: $(diff a8.steps b8.steps | head -4)"

# ---- resharding --------------------------------------------------------------------------------
reshard() { # reshard FROM_RUN NAME DP TP PP ZERO
  local from=$1 name=$2
  local np=$(($3 * $4 * $5))
  # Load and save again without a step: the same tensors, bit for bit, whatever the layout.
  if run $np "${name}_0" $(layout $3 $4 $5 $6) train.steps=10 --resume="$from/ckpt/step_00000010"; then
    d=$("$QTX" ckpt diff "$from/ckpt/step_00000010" "${name}_0" | head -1) &&
      ok "$name: loaded and re-saved equals the saved checkpoint exactly ($d)" || fail "$name: $d"
  else fail "$name re-save exit $? $(grep -m1 error "${name}_0.log")"; fi
  if run $np "$name" $(layout $3 $4 $5 $6) --resume="$from/ckpt/step_00000010"; then
    d=$(close "$from" "$name") && ok "$name: steps 11-20 within 1e-5 of the uninterrupted run ($d)" ||
      fail "$name: losses $d"
  else fail "$name exit $? $(grep -m1 error "$name.log")"; fi
}
reshard a8 to_1110 1 1 1 0
reshard a8 to_4112 4 1 1 2
reshard a8 to_1220 1 2 2 0
reshard a8 to_2121 2 1 2 1
reshard a8 to_1410 1 4 1 0
reshard a1 from1_to_2221 2 2 2 1

# ---- corruption: each kind of file, truncated, deleted ------------------------------------------
G=a1/ckpt/step_00000010
flip() { "$PY" -c 'import sys; p, at = sys.argv[1], float(sys.argv[2]); b = bytearray(open(p, "rb").read()); b[int(len(b) * at)] ^= 1; open(p, "wb").write(b)' "$1" "$2"; }
damage() { # damage NAME ACTION EXPECT
  rm -rf c && cp -r "$G" c && eval "$2"
  "$QTX" ckpt verify c >v.out 2>v.err
  local rc=$?
  if [ $rc = 2 ] && grep -qF "qtx: error: checkpoint c: $3" v.err; then ok "verify finds $1"; else
    fail "verify $1: rc $rc $(cat v.err)"; fi
}
damage "a flipped byte in a data file" "flip c/rank_00000.bin 0.5" "rank_00000.bin: CRC mismatch in piece"
damage "a flipped byte in an index" "flip c/rank_00000.json 0.5" "rank_00000.json: CRC mismatch"
damage "a flipped byte in the manifest" "flip c/manifest.json 0.5" "manifest.json: CRC mismatch"
damage "a wrong digit in the manifest's CRC" "sed -i 's/^[^0]/0/; t; s/^0/1/' c/manifest.crc32" "manifest.json: CRC mismatch"
damage "a flipped byte in the tokenizer copy" "flip c/tokenizer.json 0.5" "tokenizer.json: CRC mismatch"
damage "a truncated data file" "truncate -s 1000 c/rank_00000.bin" "rank_00000.bin is 1000 bytes, the manifest says"
damage "a deleted index" "rm c/rank_00000.json" "rank_00000.json is missing: the checkpoint is incomplete"
damage "padding bytes" "flip c/rank_00000.bin 0.999999" "rank_00000.bin: CRC mismatch"
# Resuming from a damaged checkpoint: exit 2, the file named, nothing written.
rm -rf c && cp -r "$G" c && flip c/rank_00000.bin 0.3
"$QTX" train cfg.yaml --set train.out_dir=cx --resume c >cx.log 2>&1
rc=$?
[ $rc = 2 ] && grep -q '^qtx: error: checkpoint c: rank_00000.bin: CRC mismatch in piece ' cx.log &&
  [ ! -e cx ] && ok "resume refuses a corrupt checkpoint, naming file and tensor" ||
  fail "corrupt resume: rc $rc $(grep error cx.log)"
run 4 cx4 parallel.tp=2 parallel.pp=2 --resume=c
rc=$?
[ $rc = 2 ] && [ "$(grep -c 'error: checkpoint c: rank_00000.bin: CRC mismatch' cx4.log)" = 1 ] &&
  ok "4 ranks: one line, exit 2" || fail "corrupt 4-rank resume: rc $rc $(grep error cx4.log)"
"$QTX" train cfg.yaml --set train.out_dir=cm --set model.dim=128 --resume "$G" >cm.log 2>&1
rc=$?
[ $rc = 2 ] && grep -qxF "qtx: error: checkpoint $G was saved from another model: model.dim is 64 there and 128 in this config; resume with the model it was trained with, or start a fresh train.out_dir" cm.log &&
  ok "another model is refused" || fail "model mismatch: rc $rc $(grep error cm.log)"
"$QTX" train cfg.yaml --set train.out_dir=none --resume latest >none.log 2>&1
rc=$?
[ $rc = 2 ] && grep -qxF "qtx: error: --resume latest: none has no checkpoint (no none/ckpt/latest); train without --resume, or use train.resume: auto to resume only when one exists" none.log &&
  ok "--resume latest without a checkpoint" || fail "resume latest: rc $rc $(cat none.log)"

"$QTX" ckpt diff "$G" "$G" --kind all >kind.log 2>&1
rc=$?
[ $rc = 2 ] && grep -qxF "qtx: error: --kind 'all': expected param, adam_m or adam_v (without --kind: all three)" kind.log &&
  ok "ckpt diff refuses an unknown --kind" || fail "ckpt diff --kind all: rc $rc $(cat kind.log)"

# ---- auto resume, retention, the checkpoint resumed from is kept -------------------------------
"$QTX" train cfg.yaml --set train.out_dir=auto --set train.resume=auto --set train.steps=10 >auto1.log 2>&1
"$QTX" train cfg.yaml --set train.out_dir=auto --set train.resume=auto --set train.ckpt_every=2 \
  --set train.ckpt_keep=2 >auto2.log 2>&1 || fail "auto2 exit $?"
grep -q 'resumed from auto/ckpt/step_00000010 at step 10' auto2.log && ok "train.resume: auto resumes" ||
  fail "auto: $(grep -m2 -e resum -e error auto2.log)"
[ "$(ls auto/ckpt | grep -c '^step_')" = 3 ] && [ -d auto/ckpt/step_00000010 ] &&
  [ -d auto/ckpt/step_00000020 ] && [ -d auto/ckpt/step_00000018 ] &&
  ok "ckpt_keep 2 keeps the last two and the one resumed from" || fail "kept: $(ls auto/ckpt)"
steps auto/metrics.jsonl | awk '{print $1}' | tr '\n' ' ' | grep -q '^1 2 3 4 5 6 7 8 9 10 11 .* 20 $' &&
  ok "metrics.jsonl continues across the resume" || fail "metrics: $(steps auto/metrics.jsonl | head -3)"

# ---- preemption: SIGTERM (one rank) and SIGUSR1 (mpirun forwards it) save and exit 0 ------------
sig_test() { # sig_test NP SIGNAL OUT
  if [ "$1" = 1 ]; then
    "$QTX" train cfg.yaml --set "train.out_dir=$3" --set train.steps=100000 --set train.ckpt_every=0 \
      --set train.eval_every=0 >"$3.log" 2>&1 &
  else
    $MPI -np "$1" "$QTX" train cfg.yaml --set "train.out_dir=$3" --set train.steps=100000 \
      --set train.ckpt_every=0 --set train.eval_every=0 --set parallel.pp=2 >"$3.log" 2>&1 &
  fi
  local pid=$! n=0
  # Signal only once training runs (3 steps logged): before the handlers are in place the
  # signal would kill the ranks. Up to 120 s: under ctest -j, eight-rank tests run beside this.
  for _ in $(seq 2400); do
    n=$(grep -c . "$3/metrics.jsonl" 2>/dev/null)
    [ "${n:-0}" -ge 3 ] && break
    sleep 0.05
  done
  [ "${n:-0}" -ge 3 ] || fail "$2 with $1 rank(s): training did not log 3 steps in 120 s"
  kill "-$2" $pid
  wait $pid
  local rc=$?
  local last
  last=$(steps "$3/metrics.jsonl" | tail -1 | cut -d' ' -f1)
  [ $rc = 0 ] && [ "$(cat "$3/ckpt/latest")" = "$(printf step_%08d "$last")" ] &&
    grep -q "stopping after step $last on signal" "$3.log" &&
    ok "$2 with $1 rank(s): saved step $last and exited 0" || fail "$2: rc $rc last $last $(tail -2 "$3.log")"
}
sig_test 1 TERM sig1
sig_test 2 USR1 sig2
"$QTX" train cfg.yaml --set train.out_dir=sig1 --set train.steps=$(($(steps sig1/metrics.jsonl | tail -1 | cut -d' ' -f1) + 2)) \
  --set train.eval_every=0 --resume latest >sig1b.log 2>&1 && ok "resume after SIGTERM" || fail "sig1 resume"

# ---- crash safety: SIGKILL at 20 random moments inside saves ------------------------------------
cat > crash.yaml <<'YAML'
model: {vocab_size: 512, dim: 192, n_layers: 4, n_heads: 4, n_kv_heads: 4, ffn_dim: 512, max_seq_len: 32}
data: {train: data/train_*.h5, seq_len: 32, global_batch: 4, micro_batch: 4}
optim: {lr: 1e-3, min_lr: 1e-4, warmup_steps: 1}
train: {steps: 100000, eval_every: 0, ckpt_every: 1, ckpt_keep: 3, out_dir: crash, resume: auto, peak_flops: 1e11}
device: {threads: 1}
YAML
"$PY" - "$QTX" <<'PY' && ok "20 kills inside saves: previous checkpoint intact, latest complete, resume works" || fail "crash safety"
import os, random, subprocess, sys, time
qtx = sys.argv[1]
random.seed(7)
root = "crash/ckpt"
# How long one save takes here, so the kills spread over all of it (and a little after).
r = subprocess.run([qtx, "train", "crash.yaml", "--set", "train.out_dir=probe", "--set", "train.steps=2",
                    "--set", "train.resume="], capture_output=True, text=True)
save_s = max(float(l.split(" in ")[1].split(" s")[0]) for l in r.stderr.splitlines() if "checkpoint probe" in l)
kills = with_previous = 0
for attempt in range(200):
    if kills == 20: break
    launched = time.time_ns()
    p = subprocess.Popen([qtx, "train", "crash.yaml"], stdout=subprocess.DEVNULL, stderr=open("crash.log", "a"))
    # wait for a save to begin (its temporary directory appears), then kill at a random moment
    deadline = time.time() + 60
    started = None
    while time.time() < deadline and p.poll() is None:
        # a save of this run: a temporary directory made after the launch (a killed run's
        # stale one is removed and made anew by the next save of that step)
        try:
            fresh = [n for n in os.listdir(root) if n.startswith(".tmp_step_")
                     and os.stat(f"{root}/{n}").st_ctime_ns > launched]
        except FileNotFoundError:
            fresh = []
        if fresh:
            started = time.time(); break
        time.sleep(0.001)
    if started is None:
        p.kill(); p.wait(); sys.exit(f"attempt {attempt}: no save started")
    had_previous = os.path.exists(f"{root}/latest")
    time.sleep(random.uniform(0, 3 * save_s))  # saves follow each other: ckpt_every 1
    p.kill(); p.wait()
    kills += 1
    with_previous += had_previous
    names = sorted(n for n in os.listdir(root) if n.startswith("step_"))
    if os.path.exists(f"{root}/latest"):
        latest = open(f"{root}/latest").read().strip()
        if latest not in names: sys.exit(f"kill {kills}: latest names missing {latest}")
    for n in names:
        r = subprocess.run([qtx, "ckpt", "verify", f"{root}/{n}"], capture_output=True, text=True)
        if r.returncode != 0: sys.exit(f"kill {kills}: {n} broken: {r.stderr}")
print(f"{kills} kills (a save takes {save_s:.2f} s), {with_previous} with a previous checkpoint")
if with_previous < 10: sys.exit("too few kills found a previous checkpoint to protect")
# the run resumes from whatever latest names and finishes
latest = open(f"{root}/latest").read().strip()
step = int(latest.split("_")[1])
r = subprocess.run([qtx, "train", "crash.yaml", "--set", f"train.steps={step + 2}"], capture_output=True, text=True)
if r.returncode != 0 or f"resumed from crash/ckpt/{latest}" not in r.stderr: sys.exit(r.stderr[-500:])
PY

qtx_done
