#!/usr/bin/env bash
# test_export.sh: qtx export (ckpt/gguf_export.h). A tiny GQA model (ffn_dim 80, so ffn_down's
# rows are not a multiple of 32) trained on one rank, the same checkpoint re-saved by a
# dp2 x tp2 run, and a tied model trained on dp2 x tp2, each exported to f32, f16, q8_0 and
# q4_0 and read back with the `gguf` Python package (llama.cpp's gguf-py): every metadata key
# with its exact GGUF type and value, the tokenizer arrays against tokenizer.json, tensor names,
# shapes and types as llama.cpp's llama loader expects them, f32 equal to the checkpoint bit
# for bit, f16 equal to numpy's rounding, q8_0 / q4_0 dequantized by gguf-py within the
# quantization error of each block. Exports of the two layouts of one checkpoint are
# byte-identical. Bad usage exits 2 with one exact line.
# Usage: test_export.sh QTX SOURCE_ROOT. Exits 77 (skip) without python3's gguf and numpy
# (python3 -m pip install gguf).
set -uo pipefail
PY=${PYTHON:-python3}
if ! "$PY" -c 'import gguf, numpy' 2>/dev/null; then
  echo "skip: python3 -m pip install gguf (needs gguf-py and numpy)"
  exit 77
fi
source "$(dirname "$0")/lib.sh" export "$@"
qtx_dataset 512

cat > cfg.yaml <<'YAML'
model: {vocab_size: 512, dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 80, max_seq_len: 48}
data: {train: data/train_*.h5, val: data/val_*.h5, seq_len: 32, global_batch: 8, micro_batch: 2}
optim: {lr: 1e-3, min_lr: 1e-4, warmup_steps: 2}
train: {steps: 4, eval_every: 0, out_dir: a1, log_every: 1, peak_flops: 1e11}
device: {threads: 1}
YAML
layout="--set parallel.dp=2 --set parallel.tp=2"

"$QTX" train cfg.yaml >a1.log 2>&1 && [ -d a1/ckpt/step_00000004 ] && ok "one-rank checkpoint" ||
  { fail "a1 train: $(tail -2 a1.log)"; exit 1; }
# The same checkpoint loaded by dp2 x tp2 and saved again without a step: the same tensors.
$MPI -np 4 "$QTX" train cfg.yaml --set train.out_dir=r4 $layout --resume=a1/ckpt/step_00000004 \
  >r4.log 2>&1 || fail "r4 re-save exit $? $(grep -m1 error r4.log)"
d=$("$QTX" ckpt diff a1/ckpt/step_00000004 r4 --kind param | head -1) &&
  ok "dp2 x tp2 re-save equals the one-rank checkpoint ($d)" || fail "re-save differs: $d"
$MPI -np 4 "$QTX" train cfg.yaml --set train.out_dir=t4 --set model.tie_embeddings=true $layout \
  >t4.log 2>&1 && [ -d t4/ckpt/step_00000004 ] && ok "dp2 x tp2 tied checkpoint" ||
  fail "t4 train exit $? $(grep -m1 error t4.log)"

cat > check.py <<'PY'
# check.py GGUF STEP_DIR QUANT: the file against the checkpoint and its tokenizer.json.
import glob, json, sys, zlib
import numpy as np
import gguf
from gguf import GGUFReader

path, d, quant = sys.argv[1:4]
m = json.load(open(f"{d}/manifest.json"))["model"]
tj = json.load(open(f"{d}/tokenizer.json"))
r = GGUFReader(path)
errs = []

def gather(name):  # docs/FORMATS.md, "Reading by hand"
    full = None
    for p in sorted(glob.glob(f"{d}/rank_*.json")):
        index = json.load(open(p))
        data = np.memmap(f"{d}/{index['data_file']}", dtype="<f4", mode="r")
        for pc in index["pieces"]:
            if (pc["kind"], pc["name"]) != ("param", name):
                continue
            (rows, cols), (r0, c0, nr, nc), (f0, f1) = pc["shape"], pc["block"], pc["flat"]
            vals = data[pc["offset"] // 4: pc["offset"] // 4 + (f1 - f0)]
            assert zlib.crc32(vals.tobytes()) == pc["crc32"]
            if full is None:
                full = np.full((rows, cols), np.nan, dtype=np.float32)
            i = np.arange(f0, f1)
            full[r0 + i // nc, c0 + i % nc] = vals
    assert full is not None and not np.isnan(full).any(), name
    return full

def field(key, types, want=None):
    f = r.fields.get(key)
    if f is None:
        errs.append(f"{key} is missing")
        return None
    got = [t.name for t in f.types]
    if got != types:
        errs.append(f"{key}: GGUF type {got}, expected {types}")
    v = f.contents()
    if want is not None and v != want:
        errs.append(f"{key} = {v!r}, expected {want!r}")
    return v

U32, F32, STR = ["UINT32"], ["FLOAT32"], ["STRING"]
V, C, L, H, KV, F = (m[k] for k in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim"))
field("general.architecture", STR, "llama")
field("general.name", STR)
field("general.file_type", U32, {"f32": 0, "f16": 1, "q8_0": 7, "q4_0": 2}[quant])
field("llama.vocab_size", U32, V)
field("llama.context_length", U32, m["max_seq_len"])
field("llama.embedding_length", U32, C)
field("llama.block_count", U32, L)
field("llama.feed_forward_length", U32, F)
field("llama.attention.head_count", U32, H)
field("llama.attention.head_count_kv", U32, KV)
field("llama.rope.dimension_count", U32, C // H)
field("llama.rope.freq_base", F32, float(np.float32(m["rope_theta"])))
field("llama.attention.layer_norm_rms_epsilon", F32, float(np.float32(m["norm_eps"])))
field("tokenizer.ggml.model", STR, "gpt2")
field("tokenizer.ggml.pre", STR, "gpt-2")
# the token strings exactly as tokenizer.json has them, by id; added tokens are control (3)
want_tok, want_type = [f"[PAD{i}]" for i in range(V)], [5] * V
for s, i in tj["model"]["vocab"].items():
    want_tok[i], want_type[i] = s, 1
for a in tj["added_tokens"]:
    want_tok[a["id"]], want_type[a["id"]] = a["content"], 3
toks = field("tokenizer.ggml.tokens", ["ARRAY", "STRING"])
types = field("tokenizer.ggml.token_type", ["ARRAY", "INT32"])
merges = field("tokenizer.ggml.merges", ["ARRAY", "STRING"])
if toks is not None and (len(toks) != V or toks != want_tok):
    errs.append(f"tokens: {len(toks)} entries (vocab_size {V}) or strings differ")
if types is not None and list(types) != want_type:
    errs.append(f"token_type differs: {sorted(set(types))}")
want_merges = [x if isinstance(x, str) else " ".join(x) for x in tj["model"]["merges"]]
if merges is not None and merges != want_merges:
    errs.append(f"merges: {len(merges)} vs {len(want_merges)} in tokenizer.json, or they differ")
eos = [a["id"] for a in tj["added_tokens"] if a["content"] == "<|endoftext|>"][0]
field("tokenizer.ggml.bos_token_id", U32, eos)
field("tokenizer.ggml.eos_token_id", U32, eos)

# tensors: llama.cpp's names, ne = reversed row-major shape, types
tied = m["tie_embeddings"]
want = {"token_embd": (V, C), "output_norm": (C,)}
if not tied:
    want["output"] = (V, C)
for i in range(L):
    hd = C // H
    for n, s in (("attn_norm", (C,)), ("attn_q", (H * hd, C)), ("attn_k", (KV * hd, C)),
                 ("attn_v", (KV * hd, C)), ("attn_output", (C, H * hd)), ("ffn_norm", (C,)),
                 ("ffn_gate", (F, C)), ("ffn_up", (F, C)), ("ffn_down", (C, F))):
        want[f"blk.{i}.{n}"] = s
got = {t.name: t for t in r.tensors}
if sorted(got) != sorted(f"{n}.weight" for n in want):
    errs.append(f"tensor names: {sorted(got)}")
worst = {}
for n, shape in want.items():
    t = got.get(f"{n}.weight")
    if t is None:
        continue
    if list(t.shape) != list(reversed(shape)):
        errs.append(f"{n}: ne {list(t.shape)}, expected {list(reversed(shape))}")
    if t.data_offset % 32:
        errs.append(f"{n}: data at {t.data_offset}, not 32-byte aligned")
    ty = "f32" if len(shape) == 1 else quant
    if ty in ("q8_0", "q4_0") and shape[-1] % 32:
        ty = "f16"
    if t.tensor_type.name != ty.upper():
        errs.append(f"{n}: type {t.tensor_type.name}, expected {ty}")
        continue
    x = gather(n).reshape(shape)
    y = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
    if ty == "f32":
        ok = np.array_equal(x, y)
    elif ty == "f16":
        ok = np.array_equal(x.astype(np.float16).astype(np.float32), y)
    else:  # per 32-value block: q8_0 |err| <= d/2 + f16 rounding of d; q4_0 <= d (clipping)
        xb, yb = x.reshape(-1, 32), y.reshape(-1, 32)
        amax = np.abs(xb).max(axis=1, keepdims=True)
        tol = 0.57 * amax / 127 if ty == "q8_0" else 1.01 * amax / 8
        ok = bool((np.abs(xb - yb) <= tol + 1e-30).all())
        worst[ty] = max(worst.get(ty, 0.0), float(np.abs(xb - yb).max() / np.abs(xb).max()))
    if not ok:
        errs.append(f"{n} ({ty}): values differ from the checkpoint beyond the quantization error")
if errs:
    print("; ".join(errs[:6]))
    sys.exit(1)
print(f"{len(r.tensors)} tensors, {len(r.fields)} fields" +
      "".join(f", {k} max error {v:.3g} of max|x|" for k, v in worst.items()))
PY

for run in a1 r4 t4; do
  for q in f32 f16 q8_0 q4_0; do
    if "$QTX" export "$run" --quant "$q" --name tiny -o "${run}_$q.gguf" >"${run}_$q.log" 2>&1; then
      res=$("$PY" check.py "${run}_$q.gguf" "$(echo "$run"/ckpt/step_*)" "$q" 2>&1) &&
        ok "$run $q: $res" || fail "$run $q: $res"
    else fail "$run $q export exit $?: $(cat "${run}_$q.log")"; fi
  done
done
for q in f32 f16 q8_0 q4_0; do
  cmp -s "a1_$q.gguf" "r4_$q.gguf" && ok "$q: exports of the one-rank and dp2 x tp2 saves are identical" ||
    fail "$q: a1 and r4 exports differ"
done
grep -qx 'qtx: export: blk.0.ffn_down.weight has ne\[0\] = 80, not a multiple of 32: written as f16 instead of q8_0' a1_q8_0.log &&
  ok "fallback to f16 is logged" || fail "fallback log: $(cat a1_q8_0.log)"
grep -q '^qtx export: a1/ckpt/step_00000004 (step 4) -> a1_q4_0.gguf: 21 tensors (5 f32, 2 f16, 14 q4_0), ' a1_q4_0.log &&
  ok "summary line" || fail "summary: $(cat a1_q4_0.log)"
"$QTX" export a1/ckpt/step_00000004 -q -o named.gguf 2>q.err && [ ! -s q.err ] &&
  "$PY" -c 'import gguf,sys; r = gguf.GGUFReader("named.gguf"); sys.exit(r.fields["general.name"].contents() != "a1" or r.fields["general.file_type"].contents() != 1)' &&
  ok "default name (the run's out_dir) and type (f16), quiet" || fail "defaults: $(cat q.err)"

# ---- bad usage: exit 2, one line ---------------------------------------------------------------
usage() { # usage NAME EXPECTED_LINE ARGS...
  local name=$1 want=$2
  shift 2
  "$QTX" export "$@" >u.out 2>u.err
  local rc=$?
  [ $rc = 2 ] && [ "$(cat u.err)" = "$want" ] && ok "$name" || fail "$name: rc $rc $(cat u.err)"
}
usage "missing --quant value" "qtx: error: --quant needs a value" a1 -o u.gguf --quant
usage "unknown quant" "qtx: error: --quant 'q5_0': expected f32, f16, q8_0 or q4_0" a1 -o u.gguf --quant q5_0
usage "missing -o" "qtx: error: qtx export needs -o model.gguf" a1 --quant q8_0
usage "missing checkpoint" "qtx: error: qtx export needs a checkpoint: qtx export CKPT -o model.gguf" -o u.gguf
usage "unknown option" "qtx: error: unknown option '--bits'; see qtx export --help" a1 --bits 4 -o u.gguf
usage "no such checkpoint" "qtx: error: checkpoint nope: no such directory; pass a step directory (e.g. out/ckpt/step_00000010), a checkpoint root or a run's out_dir" nope -o u.gguf
cp a1_q8_0.gguf before.gguf
usage "existing output" "qtx: error: a1_q8_0.gguf exists; pass --force to replace it, or choose another output path" a1 --quant f32 -o a1_q8_0.gguf
cmp -s before.gguf a1_q8_0.gguf && ok "an existing output is left alone" || fail "existing output changed"
"$QTX" export a1 --quant f32 --name tiny -o a1_q8_0.gguf --force 2>/dev/null && cmp -s a1_q8_0.gguf a1_f32.gguf &&
  ok "--force replaces it" || fail "--force"
rm -rf c && cp -r a1/ckpt/step_00000004 c &&
  "$PY" -c 'b = bytearray(open("c/tokenizer.json", "rb").read()); b[100] ^= 1; open("c/tokenizer.json", "wb").write(b)'
"$QTX" export c -o u.gguf >u.out 2>u.err
rc=$?
[ $rc = 2 ] && grep -qx "qtx: error: checkpoint c: tokenizer.json: CRC mismatch (expected 0x[0-9a-f]*, got 0x[0-9a-f]*): the file is corrupt; use another checkpoint (qtx ckpt verify checks one)" u.err &&
  [ ! -e u.gguf ] && ok "a corrupt tokenizer copy is refused" || fail "corrupt tokenizer: rc $rc $(cat u.err)"
[ -z "$(ls -a | grep '\.tmp\.')" ] && ok "no temporary files left" || fail "leftovers: $(ls -a | grep tmp)"

qtx_done
