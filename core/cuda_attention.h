/* cuda_attention.h: causal grouped-query attention on the GPU, fp32, flash-style (issue #7):
 * the device twin of qtx_attention_fwd / qtx_attention_bwd (core/kernels.h), same layouts:
 * qkv rows [q (H hd) | k (KV hd) | v (KV hd)], out [B T, H hd], lse [B, H, T].
 *
 * Forward: a warp per query row, eight rows per block sharing 32-key tiles of K and V in
 * shared memory; the softmax is online (running max and sum), so only the log-sum-exp of
 * each row is kept and no T x T tensor exists. Backward recomputes the probabilities from it:
 * one kernel forms D = rowsum(dO * O), one dQ (a warp per query row over its keys), one dK
 * and dV (a warp per key row over the query rows of every head of its group). Each output is
 * written by one warp in a fixed order, with no atomics: results repeat bit for bit.
 *
 * These are the correctness baseline (CUDA cores, fp32); the tensor-core kernel that the
 * MFU target needs is tuned against them on a GPU. head_dim must be a multiple of 32, at most
 * QTX_CUDA_ATT_MAX_HD. Calls are asynchronous on `stream` (a cudaStream_t; NULL: default) and
 * return 0, or -1 with the reason in why.
 */
#ifndef QTX_CUDA_ATTENTION_H
#define QTX_CUDA_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QTX_CUDA_ATT_MAX_HD 128

int qtx_cuda_attention_fwd(float *out, float *lse, const float *qkv, int B, int T, int H, int KV,
                           int hd, void *stream, char *why, size_t cap);
/* dqkv (qkv's layout) is overwritten; scratch holds B H T floats. */
int qtx_cuda_attention_bwd(float *dqkv, const float *dout, const float *qkv, const float *out,
                           const float *lse, float *scratch, int B, int T, int H, int KV, int hd,
                           void *stream, char *why, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
