/* sgemm_ref.c: qtx_sgemm of core/kernels.h as a plain loop with double sums, for the
 * standalone GPU-test build (scripts/build_gpu_tests.sh) on machines without oneDNN.
 * Slow, and only a reference: the CMake build links core/gemm.c (oneDNN) instead. */
#include <stdint.h>

#include "kernels.h"

void qtx_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
               int64_t ldc) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++)
                s += (double)(trans_a ? A[k * lda + i] : A[i * lda + k]) *
                     (double)(trans_b ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = (float)(alpha * s + (beta != 0.0f ? beta * C[i * ldc + j] : 0.0f));
        }
}
