#!/usr/bin/env bash
# test_tokenizer_hf.sh: qtx's byte-level BPE against Hugging Face tokenizers on the same
# tokenizer.json: trains with qtx on a multi-megabyte real corpus (the embedded King James Bible,
# docs/DATA.md) and on generated text covering every assigned Unicode code point, then asserts
# identical ids from `qtx tokenizer encode` and tokenizers' encode, loads a tokenizer.json written
# by tokenizers itself, and checks decode round trips.
# Usage: test_tokenizer_hf.sh QTX SOURCE_ROOT. Exit 77 (skip) when python3 lacks tokenizers.
set -uo pipefail
QTX=$(realpath "$1")
SRC=$(realpath "$2")
PY=${PYTHON:-python3}

if ! "$PY" -c "import tokenizers" 2>/dev/null; then
  echo "SKIP: the Python package 'tokenizers' is missing (scripts/setup.sh installs" \
       "tokenizers==0.20.3); nothing to compare against"
  exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/qtx-tok-hf.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# ---- the corpus: the embedded one, else built from the bible-kjv package, else generated
if ls "$SRC"/data/corpus/kjv_*.txt >/dev/null 2>&1; then
  corpus=("$SRC"/data/corpus/kjv_*.txt)
  echo "corpus: $SRC/data/corpus (King James Bible)"
elif bash "$SRC/scripts/make_corpus.sh" "$work/corpus" 2>/dev/null; then
  corpus=("$work"/corpus/kjv_*.txt)
  echo "corpus: built by scripts/make_corpus.sh (King James Bible)"
else
  echo "corpus: the bible-kjv package is missing; generating English-like text instead"
  "$PY" - "$work/gen.txt" <<'EOF'
import random, sys
random.seed(7)
words = ("the of and to in a is that for it as was with be by on not he I this are or his from "
         "at which but have an they you were her she there been one all we their has would when "
         "who will more if no out so said what up its about into than them can only other new "
         "some could time these two may then do first any my now such like our over man me even "
         "most made after also did many before must through back years where much your way well "
         "down should because each just those people Mr how too little state good very make world "
         "still own see men work long get here between both life being under never day same another "
         "know while last might us great old year off come since against go came right used take").split()
out = []
for d in range(3000):
    sent = []
    for s in range(random.randint(5, 40)):
        w = [random.choice(words) for _ in range(random.randint(4, 18))]
        w[0] = w[0].capitalize()
        sent.append(" ".join(w) + random.choice([".", ".", ".", "?", "!", ";", ", 1999."]))
    out.append(" ".join(sent) + "\n")
open(sys.argv[1], "w").write("<|doc|>\n".join(out))
EOF
  corpus=("$work/gen.txt")
fi
cat "${corpus[@]}" > "$work/corpus.txt"
echo "corpus: $(wc -c < "$work/corpus.txt") bytes in ${#corpus[@]} files"

# ---- generated Unicode text: every assigned code point in several contexts, and a random mix
"$PY" - "$work/unicode.txt" "$work/unicode2.txt" <<'EOF'
import random, sys, unicodedata
cps = [c for c in range(0x110000)
       if not 0xD800 <= c < 0xE000 and unicodedata.category(chr(c)) not in ("Cn", "Cs")]
every = "\n".join(f"a{c}{c}b {c}x 1{c} {c}{c} '{c}s {c}  z" for c in map(chr, cps))
ws = ["\t", "\n", "\r", "\x0b", "\x0c", "\x85", "\xa0", "\u1680", "\u2000", "\u2003", "\u200a",
      "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", " ", "  ", "   ", "\r\n", "\x1c", "\x1f",
      "\u200b", "\u180e", "\ufeff"]
words = ["hello", "The", "it", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'",
         "123", "3.14", "x\u00b2", "\u00bd", "\u216b", "\u0661\u0662", "\u65e5\u672c\u8a9e",
         "\u041f\u0440\u0438\u0432\u0435\u0442", "\U0001f389", "\U0001f44d\U0001f3fd",
         "\U0001f468\u200d\U0001f469\u200d\U0001f467", "e\u0301", "caf\u00e9", "<|endoftext|>",
         "<|endoftext", "...", "?!", "@#$%", "\x00", "\x7f", "\ufffd"]
def mix(seed, size):
    r = random.Random(seed)
    out, n = [], 0
    while n < size:
        x = r.random()
        if x < 0.45: s = r.choice(words)
        elif x < 0.75: s = r.choice(ws)
        elif x < 0.9: s = "".join(chr(r.choice(cps)) for _ in range(r.randint(1, 4)))
        else: s = "".join(r.choice(" 'abcXYZ019,.;\n\t") for _ in range(r.randint(1, 6)))
        out.append(s); n += len(s)
    return "".join(out)
open(sys.argv[1], "w", encoding="utf-8", newline="").write(every + mix(1, 1_500_000))
open(sys.argv[2], "w", encoding="utf-8", newline="").write(mix(2, 1_500_000))
EOF

# ---- train with qtx
train() { # out vocab files...
  local out=$1 vocab=$2
  shift 2
  if "$QTX" tokenizer train --vocab-size "$vocab" --doc-sep '<|doc|>' -o "$out" "$@" \
       2> "$work/train.log"; then
    ok "qtx tokenizer train --vocab-size $vocab ($(tail -1 "$work/train.log" | sed 's/.*learned/learned/'))"
  else
    fail "qtx tokenizer train: $(cat "$work/train.log")"
  fi
}
train "$work/tok_corpus.json" 8000 "${corpus[@]}"
train "$work/tok_unicode.json" 30000 "$work/unicode.txt"

# ---- compare ids: qtx encode (2 threads) vs tokenizers' encode of the same text
compare() { # tokenizer text label
  local tok=$1 text=$2 label=$3
  if ! "$QTX" tokenizer encode --tokenizer "$tok" --threads 2 "$text" > "$work/qtx.ids" \
       2> "$work/err"; then
    fail "$label: qtx encode failed: $(cat "$work/err")"
    return
  fi
  local verdict
  verdict=$("$PY" - "$tok" "$text" "$work/qtx.ids" <<'EOF'
import sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
text = open(sys.argv[2], "rb").read().decode("utf-8")
hf = tok.encode(text).ids
q = [int(x) for x in open(sys.argv[3]).read().split()]
if q == hf:
    print(f"OK {len(q)} ids")
else:
    n = next((i for i in range(min(len(q), len(hf))) if q[i] != hf[i]), min(len(q), len(hf)))
    ctx = tok.decode(hf[max(0, n - 4):n + 4])
    print(f"MISMATCH at id {n} of {len(hf)} (qtx {len(q)}): qtx {q[max(0,n-2):n+4]} "
          f"hf {hf[max(0,n-2):n+4]} near {ctx!r}")
EOF
)
  if [[ $verdict == OK* ]]; then ok "$label: identical ids (${verdict#OK })"; else fail "$label: $verdict"; fi
  # decode round trip through qtx
  if "$QTX" tokenizer decode --tokenizer "$tok" "$work/qtx.ids" > "$work/decoded" 2> "$work/err" &&
     cmp -s "$work/decoded" "$text"; then
    ok "$label: qtx decode(qtx encode(x)) == x"
  else
    fail "$label: decode round trip differs $(cat "$work/err")"
  fi
}
compare "$work/tok_corpus.json" "$work/corpus.txt" "corpus tokenizer on the corpus"
compare "$work/tok_corpus.json" "$work/unicode2.txt" "corpus tokenizer on Unicode text"
compare "$work/tok_unicode.json" "$work/unicode.txt" "Unicode tokenizer on its training text"
compare "$work/tok_unicode.json" "$work/unicode2.txt" "Unicode tokenizer on other Unicode text"
compare "$work/tok_unicode.json" "$work/corpus.txt" "Unicode tokenizer on the corpus"
# a tokenizer.json that tokenizers itself trained and wrote (merges as pairs, EOS at id 0)
compare "$SRC/tests/fixtures/tokenizer_tiny.json" "$work/corpus.txt" "tokenizers-made fixture on the corpus"
compare "$SRC/tests/fixtures/tokenizer_tiny.json" "$work/unicode2.txt" "tokenizers-made fixture on Unicode text"

# ---- tokenizers loads qtx's file and decodes qtx's ids to the same text
if "$PY" - "$work/tok_corpus.json" "$work/corpus.txt" <<'EOF'
import sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
text = open(sys.argv[2], encoding="utf-8", newline="").read()[:200000]
assert tok.decode(tok.encode(text).ids) == text
assert tok.get_vocab_size() == 8000, tok.get_vocab_size()
assert tok.token_to_id("<|endoftext|>") == 7999
EOF
then ok "tokenizers reads qtx's tokenizer.json (vocab 8000, <|endoftext|> = 7999) and decodes"
else fail "tokenizers on qtx's tokenizer.json"; fi

# ---- bytes that are not UTF-8 (tokenizers cannot take them): qtx still round-trips them
head -c 300000 /dev/urandom > "$work/random.bin"
if "$QTX" tokenizer encode --tokenizer "$work/tok_corpus.json" "$work/random.bin" |
   "$QTX" tokenizer decode --tokenizer "$work/tok_corpus.json" > "$work/random.out" &&
   cmp -s "$work/random.bin" "$work/random.out"; then
  ok "random bytes round-trip"
else
  fail "random bytes do not round-trip"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
