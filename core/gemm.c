/* gemm.c: matrix products through oneDNN's sgemm (about 2x OpenBLAS on these cores). */
#include <oneapi/dnnl/dnnl.h>

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
