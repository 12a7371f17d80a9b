#!/usr/bin/env bash
# test_quant_neon.sh: the aarch64 NEON kernels of core/quant_neon.c, cross-compiled and run
# under qemu-user: tests/unit/test_core_quant.c built twice, with the dot-product extension
# (sdot) and without it (vmull/vpadal), each a static binary that needs no aarch64 sysroot.
# The test must report the neon kernels as tested (block sums equal to generic bit for bit,
# activation bytes equal to ggml's reference).
# Usage: test_quant_neon.sh QTX SOURCE_ROOT (QTX is unused). Exit 77 (skip) when
# aarch64-linux-gnu-gcc or qemu-aarch64 is missing (scripts/setup.sh installs both).
set -uo pipefail
SRC=$(realpath "$2")
CC=${AARCH64_CC:-aarch64-linux-gnu-gcc}
QEMU=${QEMU_AARCH64:-qemu-aarch64}

for tool in "$CC" "$QEMU"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool is missing (apt-get install gcc-aarch64-linux-gnu qemu-user);" \
         "the NEON kernels are tested under qemu"
    exit 77
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/qtx-neon.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# -std=c17 as the CMake build (GCC then keeps a * b + c unfused, as ggml's reference rounds)
srcs=("$SRC"/core/quant.c "$SRC"/core/quant_generic.c "$SRC"/core/quant_avx2.c
      "$SRC"/core/quant_avx512.c "$SRC"/core/quant_neon.c "$SRC"/core/check.c
      "$SRC"/tests/unit/test_core_quant.c "$SRC"/tests/unit/testutil.c)
for variant in "armv8.2-a+dotprod:sdot" "armv8-a:vmull"; do
  arch=${variant%%:*}
  name=${variant##*:}
  bin="$work/test_core_quant_$name"
  if ! "$CC" -std=c17 -D_GNU_SOURCE -O2 -static -fopenmp -march="$arch" -Wall -Wextra \
       -Wno-unused-parameter -Werror -I"$SRC/core" -I"$SRC/tests/unit" "${srcs[@]}" -lm \
       -o "$bin" 2> "$work/cc.log"; then
    fail "$name: cross-compile for -march=$arch: $(cat "$work/cc.log")"
    continue
  fi
  if OMP_NUM_THREADS=2 "$QEMU" "$bin" > "$work/out.log" 2>&1; then
    if grep -q "^ISAs tested:.* neon" "$work/out.log"; then
      ok "$name (-march=$arch): $(grep '^ISAs tested' "$work/out.log"); $(tail -1 "$work/out.log")"
    else
      fail "$name (-march=$arch): the neon kernels were not tested: $(cat "$work/out.log")"
    fi
  else
    fail "$name (-march=$arch) under $QEMU: $(cat "$work/out.log")"
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
