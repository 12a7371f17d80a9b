/* cuda_kernels.h: the first CUDA kernels of the model (issue #7), fp32, each the device twin
 * of a CPU kernel in core/kernels.h or optim/adamw.h with the same arguments and the same
 * semantics (what is overwritten, what is accumulated), so tests can hold one against the
 * other. Pointers are device memory; `stream` is a cudaStream_t (NULL: the default stream).
 * Every call is asynchronous on its stream and returns 0, or -1 with the CUDA error in `why`
 * when a launch fails.
 *
 * Determinism: no atomics; every reduction has a fixed order (a block's tree over a row, or
 * one thread per column walking the rows in order), so results repeat run to run on one GPU.
 * Built only with -DQTX_CUDA=ON (the CUDA toolkit present); tests/gpu/ checks each kernel
 * against its CPU reference and skips where no GPU is visible.
 */
#ifndef QTX_CUDA_KERNELS_H
#define QTX_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when a CUDA device is visible; else 0 with the reason (no driver, no device) in why. */
int qtx_cuda_available(char *why, size_t cap);

/* qtx_rmsnorm_fwd: y = x * rstd * w per row of c; rstd[n] saved for backward. */
int qtx_cuda_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int64_t n,
                         int64_t c, float eps, void *stream, char *why, size_t cap);
/* qtx_rmsnorm_bwd: dx += d(rmsnorm)/dx . dy; dw += sum over rows of dy * x * rstd. */
int qtx_cuda_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *rstd,
                         const float *w, int64_t n, int64_t c, void *stream, char *why, size_t cap);
/* qtx_rope: rotates n_heads heads of hd in each row of x (stride ld), row r at position
 * r % T, by the tables [T, hd/2]; inverse applies the transpose (backward). */
int qtx_cuda_rope(float *x, int64_t ld, int64_t n, int T, int n_heads, int hd, const float *cos_t,
                  const float *sin_t, int inverse, void *stream, char *why, size_t cap);
/* qtx_swiglu_fwd / _bwd: gu rows are [gate (f) | up (f)], h = silu(gate) * up; dgu is
 * overwritten. */
int qtx_cuda_swiglu_fwd(float *h, const float *gu, int64_t n, int64_t f, void *stream, char *why,
                        size_t cap);
int qtx_cuda_swiglu_bwd(float *dgu, const float *dh, const float *gu, int64_t n, int64_t f,
                        void *stream, char *why, size_t cap);
/* qtx_embedding_fwd / _bwd: rows [v0, v0 + vl) of the table; ids outside give zero rows and
 * no gradient. Backward accumulates, one thread per column over the rows in order. */
int qtx_cuda_embedding_fwd(float *x, const float *E, const int32_t *tok, int64_t n, int64_t c,
                           int64_t v0, int64_t vl, void *stream, char *why, size_t cap);
int qtx_cuda_embedding_bwd(float *dE, const float *dx, const int32_t *tok, int64_t n, int64_t c,
                           int64_t v0, int64_t vl, void *stream, char *why, size_t cap);
/* y += x over n floats (a residual add). */
int qtx_cuda_add(float *y, const float *x, int64_t n, void *stream, char *why, size_t cap);
/* qtx_adamw_update: one AdamW step (torch semantics, decoupled decay) on fp32 master weights
 * p with moments m, v; t is the 1-based step; grad_scale multiplies every gradient. */
int qtx_cuda_adamw(float *p, const float *g, float *m, float *v, int64_t n, double lr,
                   double weight_decay, double beta1, double beta2, double eps, int64_t t,
                   float grad_scale, void *stream, char *why, size_t cap);
/* qtx_adamw_apply: the same step from its constants (kernels.h qtx_adamw_step, passed as
 * its seven floats in that order). */
int qtx_cuda_adamw_apply(float *p, const float *g, float *m, float *v, int64_t n,
                         const float constants[7], void *stream, char *why, size_t cap);
/* The sum of squares of x[0, n) as QTX_CUDA_SUMSQ_PARTS partial sums in double (device
 * memory), each a fixed-order tree over a fixed slice: summed in order on the host they give
 * the same bits run to run. */
#define QTX_CUDA_SUMSQ_PARTS 256
int qtx_cuda_sum_squares_parts(double *parts, const float *x, int64_t n, void *stream, char *why,
                               size_t cap);

#ifdef __cplusplus
}
#endif

#endif
