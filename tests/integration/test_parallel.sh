#!/usr/bin/env bash
# test_parallel.sh: 3D parallelism is proven equal to one rank. From the same seed and data,
# the 20 step losses and the final parameters of each layout (dp, tp, pp and their products, each with ZeRO 0, 1 and 2
# where dp > 1) equal the single-rank run within 1e-5 relative; the per-rank communication
# counters equal the analytic DP/ZeRO, TP and PP volumes; the per-rank model-state bytes
# follow the ZeRO formulas; layout errors are refused before any work with one line and
# exit 2 on every rank; a rank that is killed or fails takes the whole job down quickly.
# Usage: test_parallel.sh QTX SOURCE_ROOT
set -uo pipefail
export OMPI_MCA_rmaps_base_oversubscribe=1
source "$(dirname "$0")/lib.sh" parallel "$@"
qtx_dataset 512

# 4 layers so pp 4 has a layer per stage; dims divisible by tp 4.
cat > cfg.yaml <<'YAML'
model: {vocab_size: 512, dim: 64, n_layers: 4, n_heads: 4, n_kv_heads: 4, ffn_dim: 128, max_seq_len: 32}
data: {train: data/train_*.h5, seq_len: 32, global_batch: 16, micro_batch: 2}
optim: {lr: 1e-3, min_lr: 1e-4, warmup_steps: 5}
train: {steps: 20, eval_every: 0, out_dir: ref, log_every: 1, peak_flops: 1e11}
device: {threads: 1}
YAML

"$QTX" train cfg.yaml >ref.log 2>&1 || fail "single-rank reference exit $?"
"$QTX" train cfg.yaml --set model.tie_embeddings=true --set train.out_dir=ref_tied \
  >ref_tied.log 2>&1 || fail "tied reference exit $?"

# compare REF RUN: the losses of 20 steps within 1e-5 relative.
compare() {
  "$PY" - "$1/metrics.jsonl" "$2/metrics.jsonl" <<'PY'
import json, sys
def losses(p):
    return [json.loads(l)["loss"] for l in open(p) if '"loss"' in l]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
if len(a) != 20 or len(b) != 20:
    sys.exit(f"{len(a)} and {len(b)} steps")
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"max relative loss difference {worst:.2e}")
sys.exit(0 if worst <= 1e-5 else 1)
PY
}

# layout NAME NP REF SETS...: runs the layout and compares it with REF.
layout() {
  local name=$1 np=$2 ref=$3
  shift 3
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  if timeout 300 $MPI -np "$np" "$QTX" train cfg.yaml --set "train.out_dir=$name" "${sets[@]}" \
    >"$name.log" 2>&1; then
    local d
    d=$(compare "$ref" "$name") && ok "$name: losses equal one rank's ($d)" || fail "$name: $d"
    # The final checkpoints, gathered whole: every parameter tensor within 1e-5 (||a-b||/||b||).
    d=$("$QTX" ckpt diff "$name" "$ref" --kind param --rtol 1e-5 | head -1) &&
      ok "$name: parameters equal one rank's ($d)" || fail "$name: parameters: $d"
  else
    fail "$name: exit $? ($(grep -m1 error "$name.log"))"
  fi
}

for z in 0 1 2; do
  layout "dp2_z$z" 2 ref parallel.zero=$z
  layout "dp4_z$z" 4 ref parallel.zero=$z
  layout "dp2tp2_z$z" 4 ref parallel.tp=2 parallel.zero=$z
  layout "dp2pp2_z$z" 4 ref parallel.pp=2 data.micro_batch=4 parallel.zero=$z
  layout "dp2tp2pp2_z$z" 8 ref parallel.tp=2 parallel.pp=2 parallel.zero=$z
done
layout tp2 2 ref parallel.tp=2
layout tp4 4 ref parallel.tp=4
layout pp2 2 ref parallel.pp=2 data.micro_batch=4 # 4 micro-batches
layout pp4 4 ref parallel.pp=4                    # 8 micro-batches
layout tp2pp2 4 ref parallel.tp=2 parallel.pp=2
# A tied head over a pipeline: token_embd lives on the first and last stage, kept in sync.
layout tied_pp2 2 ref_tied model.tie_embeddings=true parallel.pp=2
layout tied_dp2tp2pp2_z1 8 ref_tied model.tie_embeddings=true parallel.tp=2 \
  parallel.pp=2 parallel.zero=1 parallel.stage_layers=1,3
layout tied_dp2pp4_z2 8 ref_tied model.tie_embeddings=true parallel.pp=4 \
  parallel.zero=2

# ---- communication volume and model-state memory, per rank, from out_dir/comm/ --------------
# One micro-batch per step per replica, so every ZeRO stage moves 2 psi (p-1)/p per step.
for z in 0 1 2; do
  $MPI -np 4 "$QTX" train cfg.yaml --set train.out_dir=vol_z$z --set parallel.zero=$z \
    --set data.micro_batch=4 >vol_z$z.log 2>&1 || fail "vol_z$z exit $?"
done
$MPI -np 8 "$QTX" train cfg.yaml --set train.out_dir=vol_3d --set parallel.tp=2 \
  --set parallel.pp=2 --set parallel.zero=1 --set data.micro_batch=2 >vol_3d.log 2>&1 ||
  fail "vol_3d exit $?"
"$PY" - <<'PY' && ok "communication volumes and ZeRO memory equal the formulas" || fail "volumes"
import glob, json, sys
V, C, L, H, KV, F, T = 512, 64, 4, 4, 4, 128, 32
hd = C // H
bad = []

def psi_of(tp, first, last, layers):
    per_layer = 2 * C + (H * hd + 2 * KV * hd) * C // tp + C * H * hd // tp + 3 * F * C // tp
    p = layers * per_layer
    if first: p += V * C // tp
    if last: p += C + V * C // tp
    return p

def check(run, dp, tp, pp, zero, micro, micro_batches):
    for path in sorted(glob.glob(f"{run}/comm/rank_*.json")):
        r = json.load(open(path))
        g, mem, steps = r["groups"], r["memory"], r["steps"]
        first, last = r["pp_rank"] == 0, r["pp_rank"] == pp - 1
        psi = psi_of(tp, first, last, L // pp)
        units = L // pp + first + last
        def want(cond, what):
            if not cond: bad.append(f"{path}: {what}")
        want(mem["psi"] == psi, f"psi {mem['psi']} != {psi}")
        shard = mem["shard"]
        if zero == 0: want(shard == psi, "stage-0 shard")
        else: want(psi // dp <= shard <= psi // dp + units, f"shard {shard} vs psi/dp {psi/dp}")
        want(mem["params"] == 4 * psi, "params bytes != 4 psi")
        want(mem["grads"] == (4 * shard if zero == 2 else 4 * psi), "grads bytes")
        want(mem["optim"] == 8 * shard, "optimizer bytes != 8 shard")
        total = mem["params"] + mem["grads"] + mem["optim"]
        formula = {0: 16 * psi, 1: 8 * psi + 8 * shard, 2: 4 * psi + 12 * shard}[zero]
        want(total == formula, f"model state {total} != {formula}")
        # DP: all-reduce, or reduce-scatter + all-gather, of the stage's 4 psi bytes.
        d = g["dp"]
        if zero == 0:
            want(d["allreduce"]["bytes"] == 4 * psi * steps, "dp all-reduce bytes")
            w = d["allreduce"]["wire_bytes"] / steps
            exact = 2 * (dp - 1) / dp * 4 * psi
            want(abs(w - exact) <= 8 * units, f"dp wire {w} vs 2 psi (p-1)/p = {exact}")
        else:
            want(d["reduce_scatter"]["bytes"] == 4 * psi * steps, "reduce-scatter bytes")
            want(d["allgather"]["bytes"] == 4 * psi * steps, "all-gather bytes")
            w = d["reduce_scatter"]["wire_bytes"] + d["allgather"]["wire_bytes"]
            want(w == 2 * 4 * (psi - shard) * steps, f"ZeRO wire {w} != 2 x 4 (psi - shard)")
        # TP: per micro-batch 4 all-reduces of N x C per layer, the embedding's, the head's
        # input gradient, and 3 N floats of vocabulary-parallel cross-entropy statistics.
        if tp > 1:
            N = micro * T
            floats = 4 * (L // pp) * N * C + (N * C if first else 0) + ((N * C + 3 * N) if last else 0)
            want(g["tp"]["allreduce"]["bytes"] == 4 * floats * micro_batches * steps,
                 f"tp bytes {g['tp']['allreduce']['bytes']} != {4 * floats * micro_batches * steps}")
        # PP: each micro-batch's activations forward and gradients backward, N x C each.
        if pp > 1:
            N = micro * T
            sends = (0 if last else 1) + (0 if first else 1)
            want(g["pp"]["send"]["bytes"] == 4 * N * C * sends * micro_batches * steps, "pp send bytes")
            want(g["pp"]["recv"]["bytes"] == 4 * N * C * sends * micro_batches * steps, "pp recv bytes")

for z in (0, 1, 2):
    check(f"vol_z{z}", 4, 1, 1, z, 4, 1)
check("vol_3d", 2, 2, 2, 1, 2, 4)
if len(glob.glob("vol_3d/comm/rank_*.json")) != 8: bad.append("vol_3d: not 8 rank reports")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
grep -q 'model state on rank 0: .* (4 psi + 12 psi/dp)' vol_z2.log && ok "ZeRO-2 memory line printed" ||
  fail "memory line: $(grep 'model state' vol_z2.log)"

# ---- layout errors: one line from rank 0, exit 2 on every rank, no out_dir -------------------
bad_layout() {
  local np=$1 expect=$2
  shift 2
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  $MPI -np "$np" "$QTX" train cfg.yaml --set train.out_dir=bad "${sets[@]}" >bad.log 2>&1
  local rc=$?
  local lines
  lines=$(grep -c 'error' bad.log)
  if [ $rc = 2 ] && [ "$lines" = 1 ] && grep -qxF "qtx: error: $expect" bad.log && [ ! -e bad ]; then
    ok "refused: $expect"
  else
    fail "np $np $*: rc $rc, $lines error lines: $(head -3 bad.log)"
  fi
}
bad_layout 3 "world size 3 is not a multiple of parallel.tp x parallel.pp = 2 x 1 = 2; launch a multiple of 2 ranks (mpirun -np) or change parallel.tp / parallel.pp" parallel.tp=2
bad_layout 4 "parallel.dp x parallel.tp x parallel.pp = 2 x 1 x 1 = 2 but the world has 4 ranks; launch 2 ranks (mpirun -np 2) or set parallel.dp to auto" parallel.dp=2
bad_layout 2 "parallel.zero = 1 shards over data-parallel ranks but dp = 1 (world 2 = tp 2 x pp 1); set parallel.zero to 0 or launch more ranks" parallel.tp=2 parallel.zero=1
bad_layout 2 "parallel.stage_layers = '1,2' must give 2 counts (parallel.pp) that sum to model.n_layers = 4 (got 2 counts summing to 3)" parallel.pp=2 parallel.stage_layers=1,2
bad_layout 2 "parallel.stage_layers = '1,x' is not a comma-separated list of positive layer counts, e.g. '3,5'" parallel.pp=2 parallel.stage_layers=1,x
bad_layout 6 "data.global_batch = 16 is not a multiple of dp x data.micro_batch = 6 x 2; set data.global_batch to a multiple of 12"
bad_layout 2 "--set parallel.tp=3: parallel.tp = 3 does not divide model.n_heads = 4; tensor parallelism splits it evenly, so use a parallel.tp that divides model.n_heads, model.n_kv_heads, model.ffn_dim and model.vocab_size" parallel.tp=3

# ---- failures never hang: a killed rank, and a rank failing on bad data ----------------------
$MPI -np 4 "$QTX" train cfg.yaml --set train.out_dir=killed --set train.steps=100000 \
  --set parallel.pp=2 >killed.log 2>&1 &
job=$!
for _ in $(seq 100); do [ -s killed/metrics.jsonl ] && break; sleep 0.1; done
victim=$(pgrep -f 'train.out_dir=killed' | while read -r p; do
  [ "$(cat /proc/$p/comm)" = qtx ] && echo "$p"; done | tail -1)
start=$(date +%s)
kill -9 "$victim"
( sleep 60; kill -9 $job 2>/dev/null ) & watchdog=$!
wait $job
rc=$?
kill $watchdog 2>/dev/null
took=$(($(date +%s) - start))
[ $rc != 0 ] && [ $took -le 30 ] && ok "killed rank: job exits $rc in ${took}s" ||
  fail "killed rank: rc $rc after ${took}s"
grep -q 'exited on signal 9' killed.log && ok "the reason is printed" || fail "reason: $(tail -5 killed.log)"
! pgrep -f 'train.out_dir=killed' >/dev/null && ok "no rank left running" || fail "ranks left"

# dp rank 1 reads a shard with a corrupt chunk while rank 0's data is fine (one shard each:
# copy the shard twice and corrupt one copy; the loader spreads samples over both).
mkdir -p half && cp data/train_00000.h5 half/train_a.h5 && cp data/train_00000.h5 half/train_b.h5
"$PY" -c 'p = "half/train_b.h5"; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0xFF; open(p, "wb").write(b)'
timeout 60 $MPI -np 2 "$QTX" train cfg.yaml --set 'data.train=half/train_*.h5' \
  --set train.out_dir=corrupt >corrupt.log 2>&1
rc=$?
[ $rc != 0 ] && [ $rc != 124 ] && ok "a failing rank stops the job (exit $rc)" || fail "corrupt: rc $rc"
grep -q 'error: shard half/train_b.h5: chunk checksum mismatch' corrupt.log &&
  ok "the failing rank names the reason" || fail "corrupt reason: $(grep -m2 error corrupt.log)"

qtx_done
