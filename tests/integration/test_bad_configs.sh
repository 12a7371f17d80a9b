#!/usr/bin/env bash
# test_bad_configs.sh: every bad config is refused the same way: `qtx train FILE` exits with
# status exactly 2, prints exactly one expected line on stderr, does not crash or dump core,
# and creates nothing (its train.out_dir, set inside a fresh temp dir, does not exist after).
#
# Each tests/configs/bad/NAME.yaml starts with
#   # expect: <the exact stderr line>
# optionally followed by
#   # args: <extra command-line arguments, split on spaces>
# It is copied into a fresh temp dir and run from there under its bare name, so messages
# (which name the file) are stable. A few cases without a file are checked at the end.
# Usage: test_bad_configs.sh QTX SOURCE_ROOT
set -uo pipefail
QTX=$(realpath "$1")
SRC=$(realpath "$2")
BAD="$SRC/tests/configs/bad"

work=$(mktemp -d "${TMPDIR:-/tmp}/qtx-bad-configs.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# run_case NAME EXPECTED [ARGS...]: runs `qtx train ARGS...` in $work/NAME (already holding
# whatever files the case needs) and checks status, stderr and that nothing was created.
run_case() {
  local name=$1 expected=$2
  shift 2
  local dir="$work/$name"
  local before
  before=$(cd "$dir" && ls -A | sort)
  local rc=0
  # ulimit -c 0: a crash shows as a signal status below, without leaving a core file.
  (cd "$dir" && ulimit -c 0 && timeout 60 "$QTX" train "$@" --set "train.out_dir=$dir/out" \
    >stdout.txt 2>stderr.txt) || rc=$?
  local err out
  err=$(cat "$dir/stderr.txt")
  out=$(cat "$dir/stdout.txt")
  rm -f "$dir/stdout.txt" "$dir/stderr.txt"
  local after
  after=$(cd "$dir" && ls -A | sort)
  local problems=()
  if [ "$rc" -gt 128 ] && [ "$rc" -ne 124 ]; then
    problems+=("crashed with signal $((rc - 128))")
  elif [ "$rc" -ne 2 ]; then
    problems+=("exit status $rc, expected 2")
  fi
  [ "$err" == "$expected" ] || problems+=("stderr differs:
      got:      $err
      expected: $expected")
  [ -z "$out" ] || problems+=("unexpected stdout: $out")
  [ ! -e "$dir/out" ] || problems+=("train.out_dir was created")
  [ "$before" == "$after" ] || problems+=("files appeared: $(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')")
  compgen -G "$dir/core*" >/dev/null && problems+=("core dump")
  if [ ${#problems[@]} -eq 0 ]; then
    ok
  else
    fail "$name: $(printf '%s; ' "${problems[@]}")"
  fi
}

n_files=0
for f in "$BAD"/*.yaml; do
  name=$(basename "$f")
  n_files=$((n_files + 1))
  first=$(sed -n 1p "$f")
  second=$(sed -n 2p "$f")
  if [[ "$first" != "# expect: "* ]]; then
    fail "$name: first line must be '# expect: <stderr line>'"
    continue
  fi
  expected=${first#"# expect: "}
  args=()
  if [[ "$second" == "# args: "* ]]; then
    read -r -a args <<<"${second#"# args: "}"
  fi
  mkdir -p "$work/$name"
  cp "$f" "$work/$name/"
  run_case "$name" "$expected" "$name" "${args[@]}"
done
if [ "$n_files" -lt 25 ]; then
  fail "only $n_files bad configs in $BAD (expected at least 25)"
fi

# Cases that need no file, or a file that cannot be read.
mkdir -p "$work/missing_file"
run_case missing_file "qtx: error: cannot open 'missing.yaml': No such file or directory" \
  missing.yaml
mkdir -p "$work/directory/cfg.yaml"
run_case directory "qtx: error: cannot read 'cfg.yaml': Is a directory" cfg.yaml
mkdir -p "$work/no_config"
run_case no_config "qtx: error: missing CONFIG.yaml: usage: qtx train CONFIG.yaml [--set section.key=value]... (e.g. qtx train configs/tiny.yaml)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
