/* peak.c: a quick measurement of this rank's fp32 GEMM throughput, the default MFU peak. */
#include <time.h>

#include "check.h"
#include "kernels.h"
#include "peak.h"
#include "sys.h"

double qtx_measure_gemm_flops(void) {
    const int64_t n = 1024;
    float *a = qtx_alloc_big((size_t)(3 * n * n) * sizeof(float));
    float *b = a + n * n, *c = b + n * n;
    for (int64_t i = 0; i < n * n; i++) {
        a[i] = (float)(i % 7) * 0.01f;
        b[i] = (float)(i % 5) * 0.01f;
    }
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = qtx_now_s();
        qtx_sgemm(0, 1, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = qtx_now_s() - t0;
        if (rep > 0 && dt < best) best = dt; /* the first call warms up oneDNN's JIT */
    }
    qtx_free_big(a, (size_t)(3 * n * n) * sizeof(float));
    return 2.0 * (double)n * n * n / best;
}
