#!/usr/bin/env bash
# test_prep.sh: qtx prep end to end: .txt (with --doc-sep), .jsonl and their .gz as inputs; the
# shards decode back to exactly the input documents, each ending with <|endoftext|>; index.json
# agrees with the shards; the output does not depend on the thread count; --shard-tokens,
# --val-fraction and --force; and every bad input fails with its exact one-line message, exit 2
# and no partial files. Also the tokenizer CLI's usage errors.
# Usage: test_prep.sh QTX SOURCE_ROOT
set -uo pipefail
QTX=$(realpath "$1")
SRC=$(realpath "$2")
PY=${PYTHON:-python3}

work=$(mktemp -d "${TMPDIR:-/tmp}/qtx-prep.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# ---- inputs ----------------------------------------------------------------------------------
mkdir in
"$PY" - <<'EOF'
import gzip, json, random
r = random.Random(3)
words = "the lord said unto moses and aaron in the land of egypt saying this month shall be".split()
def doc(i):
    lines = [" ".join(r.choice(words) for _ in range(r.randint(3, 30))) for _ in range(r.randint(1, 12))]
    return f"Document {i}.\n" + "\n".join(lines) + "\n"
docs = [doc(i) for i in range(400)]
docs[5] = "Invalid UTF-8 is kept: \xff\xfe bytes \u00e9 caf\u00e9 \u65e5\u672c \U0001f389\n"
# a.txt: documents separated by "<|doc|>" lines (CRLF separator line too); b.txt: one document
a = docs[:150]
with open("in/a.txt", "wb") as f:
    for k, d in enumerate(a):
        b = d.encode("utf-8", "surrogateescape") if k != 5 else \
            b"Invalid UTF-8 is kept: \xff\xfe bytes \xc3\xa9 caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89\n"
        f.write(b)
        if k + 1 < len(a):
            f.write(b"<|doc|>\r\n" if k % 7 == 0 else b"<|doc|>\n")
open("in/b.txt", "w").write(docs[150])
with gzip.open("in/c.txt.gz", "wb") as f:
    f.write("<|doc|>\n".join(docs[151:200]).encode())
with open("in/d.jsonl", "w") as f:
    for k, d in enumerate(docs[200:300]):
        f.write(json.dumps({"id": k, "text": d}) + "\n")
        if k == 10: f.write("\n   \n")  # blank lines are skipped
with gzip.open("in/e.jsonl.gz", "wt") as f:
    for d in docs[300:400]:
        f.write(json.dumps({"body": d, "text": d}, ensure_ascii=False) + "\n")
# what the shards must hold, in input order (document 5 with its raw bytes)
exp = [d.encode() for d in docs]
exp[5] = b"Invalid UTF-8 is kept: \xff\xfe bytes \xc3\xa9 caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89\n"
open("expected.json", "w").write(json.dumps([e.decode("latin-1") for e in exp]))
EOF
inputs=(in/a.txt in/b.txt in/c.txt.gz in/d.jsonl in/e.jsonl.gz)

if "$QTX" tokenizer train --vocab-size 300 --min-frequency 1 --doc-sep '<|doc|>' -o tok.json "${inputs[@]}" 2> train.log
then ok "tokenizer trained on .txt, .txt.gz, .jsonl, .jsonl.gz"
else fail "tokenizer train: $(cat train.log)"; fi

# ---- checks of an output directory ---------------------------------------------------------
# Dumps every shard's tokens (h5dump binary), decodes them with qtx, and compares documents,
# EOS placement, counts, index.json and the tokenizer copy. Prints "OK ..." or the problem.
check_dir() { # dir val_fraction
  local dir=$1
  for f in "$dir"/*.h5; do
    h5dump -d /tokens -b LE -o "$f.tokens" "$f" > /dev/null 2>&1 || echo "h5dump failed on $f"
    h5dump -d /doc_offsets -b LE -o "$f.offsets" "$f" > /dev/null 2>&1
  done
  "$PY" - "$dir" "$QTX" <<'EOF'
import hashlib, json, os, struct, subprocess, sys
d, qtx = sys.argv[1], sys.argv[2]
idx = json.load(open(f"{d}/index.json"))
exp = [e.encode("latin-1") for e in json.load(open("expected.json"))]
tok = open(f"{d}/tokenizer.json", "rb").read()
problems = []
if tok != open("tok.json", "rb").read(): problems.append("tokenizer.json is not a byte copy")
if idx["tokenizer_hash"] != hashlib.sha256(tok).hexdigest(): problems.append("tokenizer_hash")
if idx["vocab_size"] != 300 or idx["eos_id"] != 299 or idx["dtype"] != "uint16":
    problems.append(f"vocab/eos/dtype {idx['vocab_size']} {idx['eos_id']} {idx['dtype']}")
got = {"train": [], "val": []}
listed = sorted(s["file"] for s in idx["shards"])
present = sorted(f for f in os.listdir(d) if f.endswith(".h5"))
if listed != present: problems.append(f"index lists {listed}, directory has {present}")
for s in idx["shards"]:
    raw = open(f"{d}/{s['file']}.tokens", "rb").read()
    ids = list(struct.unpack(f"<{len(raw)//2}H", raw))
    raw_offs = open(f"{d}/{s['file']}.offsets", "rb").read()
    offs = list(struct.unpack(f"<{len(raw_offs)//8}q", raw_offs))
    if len(ids) != s["tokens"] or len(offs) != s["documents"] + 1 or offs[0] != 0 or offs[-1] != len(ids):
        problems.append(f"{s['file']}: counts/offsets")
    for a, b in zip(offs, offs[1:]):
        doc = ids[a:b]
        if not doc or doc[-1] != 299 or 299 in doc[:-1]: problems.append(f"{s['file']}: EOS placement")
        text = subprocess.run([qtx, "tokenizer", "decode", "--tokenizer", f"{d}/tokenizer.json"],
                              input=" ".join(map(str, doc[:-1])).encode(), capture_output=True).stdout
        got[s["split"]].append(text)
    if s["split"] == "train" and len(ids) > idx["shard_tokens"] and s["documents"] > 1:
        problems.append(f"{s['file']}: {len(ids)} tokens > shard_tokens")
# every document exactly once; each split keeps input order
allgot = got["train"] + got["val"]
if sorted(allgot) != sorted(exp): problems.append(f"documents differ ({len(allgot)} vs {len(exp)})")
for split in ("train", "val"):
    pos = [exp.index(t) for t in got[split] if t in exp]
    if pos != sorted(pos): problems.append(f"{split} order")
    if idx[split]["documents"] != len(got[split]): problems.append(f"{split} document count")
print("OK" if not problems else "; ".join(problems[:5]),
      f"train={len(got['train'])} val={len(got['val'])} shards={len(idx['shards'])}")
EOF
}

run_prep() { # dir args...
  local dir=$1
  shift
  "$QTX" prep --tokenizer tok.json -o "$dir" --doc-sep '<|doc|>' -q "$@" "${inputs[@]}" 2> prep.err
}

if run_prep out1 --val-fraction 0.1 --seed 7 --threads 2; then
  v=$(check_dir out1)
  [[ $v == OK* ]] && ok "prep on 5 inputs: documents decode exactly ($v)" || fail "prep out1: $v"
else
  fail "prep out1: $(cat prep.err)"
fi

if run_prep out2 --val-fraction 0.1 --seed 7 --threads 1; then
  same=1
  for f in out1/*.h5; do cmp -s "$f.tokens" "out2/$(basename "$f").tokens" 2>/dev/null ||
    { h5dump -d /tokens -b LE -o "out2/$(basename "$f").tokens" "out2/$(basename "$f")" >/dev/null 2>&1
      cmp -s "$f.tokens" "out2/$(basename "$f").tokens" || same=0; }; done
  cmp -s out1/index.json out2/index.json || same=0
  [ $same = 1 ] && ok "1 and 2 threads give identical shards and index.json" ||
    fail "thread count changes the output"
else
  fail "prep out2: $(cat prep.err)"
fi

if run_prep out3 --val-fraction 0 --shard-tokens 3000; then
  v=$(check_dir out3)
  n=$(ls out3/train_*.h5 | wc -l)
  if [[ $v == OK* ]] && [ "$n" -gt 3 ] && ! ls out3/val_* >/dev/null 2>&1 &&
     [ "$(ls out3 | grep -c '^train_0000[0-9].h5$')" -ge 3 ]; then
    ok "--shard-tokens 3000: $n train shards, no val shard ($v)"
  else
    fail "--shard-tokens: $v, $n shards, $(ls out3)"
  fi
else
  fail "prep out3: $(cat prep.err)"
fi

# --force replaces: the many small shards of out3 are gone afterwards
if run_prep out3 --force --val-fraction 0.2 && [ "$(ls out3/train_*.h5 | wc -l)" = 1 ] &&
   [ "$(ls out3/val_*.h5 | wc -l)" = 1 ] && ! ls -a out3 | grep -q qtx-prep; then
  ok "--force replaces earlier shards"
else
  fail "--force: $(cat prep.err); $(ls -a out3)"
fi

# the tokenizer given may live in the output directory itself (scripts/make_tiny_data.sh)
mkdir -p out4 && cp tok.json out4/tokenizer.json
if "$QTX" prep --tokenizer out4/tokenizer.json -o out4 --doc-sep '<|doc|>' -q "${inputs[@]}" 2> prep.err &&
   cmp -s out4/tokenizer.json tok.json; then
  ok "--tokenizer DIR/tokenizer.json with -o DIR"
else
  fail "tokenizer inside DIR: $(cat prep.err)"
fi

# ---- bad input: exact message, exit 2, nothing left behind --------------------------------------
expect_error() { # label expected-message args...
  local label=$1 want=$2
  shift 2
  rm -rf bad_out
  "$QTX" "$@" > /dev/null 2> err.txt
  local rc=$?
  local got
  got=$(cat err.txt)
  if [ $rc -ne 2 ]; then
    fail "$label: exit $rc, want 2 ($got)"
  elif [ "$got" != "$want" ]; then
    fail "$label: message"$'\n'"  got:  $got"$'\n'"  want: $want"
  elif [ -e bad_out ]; then
    fail "$label: left $(ls -a bad_out | tr '\n' ' ')"
  else
    ok "$label"
  fi
}
printf 'hello\n' > in/ok.txt
: > in/empty.txt
printf '{"text": "fine"}\n{"text": "fine too"}\n{"text": "unterminated\n{"text": 5}\n' > in/bad.jsonl
printf '{"body": "x"}\n[1, 2]\n' > in/nofield.jsonl
printf 'some text to compress\n' | gzip > in/full.gz.tmp && head -c 20 in/full.gz.tmp > in/trunc.txt.gz
printf '{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"vocab": {"a": 0}, "merges": []}}' > noeos.json

P=(prep --tokenizer tok.json -o bad_out -q)
expect_error "missing input" "qtx: error: in/nope.txt: cannot open: No such file or directory" \
  "${P[@]}" in/ok.txt in/nope.txt
expect_error "directory input" "qtx: error: in: is a directory; pass the files in it" "${P[@]}" in
expect_error "empty corpus" "qtx: error: empty corpus: the inputs hold no documents" \
  "${P[@]}" in/empty.txt
expect_error "malformed JSONL names file:line" \
  "qtx: error: in/bad.jsonl:3: not valid JSON; fix the line or pass --skip-bad" \
  "${P[@]}" in/ok.txt in/bad.jsonl
expect_error "JSONL without the field" \
  "qtx: error: in/nofield.jsonl:1: no \"text\" string field; fix the line or pass --skip-bad" \
  "${P[@]}" in/nofield.jsonl
expect_error "--field names the field" \
  "qtx: error: in/nofield.jsonl:2: no \"body\" string field; fix the line or pass --skip-bad" \
  "${P[@]}" --field body in/nofield.jsonl
expect_error "all lines skipped" \
  "qtx: error: empty corpus: the inputs hold no documents (every JSONL line was skipped as malformed)" \
  "${P[@]}" --skip-bad in/nofield.jsonl
expect_error "truncated gzip" "qtx: error: in/trunc.txt.gz: cannot read: unexpected end of file" \
  "${P[@]}" in/trunc.txt.gz
expect_error "missing tokenizer" "qtx: error: nope.json: cannot open: No such file or directory" \
  prep --tokenizer nope.json -o bad_out in/ok.txt
expect_error "tokenizer without EOS" \
  "qtx: error: noeos.json: no <|endoftext|> token; qtx prep ends every document with it (train the tokenizer with qtx tokenizer train)" \
  prep --tokenizer noeos.json -o bad_out in/ok.txt
expect_error "malformed tokenizer.json" "qtx: error: in/ok.txt: invalid JSON near line 1, column 1" \
  prep --tokenizer in/ok.txt -o bad_out in/ok.txt
expect_error "--val-fraction range" "qtx: error: --val-fraction: expected a number in [0, 1), got '1.5'" \
  "${P[@]}" --val-fraction 1.5 in/ok.txt
expect_error "--shard-tokens" "qtx: error: --shard-tokens: expected a positive integer, got '0'" \
  "${P[@]}" --shard-tokens 0 in/ok.txt
expect_error "missing -o" "qtx: error: qtx prep needs -o DIR" prep --tokenizer tok.json in/ok.txt
expect_error "no inputs" "qtx: error: qtx prep needs input files" "${P[@]}"
expect_error "unknown option" "qtx: error: unknown option '--bogus'; see qtx prep --help" \
  "${P[@]}" --bogus in/ok.txt
expect_error "option without value" "qtx: error: --seed needs a value" "${P[@]}" in/ok.txt --seed
mkdir -p keep && "$QTX" prep --tokenizer tok.json -o keep -q in/ok.txt 2>/dev/null
expect_error "existing output needs --force" \
  "qtx: error: keep already holds prepared data (index.json); pass --force to replace it or choose another -o" \
  prep --tokenizer tok.json -o keep -q in/ok.txt
# a failure after some input was fine leaves an existing directory as it was
mkdir -p bad_keep && touch bad_keep/mine.txt
"$QTX" prep --tokenizer tok.json -o bad_keep -q in/ok.txt in/bad.jsonl 2> /dev/null
[ "$(ls -A bad_keep)" = "mine.txt" ] && ok "failure leaves an existing directory untouched" ||
  fail "failure left: $(ls -A bad_keep)"

if "$QTX" prep --tokenizer tok.json -o skip_out -q --skip-bad in/ok.txt in/bad.jsonl 2> prep.err &&
   "$PY" -c "import json,sys; i=json.load(open('skip_out/index.json')); sys.exit(not (i['skipped_lines']==2 and i['train']['documents']+i['val']['documents']==3))"; then
  ok "--skip-bad skips and counts malformed lines"
else
  fail "--skip-bad: $(cat prep.err)"
fi

# ---- tokenizer CLI usage errors and help -------------------------------------------------------
expect_error "train without --vocab-size" "qtx: error: qtx tokenizer train needs --vocab-size N" \
  tokenizer train -o bad_out/t.json in/ok.txt
expect_error "train vocab too small" \
  "qtx: error: vocabulary size 100 must be at least 257 (256 bytes + 1 special tokens) and at most 2^31" \
  tokenizer train --vocab-size 100 -o bad_out/t.json in/ok.txt
expect_error "train bad number" "qtx: error: --vocab-size: expected a positive integer, got '4k'" \
  tokenizer train --vocab-size 4k -o t.json in/ok.txt
expect_error "train empty corpus" "qtx: error: empty corpus: the inputs hold no text" \
  tokenizer train --vocab-size 300 -o bad_out/t.json in/empty.txt
expect_error "encode without --tokenizer" "qtx: error: --tokenizer FILE is required" tokenizer encode in/ok.txt
expect_error "encode missing file" "qtx: error: in/nope.txt: cannot open: No such file or directory" \
  tokenizer encode --tokenizer tok.json in/nope.txt
echo "1 2 x3" > badids.txt
expect_error "decode non-number" \
  "qtx: error: badids.txt: 'x3' (byte 4) is not a token id; decode reads ids separated by spaces" \
  tokenizer decode --tokenizer tok.json badids.txt
echo "1 300" > bigid.txt
expect_error "decode id out of range" \
  "qtx: error: token id 300 (position 1) is not in the vocabulary of tok.json (size 300)" \
  tokenizer decode --tokenizer tok.json bigid.txt
expect_error "unknown tokenizer command" \
  "qtx: error: unknown tokenizer command 'frob'; use train, encode or decode" tokenizer frob
for c in "tokenizer" "tokenizer train" "tokenizer encode" "tokenizer decode" "prep"; do
  # shellcheck disable=SC2086
  if "$QTX" $c --help > help.txt 2>&1 && grep -q '^usage: qtx' help.txt; then ok "qtx $c --help"
  else fail "qtx $c --help"; fi
done
printf 'x<|endoftext|>y' | "$QTX" tokenizer encode --tokenizer tok.json > eos.ids
grep -qw 299 eos.ids && ok "encode maps <|endoftext|> in text to its id" || fail "EOS in text: $(cat eos.ids)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
