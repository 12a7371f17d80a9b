#!/usr/bin/env bash
# setup.sh: installs every Debian and Python package that building and testing need, then
# builds Release into build/ (idempotent). Usage: scripts/setup.sh [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
DEB_PACKAGES=(
  build-essential cmake pkg-config git clang-format clang-tidy cppcheck
  libdnnl-dev                 # oneDNN: CPU GEMM
  libopenmpi-dev openmpi-bin  # MPI: host collectives, launch
  libhdf5-dev hdf5-tools      # token shards (h5dump to inspect)
  zlib1g-dev                  # deflate, CRC32
  libyaml-dev                 # config
  libpcre2-dev                # GPT-2 pre-tokenizer regex
  libcjson-dev                # tokenizer.json, manifests
  bible-kjv                   # the embedded default corpus: King James Bible (docs/DATA.md)
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user  # NEON kernels are tested under qemu
)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Python packages for the tests that compare against reference implementations.
PY=${PYTHON:-python3}
"$PY" -m pip install --quiet --disable-pip-version-check tokenizers==0.20.3 numpy gguf 2>/dev/null ||
  "$PY" -m pip install --quiet --disable-pip-version-check --break-system-packages tokenizers==0.20.3 numpy gguf

BUILD_TYPE=${BUILD_TYPE:-Release}
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "$@"
cmake --build "$BUILD_DIR" -j"$(nproc)"
