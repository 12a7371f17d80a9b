/* gemm.c: matrix products through oneDNN's sgemm (about 2x OpenBLAS on these cores). */
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include "check.h"
#include "kernels.h"

void qtx_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
               int64_t ldc) {
    if (M == 0 || N == 0) return;
    dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda,
                                  B, ldb, beta, C, ldc);
    QTX_CHECK(st == dnnl_success, "dnnl_sgemm failed (%d) for %lldx%lldx%lld", (int)st,
              (long long)M, (long long)N, (long long)K);
}

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
