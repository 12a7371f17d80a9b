/* bench_quant.c: GB/s of weight bytes streamed by qtx_qmatmul (core/quant.h) for a
 * matrix-vector product (m = 1, the decode step) or a batch of m activation rows (a prompt),
 * per instruction set the CPU runs, per weight type (f32, f16, q8_0, q4_0 and their repacked
 * in-memory forms q8_0r, q4_0r), on 1 and 2 OpenMP threads. A benchmark, not a test.
 *
 *   bench_quant [rows [n [seconds per measurement [m]]]]     (default 16384 4096 0.3 1)
 *
 * The default matrix (268 MB in f32, 71 MB in q8_0, 38 MB in q4_0) is larger than most
 * last-level caches (32 MiB on the project's earlier VM, not the 480 MiB of its current one),
 * so the figures are what decoding streams from memory; a small matrix measures the kernels
 * from cache.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "quant.h"
#include "sys.h"

int main(int argc, char **argv) {
    const int64_t rows = argc > 1 ? atoll(argv[1]) : 16384;
    const int64_t n = argc > 2 ? atoll(argv[2]) : 4096;
    const double min_s = argc > 3 ? atof(argv[3]) : 0.3;
    const int64_t m = argc > 4 ? atoll(argv[4]) : 1;
    if (rows <= 0 || n <= 0 || n % QTX_QK || min_s <= 0 || m <= 0) {
        fprintf(stderr, "usage: bench_quant [rows [n (a multiple of 32) [seconds [m]]]]\n");
        return 2;
    }
    /* weights ~ N(0, 0.02), activations ~ N(0, 1): Box-Muller over a fixed LCG */
    float *w = qtx_malloc((size_t)(rows * n) * sizeof(float));
    float *x = qtx_malloc((size_t)(m * n) * sizeof(float));
    uint64_t s = 1;
    for (int64_t i = 0; i < rows * n + m * n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        const double u = ((double)(s >> 11) + 1.0) * 0x1p-53;
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        const double v = (double)(s >> 11) * 0x1p-53;
        const float g = (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
        if (i < rows * n)
            w[i] = 0.02f * g;
        else
            x[i - rows * n] = g;
    }
    static const qtx_qtype types[] = {QTX_Q_F32,   QTX_Q_F16,  QTX_Q_Q8_0,
                                      QTX_Q_Q8_0R, QTX_Q_Q4_0, QTX_Q_Q4_0R};
    enum { N_TYPES = sizeof types / sizeof types[0] };
    void *wq[N_TYPES];
    size_t wbytes[N_TYPES];
    for (int t = 0; t < N_TYPES; t++) {
        const qtx_qtype_traits *tr = qtx_qtype_get(types[t]);
        const size_t rb = qtx_qtype_row_bytes(types[t], n);
        wbytes[t] = rb * (size_t)rows;
        wq[t] = qtx_alloc_big(wbytes[t]);
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++)
            tr->quantize_row(w + r * n, (char *)wq[t] + (size_t)r * rb, n);
    }
    float *y = qtx_malloc((size_t)(m * rows) * sizeof(float));
    void *scratch = qtx_malloc(qtx_qmatmul_scratch_bytes(QTX_Q_Q4_0R, n, m));

    printf("bench_quant: Y[%lld, %lld] = X[%lld, %lld] W^T, GB/s of weight bytes (MB:",
           (long long)m, (long long)rows, (long long)m, (long long)n);
    for (int t = 0; t < N_TYPES; t++)
        printf(" %s %.1f", qtx_qtype_get(types[t])->name, (double)wbytes[t] / 1e6);
    printf("); %d cores; best ISA %s\n", qtx_n_cores(), qtx_quant_kernels_best()->name);
    printf("%-12s %-5s %8s %8s %10s\n", "isa", "type", "threads", "GB/s", "us/call");
    for (int isa = 0; isa < QTX_ISA_COUNT; isa++) {
        const qtx_quant_kernels *k = qtx_quant_kernels_for((qtx_isa)isa);
        if (!k) {
            printf("%-12s (not in this build or not supported by this CPU)\n",
                   qtx_isa_name((qtx_isa)isa));
            continue;
        }
        for (int t = 0; t < N_TYPES; t++)
            for (int threads = 1; threads <= 2; threads++) {
                omp_set_num_threads(threads);
                qtx_qmatmul_with(k, types[t], wq[t], rows, n, x, m, y, scratch); /* warm-up */
                long calls = 0;
                const double t0 = qtx_now_s();
                double el;
                do {
                    qtx_qmatmul_with(k, types[t], wq[t], rows, n, x, m, y, scratch);
                    calls++;
                    el = qtx_now_s() - t0;
                } while (el < min_s);
                printf("%-12s %-5s %8d %8.2f %10.1f\n", k->name, qtx_qtype_get(types[t])->name,
                       threads, (double)wbytes[t] * (double)calls / el / 1e9, el / calls * 1e6);
                fflush(stdout);
            }
    }
    for (int t = 0; t < N_TYPES; t++) qtx_free_big(wq[t], wbytes[t]);
    free(w);
    free(x);
    free(y);
    free(scratch);
    return 0;
}
