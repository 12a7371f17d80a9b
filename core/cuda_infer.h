/* cuda_infer.h: the GPU kernels of inference that training has no twin of (issue #7): rows of
 * a (quantized) embedding table, and attention of new tokens over a KV cache whose keys and
 * values are f32 or q8_0 (ggml's blocks of 32 along each head's dimension). With q8_0 keys the
 * scores are integer dot products: the query is quantized to q8_0 per head (the CPU cache's
 * scheme, without its rotation), and each 32-value block's sum is exact int32 (dp4a).
 * Pointers are device memory; stream is a cudaStream_t. Calls return 0, or -1 with the reason
 * in why. Built with QTX_CUDA only; tests/gpu/test_gpu_infer.c holds them against the CPU.
 */
#ifndef QTX_CUDA_INFER_H
#define QTX_CUDA_INFER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* x[i, :] = row tok[i] of table [V, c] of type type (0 = f32, 8 = q8_0, 2 = q4_0: ggml's ids),
 * as floats; tok is device memory, n rows. */
int qtx_cuda_get_rows(float *x, const void *table, int type, int64_t c, const int32_t *tok,
                      int64_t n, void *stream, char *why, size_t cap);

/* Attention of n new tokens at positions p0 .. p0 + n - 1 over a cache holding positions
 * 0 .. p0 + n - 1: q [n, H hd] (after RoPE), out [n, H hd]; K and V hold one row of KV * hd
 * values per position (f32, or q8_0 blocks when k_q8 / v_q8). Causal, grouped-query (head h
 * reads KV head h / (H / KV)), scaled by 1 / sqrt(hd). scores is scratch of n * H * ctx
 * floats, ctx >= p0 + n. hd at most 256, a multiple of 32 with a q8_0 cache. */
int qtx_cuda_kv_attend(float *out, const float *q, int n, int64_t p0, int H, int KV, int hd,
                       const void *K, int k_q8, const void *V, int v_q8, float *scores, int64_t ctx,
                       void *stream, char *why, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
