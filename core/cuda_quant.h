/* cuda_quant.h: quantized inference kernels on the GPU (issue #7): the q8_0 activation
 * quantizer and matrix-vector products of q8_0 / q4_0 weights (ggml's block layouts,
 * core/quant.h) with q8_0 activations. Block sums are exact int32 (dp4a), as in every CPU
 * path; each block's sum is scaled by d_w d_x and the row's blocks summed in float, so results
 * equal qtx_qmatmul's up to the order of those float additions. Pointers are device memory;
 * stream is a cudaStream_t (NULL: default). Calls return 0, or -1 with the reason in why.
 */
#ifndef QTX_CUDA_QUANT_H
#define QTX_CUDA_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y = q8_0 blocks of x[n] (n % 32 == 0), the same bytes as qtx_quantize_row_q8_0_ref. */
int qtx_cuda_quantize_q8_0(void *y, const float *x, int64_t n, void *stream, char *why, size_t cap);

/* y[rows] = W x for W [rows, n] of type wt (2 = q4_0, 8 = q8_0: ggml's ids) and x as q8_0
 * blocks of n values. */
int qtx_cuda_qmatvec(int wt, const void *W, int64_t rows, int64_t n, const void *xq, float *y,
                     void *stream, char *why, size_t cap);

/* Y[i, :] = W x_i for the m activation rows x_i (q8_0 blocks of n values each, back to back),
 * row i of Y at Y + i * ldy: prompts (m tokens at once; m <= 65535). Each (row, token) is one
 * warp's dot product, as in qtx_cuda_qmatvec: exact block sums, the same bits as it. */
int qtx_cuda_qmatmul(int wt, const void *W, int64_t rows, int64_t n, const void *xq, int64_t m,
                     float *Y, int64_t ldy, void *stream, char *why, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
