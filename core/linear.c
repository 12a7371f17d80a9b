/* linear.c: linear layers over qtx_sgemm, and the kernels' thread count: what the oneDNN
 * build (gemm.c) and the standalone GPU-test build (tests/gpu/sgemm_ref.c) share. */
#include <omp.h>
#include <stddef.h>

#include "kernels.h"

void qtx_linear_fwd_by(qtx_gemm_fn gemm, void *ctx, float *y, const float *x, const float *W,
                       int64_t n, int64_t in, int64_t out, int accumulate) {
    gemm(ctx, 0, 1, n, out, in, 1.0f, x, in, W, in, accumulate ? 1.0f : 0.0f, y, out);
}

void qtx_linear_bwd_by(qtx_gemm_fn gemm, void *ctx, float *dx, float *dW, const float *dy,
                       const float *x, const float *W, int64_t n, int64_t in, int64_t out) {
    if (dx) gemm(ctx, 0, 0, n, in, out, 1.0f, dy, out, W, in, 0.0f, dx, in);
    if (dW) gemm(ctx, 1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dW, in);
}

static void host_sgemm(void *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc) {
    (void)ctx;
    qtx_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void qtx_linear_fwd(float *y, const float *x, const float *W, int64_t n, int64_t in, int64_t out,
                    int accumulate) {
    qtx_linear_fwd_by(host_sgemm, NULL, y, x, W, n, in, out, accumulate);
}

void qtx_linear_bwd(float *dx, float *dW, const float *dy, const float *x, const float *W,
                    int64_t n, int64_t in, int64_t out) {
    qtx_linear_bwd_by(host_sgemm, NULL, dx, dW, dy, x, W, n, in, out);
}

int qtx_num_threads(void) {
    return omp_get_max_threads();
}
