/* cuda_xent.h: softmax cross-entropy over a chunk of logits on the GPU (issue #7), the device
 * twin of the loss half of qtx_head_xent (core/head_xent.c): the output head's GEMMs run on
 * cuBLASLt (cuda_gemm.h); these kernels turn a chunk of logits [rows, vl] (vocabulary rows
 * [v0, v0 + vl) of a tensor-parallel head) into per-row losses and, in place, the gradient of
 * the loss, so no probability tensor is kept beside the logits. The three steps are separate
 * so that tensor parallelism can all-reduce between them, as the CPU path does: row maxima
 * (then a MAX all-reduce), sums of exponentials with the target logits (then a SUM
 * all-reduce over rsum[0, 2 rows)), then losses and gradient.
 *
 * A block per row, a fixed tree order in every reduction, no atomics: runs repeat bit for
 * bit. Calls are asynchronous on `stream` and return 0, or -1 with the reason in why.
 */
#ifndef QTX_CUDA_XENT_H
#define QTX_CUDA_XENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* rmax[rows] = the row maxima of logits. */
int qtx_cuda_xent_max(float *rmax, const float *logits, int64_t rows, int64_t vl, void *stream,
                      char *why, size_t cap);
/* rsum[i] = sum_j exp(logits[i, j] - rmax[i]); rsum[rows + i] = the target logit when
 * targets[i] - v0 is in [0, vl), else 0. */
int qtx_cuda_xent_sum(float *rsum, const float *logits, const float *rmax, const int32_t *targets,
                      int64_t rows, int64_t vl, int64_t v0, void *stream, char *why, size_t cap);
/* loss[i] = log(rsum[i]) + rmax[i] - rsum[rows + i]; with grad, logits become
 * grad_scale * (softmax - one_hot(target)). */
int qtx_cuda_xent_finish(float *loss, float *logits, const float *rmax, const float *rsum,
                         const int32_t *targets, int64_t rows, int64_t vl, int64_t v0,
                         float grad_scale, int grad, void *stream, char *why, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
