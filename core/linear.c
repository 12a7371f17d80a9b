/* linear.c: linear layers over qtx_sgemm, and the kernels' thread count: what the oneDNN
 * build (gemm.c) and the standalone GPU-test build (tests/gpu/sgemm_ref.c) share. */
#include <omp.h>

#include "kernels.h"

void qtx_linear_fwd(float *y, const float *x, const float *W, int64_t n, int64_t in, int64_t out,
                    int accumulate) {
    qtx_sgemm(0, 1, n, out, in, 1.0f, x, in, W, in, accumulate ? 1.0f : 0.0f, y, out);
}

void qtx_linear_bwd(float *dx, float *dW, const float *dy, const float *x, const float *W,
                    int64_t n, int64_t in, int64_t out) {
    if (dx) qtx_sgemm(0, 0, n, in, out, 1.0f, dy, out, W, in, 0.0f, dx, in);
    if (dW) qtx_sgemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dW, in);
}

int qtx_num_threads(void) {
    return omp_get_max_threads();
}
