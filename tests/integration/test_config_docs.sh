#!/usr/bin/env bash
# test_config_docs.sh: docs/CONFIG.md is exactly what `qtx config --docs` prints, so the
# committed reference cannot drift from the schema table (launch/config_schema.c).
# To update it: qtx config --docs > docs/CONFIG.md
# Usage: test_config_docs.sh QTX SOURCE_ROOT
set -uo pipefail
QTX=$(realpath "$1")
SRC=$(realpath "$2")

generated=$(mktemp "${TMPDIR:-/tmp}/qtx-config-docs.XXXXXX")
trap 'rm -f "$generated"' EXIT
if ! "$QTX" config --docs >"$generated"; then
  echo "FAIL: qtx config --docs exited with status $?"
  echo "0 passed, 1 failed"
  exit 1
fi
if diff -u "$SRC/docs/CONFIG.md" "$generated"; then
  echo "1 passed, 0 failed"
else
  echo "FAIL: docs/CONFIG.md is out of date; regenerate it with: qtx config --docs > docs/CONFIG.md"
  echo "0 passed, 1 failed"
  exit 1
fi
