#!/usr/bin/env bash
# build_gpu_tests.sh: builds the GPU tests (tests/gpu/) with nvcc alone, for a machine that has
# the CUDA toolkit (nvcc, cudart; cuBLASLt is opened at run time) but none of the Debian libraries the full build
# needs: the CUDA kernels, the CPU kernels they are held against (core/norm_rope_swiglu.c,
# core/attention.c, core/head_xent.c, the model on the CPU backend, optim/adamw.c), and a plain
# reference sgemm in place of oneDNN's (tests/gpu/sgemm_ref.c).
#   scripts/build_gpu_tests.sh [OUT_DIR]        (default build-gpu; ARCH default 90)
# then: (cd SOURCE_ROOT && OUT_DIR/test_gpu_kernels && OUT_DIR/test_gpu_train &&
#        OUT_DIR/test_gpu_infer)
#       each exits 0 pass, 1 fail, 77 no GPU
# It also builds OUT_DIR/bench_cuda_step (bench/bench_cuda_step.c); scripts/gpu_check.sh runs
# both.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$src/build-gpu}" && cd "${1:-$src/build-gpu}" && pwd)
arch=${ARCH:-90}
NVCC=${NVCC:-nvcc}
inc=(-I"$src/core" -I"$src/optim" -I"$src/infer" -I"$src/data" -I"$src/tests/unit")
common=(-O2 -std=c++17 -gencode "arch=compute_$arch,code=sm_$arch" -Xcompiler -fopenmp)
# C sources go through nvcc's host compiler as C (-x c); the .cu files as CUDA.
cflags=(-O2 -std=c17 -D_GNU_SOURCE -fopenmp)
cc() { # cc SOURCE.c: its object in $out
  "$NVCC" -x c -ccbin "${CC:-gcc}" "${inc[@]}" -Xcompiler "$(IFS=,; echo "${cflags[*]}")" \
    -c "$src/$1" -o "$out/$(basename "${1%.c}").o"
}
objs=()
for f in core/norm_rope_swiglu.c core/attention.c core/head_xent.c core/model.c core/params.c \
         core/model_config.c core/rng.c core/linear.c core/backend_cpu.c core/cuda_backend.c \
         core/check.c core/sys.c core/bf16.c core/quant.c core/quant_generic.c core/quant_avx2.c \
         core/quant_avx512.c core/quant_neon.c core/adamw_kernel.c optim/adamw.c \
         optim/schedule.c core/log.c infer/infer_model.c infer/kv_cache.c \
         infer/cuda_infer_model.c tests/gpu/sgemm_ref.c; do
  cc "$f"
  objs+=("$out/$(basename "${f%.c}").o")
done
cc tests/unit/testutil.c
cc tests/gpu/test_gpu_kernels.c
cc tests/gpu/test_gpu_train.c
cc tests/gpu/test_gpu_infer.c
cc bench/bench_cuda_step.c
for f in core/cuda_kernels.cu core/cuda_gemm.cu core/cuda_quant.cu core/cuda_attention.cu \
         core/cuda_xent.cu core/cuda_infer.cu; do
  o="$out/$(basename "${f%.cu}").o"
  "$NVCC" "${common[@]}" "${inc[@]}" -c "$src/$f" -o "$o"
  objs+=("$o")
done
"$NVCC" "${common[@]}" "${objs[@]}" "$out/testutil.o" "$out/test_gpu_kernels.o" -ldl -lm \
  -o "$out/test_gpu_kernels"
"$NVCC" "${common[@]}" "${objs[@]}" "$out/testutil.o" "$out/test_gpu_train.o" -ldl -lm \
  -o "$out/test_gpu_train"
"$NVCC" "${common[@]}" "${objs[@]}" "$out/testutil.o" "$out/test_gpu_infer.o" -ldl -lm \
  -o "$out/test_gpu_infer"
"$NVCC" "${common[@]}" "${objs[@]}" "$out/bench_cuda_step.o" -ldl -lm -o "$out/bench_cuda_step"
echo "built $out/test_gpu_kernels, test_gpu_train, test_gpu_infer and bench_cuda_step (sm_$arch); run them from $src"
