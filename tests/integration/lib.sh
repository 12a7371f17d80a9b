# lib.sh: what the integration tests share, sourced after `set -uo pipefail`:
#   source "$(dirname "$0")/lib.sh" NAME "$@"     (the test's own arguments: QTX SOURCE_ROOT)
# sets QTX, SRC, PY and MPI; makes a work directory (the current directory from then on,
# removed at exit); counts ok/fail; qtx_dataset VOCAB builds the test corpus (the embedded
# KJV), a byte-level BPE tok.json of VOCAB tokens and shards in data/; qtx_done prints the
# summary and exits with the verdict.
QTX=$(realpath "$2")
SRC=$(realpath "$3")
PY=${PYTHON:-python3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI="mpirun --oversubscribe"
qtx_test_name=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/qtx-$1.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

qtx_dataset() {
  bash "$SRC/scripts/make_corpus.sh" "$work/corpus" >/dev/null 2>&1 || { fail "corpus"; exit 1; }
  "$QTX" tokenizer train --vocab-size "$1" --doc-sep '<|doc|>' -o tok.json corpus/kjv_*.txt 2>/dev/null
  "$QTX" prep --tokenizer tok.json -o data --doc-sep '<|doc|>' --val-fraction 0.05 --seed 1 \
    corpus/kjv_*.txt 2>/dev/null
  ls data/train_*.h5 >/dev/null 2>&1 && ok "dataset" || { fail "dataset"; exit 1; }
}

qtx_done() {
  echo "$qtx_test_name: $passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit
}
