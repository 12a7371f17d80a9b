#!/usr/bin/env bash
# test_device.sh: the device code path of training, proven on the CPU. device.type: staged runs
# the CPU kernels on memory the layers above must treat as a GPU's: parameters, gradients,
# AdamW moments and ZeRO buffers live in the backend, batches are staged in, checkpoints are
# copied out and back, and the update and norm are backend operations, exactly as with
# device.type: cuda (only the kernels and NCCL differ, and those are tests/gpu/'s).
#   - staged equals cpu bit for bit: every loss, parameter and moment, on one rank, on dp 2
#     with ZeRO 0, 1 and 2, and with tp 2, pp 2 (a tied head too) and dp 2 x tp 2 x pp 2;
#   - bf16 products (emulated on staged): the weights' bf16 copy gives the bits of rounding
#     them at every product on every layout, bf16 follows fp32 within bf16 rounding, and a
#     bf16 run resumes bit-identically;
#   - checkpoints cross both ways (cpu -> staged, staged -> cpu) and the resumed run ends
#     bit-identical to the uninterrupted one;
#   - device.type: cuda where no GPU (or no CUDA build) is: exit 2, one line, nothing written.
# Usage: test_device.sh QTX SOURCE_ROOT
set -uo pipefail
export OMPI_MCA_rmaps_base_oversubscribe=1
source "$(dirname "$0")/lib.sh" device "$@"
qtx_dataset 512

# Grouped-query attention (4 heads over 2), a checkpoint at step 10 to resume from.
cat > cfg.yaml <<'YAML'
model: {vocab_size: 512, dim: 64, n_layers: 4, n_heads: 4, n_kv_heads: 2, ffn_dim: 128, max_seq_len: 32}
data: {train: data/train_*.h5, seq_len: 32, global_batch: 16, micro_batch: 2}
optim: {lr: 1e-3, min_lr: 1e-4, warmup_steps: 5}
train: {steps: 20, eval_every: 0, log_every: 1, peak_flops: 1e11, ckpt_every: 10}
device: {threads: 1}
YAML

# losses RUN: the 20 losses as written (JSON, every digit of the double).
losses() { grep -o '"loss": *[^,}]*' "$1/metrics.jsonl"; }

# same A B WHAT: A's and B's losses and every saved tensor (params, adam_m, adam_v) are equal.
same() {
  local d
  if [ "$(losses "$1" | wc -l)" = 20 ] && [ "$(losses "$1")" == "$(losses "$2")" ] &&
    d=$("$QTX" ckpt diff "$1" "$2" --rtol 0 | head -1); then
    ok "$3: losses and every tensor bit-identical ($d)"
  else
    fail "$3: $1 and $2 differ: $d"
  fi
}

# train NAME NP SETS...: one run into out_dir NAME.
train() {
  local name=$1 np=$2
  shift 2
  local sets=(--set "train.out_dir=$name")
  for s in "$@"; do sets+=(--set "$s"); done
  if [ "$np" = 1 ]; then
    timeout 300 "$QTX" train cfg.yaml "${sets[@]}" >"$name.log" 2>&1
  else
    timeout 300 $MPI -np "$np" "$QTX" train cfg.yaml "${sets[@]}" >"$name.log" 2>&1
  fi || fail "$name: exit $? ($(grep -m1 error "$name.log"))"
}

train cpu 1
train staged 1 device.type=staged
same staged cpu "one rank"
grep -q "checkpoint staged/ckpt/step_00000020" staged.log && ok "staged saves checkpoints" ||
  fail "staged: no checkpoint line"

for z in 0 1 2; do
  train "cpu_z$z" 2 parallel.zero=$z
  train "staged_z$z" 2 parallel.zero=$z device.type=staged
  same "staged_z$z" "cpu_z$z" "dp 2, ZeRO-$z"
done
# Tensor and pipeline parallelism: the TP reductions (vocabulary-parallel head included), the
# pipeline's transfers and the tied embedding's sum between first and last stage all move
# backend memory.
layout() { # layout NAME NP SETS...: the layout on cpu and on staged, compared
  local name=$1 np=$2
  shift 2
  train "cpu_$name" "$np" "$@"
  train "staged_$name" "$np" "$@" device.type=staged
  same "staged_$name" "cpu_$name" "$name"
}
layout tp2 2 parallel.tp=2
layout pp2 2 parallel.pp=2 data.micro_batch=4
layout tied_pp2 2 parallel.pp=2 model.tie_embeddings=true
layout dp2tp2pp2_z2 8 parallel.tp=2 parallel.pp=2 parallel.zero=2

# bf16 products (device.precision: bf16; staged emulates the CUDA backend's: operands rounded
# to bf16, fp32 sums). The weights come from one bf16 copy of the parameters, kept across the
# 8 micro-batches of a step and refreshed after each update, ZeRO gather and load: exactly
# the bits of rounding them at every product, on every layout.
bf16() { # bf16 NAME NP SETS...
  local name=$1 np=$2
  shift 2
  train "bf16_$name" "$np" "$@" device.type=staged device.precision=bf16
  train "bf16pp_$name" "$np" "$@" device.type=staged device.precision=bf16 \
    device.bf16_param_copy=false
  same "bf16_$name" "bf16pp_$name" "bf16 $name: the weights' bf16 copy equals rounding per product"
}
bf16 one 1
bf16 z1 2 parallel.zero=1
bf16 z2 2 parallel.zero=2
bf16 dp2tp2pp2_z2 8 parallel.tp=2 parallel.pp=2 parallel.zero=2
# bf16 follows fp32 within bf16's rounding (2^-9 per operand; averaged over a batch's tokens
# the losses here stay within 1e-4 of fp32's), and is not fp32 in disguise.
if d=$(paste <(losses bf16_one | cut -d: -f2) <(losses cpu | cut -d: -f2) | awk '
    { r = ($1 - $2) / $2; r = r < 0 ? -r : r; if (r > m) m = r; if ($1 != $2) n++ }
    END { printf "%.2g %d", m, n; exit !(NR == 20 && m < 2e-3 && n > 0) }'); then
  ok "bf16 losses within 2e-3 of fp32's, and not equal to them (largest relative difference, losses that differ: $d)"
else
  fail "bf16 against fp32: largest relative difference, losses that differ: $d"
fi
train bf16_resume 1 device.type=staged device.precision=bf16 \
  train.resume=bf16_one/ckpt/step_00000010
grep -q "resumed from bf16_one/ckpt/step_00000010 at step 10" bf16_resume.log &&
  d=$("$QTX" ckpt diff bf16_resume bf16_one --rtol 0 | head -1) &&
  ok "a bf16 run resumes bit-identically ($d)" ||
  fail "bf16 resume: $d $(grep -m1 -e error -e resumed bf16_resume.log)"

# Checkpoints cross between the host and the device path both ways.
train cpu_to_staged 1 device.type=staged train.resume=cpu/ckpt/step_00000010
grep -q "resumed from cpu/ckpt/step_00000010 at step 10" cpu_to_staged.log &&
  d=$("$QTX" ckpt diff cpu_to_staged cpu --rtol 0 | head -1) &&
  ok "a CPU checkpoint resumes on the device path, ending bit-identical ($d)" ||
  fail "cpu -> staged: $d $(grep -m1 -e error -e resumed cpu_to_staged.log)"
train staged_to_cpu 2 parallel.zero=2 train.resume=staged_z2/ckpt/step_00000010
grep -q "resumed from staged_z2/ckpt/step_00000010 at step 10" staged_to_cpu.log &&
  d=$("$QTX" ckpt diff staged_to_cpu cpu_z2 --rtol 0 | head -1) &&
  ok "a device-path ZeRO-2 checkpoint resumes on the CPU, ending bit-identical ($d)" ||
  fail "staged -> cpu: $d $(grep -m1 -e error -e resumed staged_to_cpu.log)"

# device.type: cuda without a GPU here (or without CUDA in this build): refused before any
# work, exit 2, one line on every layout, nothing created. Skipped where a GPU is visible
# (tests/gpu/ and scripts/gpu_check.sh cover that machine).
if nvidia-smi -L >/dev/null 2>&1; then
  echo "skip: a GPU is visible; the no-GPU refusal is not checked here"
else
  no_gpu='^qtx: error: device\.type = cuda, but (rank 0 sees no GPU \(.+\); run on GPU nodes or set device\.type: cpu|this qtx was built without CUDA \(QTX_CUDA=OFF\); rebuild where the CUDA toolkit and NCCL are found, or set device\.type: cpu)$'
  for np in 1 2; do
    rc=0
    if [ $np = 1 ]; then
      "$QTX" train cfg.yaml --set device.type=cuda --set train.out_dir=nogpu >nogpu.out 2>nogpu.err || rc=$?
    else
      $MPI -np 2 "$QTX" train cfg.yaml --set device.type=cuda --set train.out_dir=nogpu \
        >nogpu.out 2>nogpu.err || rc=$?
    fi
    err=$(grep '^qtx' nogpu.err) # the ranks' lines; mpirun adds its own banner
    if [ $rc = 2 ] && [ "$(echo "$err" | wc -l)" = 1 ] && echo "$err" | grep -qE "$no_gpu" &&
      [ ! -e nogpu ]; then
      ok "device.type: cuda without a GPU, $np rank(s): exit 2, one line ($err)"
    else
      fail "cuda without a GPU, $np rank(s): rc $rc, out_dir $( [ -e nogpu ] && echo created || echo absent): $err"
    fi
  done
fi

qtx_done
