#!/usr/bin/env bash
# torch_env.sh: runs bench/torch_train.py (the PyTorch baseline) under the environment
# PyTorch's CPU performance guide recommends, as far as it helps on this machine:
#   bench/torch_env.sh --dim 256 --n-layers 4 --n-heads 8 --n-kv-heads 4 --ffn 768 \
#       --vocab 4096 --seq 256 --batch 8 --steps 8 --warmup-steps 2 --threads 2
# Debian's PyTorch 1.13 (CPU) is installed for /usr/bin/python3, so that is what runs it.
# Needs: libopenblas0-openmp (or -pthread) and libjemalloc2 (apt-get install ...).
# Measured on the 2-core dev machine (tiny config, 2 threads, tokens/s, +-5% run to run):
# reference BLAS 190; OpenBLAS 4300-5000; + allocator that keeps its pages 5500-5600;
# + AVX-512 ATen kernels 5650-5900. Each choice below says what it did.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# Threads: the intra-op pool gets exactly the cores asked for (torch_train.py also calls
# torch.set_num_threads); OMP_NUM_THREADS sizes the GNU OpenMP pool that ATen and OpenBLAS
# share, MKL_NUM_THREADS is for builds with MKL (this Debian build has none).
threads=2
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --threads) threads=${args[i + 1]:-2} ;;
    --threads=*) threads=${args[i]#--threads=} ;;
  esac
done
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads

# BLAS: every nn.Linear is an sgemm through libblas.so.3. Debian's default alternative can be
# the netlib reference BLAS (25x slower here), so point the loader at OpenBLAS explicitly,
# preferring its OpenMP build: it shares PyTorch's GNU OpenMP pool instead of starting a
# second set of spinning threads.
multiarch=/usr/lib/x86_64-linux-gnu
[ -d /usr/lib/aarch64-linux-gnu ] && [ ! -d "$multiarch" ] && multiarch=/usr/lib/aarch64-linux-gnu
blas=
for d in "$multiarch/openblas-openmp" "$multiarch/openblas-pthread"; do
  if [ -e "$d/libblas.so.3" ]; then blas=$d; break; fi
done
if [ -n "$blas" ]; then
  export LD_LIBRARY_PATH=$blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
else
  echo "torch_env.sh: no OpenBLAS found (apt-get install libopenblas0-openmp); PyTorch will" \
    "use whatever libblas.so.3 is, possibly the very slow reference BLAS" >&2
fi
# OpenBLAS 0.3.21 does not recognise some AVX-512 CPUs (AMD Zen 4) and falls back to AVX2
# kernels; SkylakeX selects its AVX-512 sgemm (no change where it already picks Cooperlake).
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
  # ATen's own kernels (softmax, elementwise, AdamW's foreach ops) default to AVX2 in this
  # build; the AVX-512 ones are compiled in and measured 2-5% faster per step here.
  export ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-avx512}
fi

# Allocator. What matters is not returning freed pages to the kernel: every step frees and
# reallocates hundreds of MB of activations, and a first touch costs ~11 us per 4 KiB page
# here (default glibc: ~500k page faults and ~10% of the time for 8 tiny steps).
# jemalloc (the guide's choice) with the guide's MALLOC_CONF, except background_thread: its
# purging thread competes with the 2 compute threads and cost 8% (5200 vs 5650 tokens/s).
#   oversize_threshold:1       large allocations from a dedicated arena, reused as is
#   dirty/muzzy_decay_ms:-1    never give freed pages back (no refaulting)
#   thp:always, metadata_thp   2 MiB pages (THP here is 'madvise', so jemalloc must ask)
# Without jemalloc, glibc does as well when told to keep big blocks on the heap (no mmap
# per allocation, no trimming) and to madvise huge pages: measured equal within noise.
jemalloc=$multiarch/libjemalloc.so.2
if [ -z "${QTX_TORCH_NO_JEMALLOC:-}" ] && [ -e "$jemalloc" ]; then
  export LD_PRELOAD=$jemalloc${LD_PRELOAD:+:$LD_PRELOAD}
  export MALLOC_CONF=${MALLOC_CONF:-oversize_threshold:1,metadata_thp:auto,thp:always,dirty_decay_ms:-1,muzzy_decay_ms:-1}
else
  export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736
  export MALLOC_TOP_PAD_=1073741824 GLIBC_TUNABLES=glibc.malloc.hugetlb=1
fi

# OpenMP waiting: left at GNU OpenMP's default (spin a while, then sleep). The guide's
# passive waiting (OMP_WAIT_POLICY=PASSIVE: sleep at once after every parallel region) cost
# 25% here (4100-4200 vs 5600 tokens/s): a step is hundreds of short ops and every one then
# pays a futex wake-up. ACTIVE (spin forever) measured the same as the default and burns a
# shared core between steps. KMP_AFFINITY/KMP_BLOCKTIME apply to Intel's OpenMP only;
# the GNU binding equivalent (OMP_PROC_BIND=close OMP_PLACES=cores) changed nothing
# measurable and would pin onto cores other jobs share, so it is not set either.

exec /usr/bin/python3 "$here/torch_train.py" "$@"
