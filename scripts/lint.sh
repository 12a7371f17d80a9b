#!/usr/bin/env bash
# lint.sh: clang-format (check only), cppcheck and clang-tidy's static analyzer (.clang-tidy)
# over the C sources; exits non-zero on a finding. clang-tidy reads BUILD_DIR (default build)'s
# compile_commands.json, so it runs after a build.
set -euo pipefail
# nullPointerRedundantCheck is off: cppcheck 2.10 does not see that QTX_CHECK(p, ...) exits
# (qtx_fatal is _Noreturn), so every checked allocation looked like a possible NULL use.
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' '*.cu')
clang-format --dry-run -Werror $files
cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --inline-suppr \
  --suppress=missingIncludeSystem \
  --suppress=nullPointerRedundantCheck \
  -I core -I data -I optim -I parallel -I ckpt -I infer -I launch core data optim parallel ckpt infer launch
build=${BUILD_DIR:-build}
run-clang-tidy -p "$build" -j "$(nproc)" -quiet \
  "$PWD/(core|data|optim|parallel|ckpt|infer|launch)/[^/]*\.c\$" >"$build/clang-tidy.log" 2>&1 ||
  {
    grep -E "(warning|error):" "$build/clang-tidy.log" | sort -u
    echo "lint: clang-tidy found the above (full output: $build/clang-tidy.log)"
    exit 1
  }
