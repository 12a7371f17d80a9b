/* cuda_gemm.h: GEMMs on the GPU through cuBLASLt (issue #7): bf16 (or fp32) inputs, fp32
 * accumulation and fp32 output, row-major like qtx_sgemm (core/kernels.h), and the f32 <-> bf16
 * conversions the mixed-precision step needs. Pointers are device memory; stream is a
 * cudaStream_t (NULL: default). Calls return 0, or -1 with the reason in why.
 */
#ifndef QTX_CUDA_GEMM_H
#define QTX_CUDA_GEMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qtx_cuda_gemm qtx_cuda_gemm; /* a cuBLASLt handle and its workspace */

int qtx_cuda_gemm_create(qtx_cuda_gemm **out, size_t workspace_bytes, char *why, size_t cap);
void qtx_cuda_gemm_free(qtx_cuda_gemm *g); /* NULL is fine */

/* C[M, N] = alpha op(A) op(B) + beta C, row-major; A and B bf16 (uint16_t bit patterns), C
 * fp32; op(A) is [M, K] (A^T of a [K, M] A when trans_a), op(B) is [K, N]. */
int qtx_cuda_gemm_bf16(qtx_cuda_gemm *g, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                       float alpha, const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb,
                       float beta, float *C, int64_t ldc, void *stream, char *why, size_t cap);

/* The same in fp32 throughout (CUBLAS_COMPUTE_32F: no TF32), for the fp32 model backend. */
int qtx_cuda_gemm_f32(qtx_cuda_gemm *g, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                      float beta, float *C, int64_t ldc, void *stream, char *why, size_t cap);

/* bf16 from f32, rounding to nearest even (as torch's .to(torch.bfloat16)), and back. */
int qtx_cuda_f32_to_bf16(uint16_t *y, const float *x, int64_t n, void *stream, char *why,
                         size_t cap);
int qtx_cuda_bf16_to_f32(float *y, const uint16_t *x, int64_t n, void *stream, char *why,
                         size_t cap);

#ifdef __cplusplus
}
#endif

#endif
