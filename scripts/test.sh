#!/usr/bin/env bash
# test.sh: installs what is needed, builds, and runs the whole test suite (CTest).
#   scripts/test.sh              Release build in build/, all tests
#   scripts/test.sh --sanitize   also an ASan + UBSan build in build-asan/, all tests again
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
jobs=$(nproc)

scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$jobs"
scripts/lint.sh

if [ "${1:-}" = "--sanitize" ]; then
  BUILD_TYPE=Sanitize BUILD_DIR=build-asan scripts/setup.sh
  # LeakSanitizer is off: MPI and oneDNN keep process-lifetime allocations.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
fi
