/* bench_membw.c: the memory read bandwidth decoding can hope for, per thread count: GB/s of
 * streaming reads over a buffer (as a decode step streams every weight once), best of several
 * passes. Far larger than the last-level cache it measures DRAM; the size of a model's
 * weights, what streaming those bytes again and again can reach, caches included.
 * bench_infer.sh turns it into each model's decode bound (weight bytes per token / GB/s). A
 * benchmark, not a test.
 *
 *   bench_membw [MiB [passes [threads]]]    (default 1024 MiB, 5 passes; threads 1 .. cores,
 *                                            or only the count given)
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sys.h"

int main(int argc, char **argv) {
    const size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
    const int passes = argc > 2 ? atoi(argv[2]) : 5;
    const int only = argc > 3 ? atoi(argv[3]) : 0;
    if (mib < 1 || passes < 1 || only < 0) {
        fprintf(stderr, "usage: bench_membw [MiB (>= 1) [passes [threads]]]\n");
        return 2;
    }
    const size_t bytes = mib << 20, n = bytes / sizeof(uint64_t); /* a multiple of 4 vectors */
    uint64_t *a = qtx_alloc_big(bytes);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = i; /* touched by the threads that read it */
    printf("bench_membw: %zu MiB, best of %d passes\nthreads GB/s\n", mib, passes);
    /* 32-byte vectors (GCC's vector extension: AVX2 loads here, NEON pairs on aarch64), four
     * independent sums: the loads, not an add chain, set the pace */
    typedef uint64_t v4 __attribute__((vector_size(32)));
    const v4 *va = (const v4 *)a;
    const size_t nv = bytes / sizeof(v4);
    uint64_t sink = 0;
    for (int t = only ? only : 1; t <= (only ? only : qtx_n_cores()); t++) {
        omp_set_num_threads(t);
        double best = 0.0;
        for (int p = 0; p < passes; p++) {
            const double t0 = qtx_now_s();
            uint64_t s = 0;
#pragma omp parallel reduction(+ : s)
            {
                v4 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
#pragma omp for schedule(static)
                for (size_t i = 0; i < nv; i += 4) {
                    s0 += va[i];
                    s1 += va[i + 1];
                    s2 += va[i + 2];
                    s3 += va[i + 3];
                }
                const v4 v = s0 + s1 + s2 + s3;
                s += v[0] + v[1] + v[2] + v[3];
            }
            const double gbs = (double)bytes / (qtx_now_s() - t0) / 1e9;
            sink += s;
            if (gbs > best) best = gbs;
        }
        printf("%d %.2f\n", t, best);
    }
    qtx_free_big(a, bytes);
    return sink == 42 ? 1 : 0; /* keeps the sums alive */
}
