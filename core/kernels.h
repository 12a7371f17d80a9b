/* kernels.h: the CPU kernels of the model, forward and backward, fp32.
 *
 * Tensors are row-major; N = B * T rows of tokens. Each kernel has a PyTorch counterpart
 * in tests/reference/llama_ref.py and is checked against it through the model fixtures.
 * Backward kernels accumulate (+=) into parameter gradients and, where said, into input
 * gradients, so gradient accumulation over micro-batches and residual sums need no copies.
 * Everything is deterministic for a fixed thread count: no atomics, fixed reduction order.
 */
#ifndef QTX_KERNELS_H
#define QTX_KERNELS_H

#include <stdint.h>

/* C[M,N] = alpha op(A) op(B) + beta C, row-major (oneDNN sgemm). */
void qtx_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
               int64_t ldc);

/* y[n, out] = x[n, in] W[out, in]^T (+ y when accumulate). */
void qtx_linear_fwd(float *y, const float *x, const float *W, int64_t n, int64_t in, int64_t out,
                    int accumulate);
/* dx[n, in] = dy[n, out] W[out, in]; dW[out, in] += dy^T x. Either output may be NULL. */
void qtx_linear_bwd(float *dx, float *dW, const float *dy, const float *x, const float *W,
                    int64_t n, int64_t in, int64_t out);

/* A GEMM with qtx_sgemm's arguments on some device; ctx is its owner's. */
typedef void (*qtx_gemm_fn)(void *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                            float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                            float beta, float *C, int64_t ldc);
/* qtx_linear_fwd and qtx_linear_bwd through gemm: the one mapping of the linear layer onto
 * products, for the backends' own GEMMs (CUDA, bf16) as for qtx_sgemm. */
void qtx_linear_fwd_by(qtx_gemm_fn gemm, void *ctx, float *y, const float *x, const float *W,
                       int64_t n, int64_t in, int64_t out, int accumulate);
void qtx_linear_bwd_by(qtx_gemm_fn gemm, void *ctx, float *dx, float *dW, const float *dy,
                       const float *x, const float *W, int64_t n, int64_t in, int64_t out);

/* y = x * rstd * w per row; rstd[n] saved for backward. */
void qtx_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int64_t n, int64_t c,
                     float eps);
/* dx += d(rmsnorm)/dx . dy; dw += sum_n dy * x * rstd. */
void qtx_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *rstd,
                     const float *w, int64_t n, int64_t c);

/* cos/sin tables [max_t, hd/2] for rotating pairs (2i, 2i+1) by pos * theta^(-2i/hd). */
void qtx_rope_tables(float *cos_t, float *sin_t, int max_t, int hd, float theta);
/* Rotates n_heads heads of hd in each row of x (row stride ld), row r at position r % T.
 * inverse = 1 applies the transpose (the backward of the forward rotation). */
void qtx_rope(float *x, int64_t ld, int64_t n, int T, int n_heads, int hd, const float *cos_t,
              const float *sin_t, int inverse);

/* Causal grouped-query attention. qkv rows hold [q (H hd) | k (KV hd) | v (KV hd)].
 * out[n, H hd]; lse[b, h, t] is the log-sum-exp of each softmax row, kept for backward.
 * scratch holds qtx_attention_scratch_floats(T, n_threads) floats and the kernels run on at
 * most n_threads threads, so a later change of the OpenMP thread count cannot overrun it. */
void qtx_attention_fwd(float *out, float *lse, const float *qkv, int B, int T, int H, int KV,
                       int hd, float *scratch, int n_threads);
/* dqkv (same layout as qkv) is overwritten. */
void qtx_attention_bwd(float *dqkv, const float *dout, const float *qkv, const float *out,
                       const float *lse, int B, int T, int H, int KV, int hd, float *scratch,
                       int n_threads);
int64_t qtx_attention_scratch_floats(int T, int n_threads);

/* gu rows are [gate (F) | up (F)]; h = silu(gate) * up. */
void qtx_swiglu_fwd(float *h, const float *gu, int64_t n, int64_t f);
void qtx_swiglu_bwd(float *dgu, const float *dh, const float *gu, int64_t n, int64_t f);

/* Vocabulary-parallel embedding: E holds rows [v0, v0 + vl) of the table. x[n] = E[tok[n] - v0]
 * for ids in range and 0 otherwise (a sum over the TP group completes it); backward
 * dE[tok[n] - v0] += dx[n] for ids in range. Token ids are checked by the caller. */
void qtx_embedding_fwd(float *x, const float *E, const int32_t *tok, int64_t n, int64_t c,
                       int64_t v0, int64_t vl);
void qtx_embedding_bwd(float *dE, const float *dx, const int32_t *tok, int64_t n, int64_t c,
                       int64_t v0, int64_t vl);

/* In-place reductions over the tensor-parallel group; NULL (or a NULL ops pointer) for tp = 1. */
typedef struct qtx_tp_ops {
    void *ctx;
    void (*sum)(void *ctx, float *buf, int64_t n);
    void (*max)(void *ctx, float *buf, int64_t n);
} qtx_tp_ops;

/* Fused output head + softmax cross-entropy over chunks of rows, never holding more than
 * chunk x vl logits (logits_scratch holds chunk * (vl + 3) floats). W holds vocabulary rows
 * [v0, v0 + vl) of the head; with tp, the row max and the sums of exponentials and target
 * logits are reduced over the group, so logits are never gathered (Megatron's
 * vocab-parallel cross-entropy). Returns the summed loss (double), the same on every TP rank.
 * With dx: dx = d(loss * grad_scale)/dx, a partial sum over the TP group's vocabulary slices
 * (the caller sums it), and dW += the head's gradient. */
double qtx_head_xent(float *dx, float *dW, const float *x, const float *W, const int32_t *targets,
                     int64_t n, int64_t c, int64_t vl, int64_t v0, float grad_scale,
                     float *logits_scratch, int64_t chunk, const qtx_tp_ops *tp);

/* One AdamW step's constants, computed once per step on the host in double (optim/adamw.c):
 * g' = g * grad_scale; m = beta1 m + (1 - beta1) g'; v = beta2 v + (1 - beta2) g'^2;
 * p = p * decay - step * m / (sqrt(v) * inv_sqrt_bc2 + eps). */
typedef struct qtx_adamw_step {
    float beta1, beta2, eps;
    float step;         /* lr / (1 - beta1^t) */
    float inv_sqrt_bc2; /* 1 / sqrt(1 - beta2^t) */
    float decay;        /* 1 - lr * weight_decay (1 for tensors without decay) */
    float grad_scale;   /* clipping */
} qtx_adamw_step;
void qtx_adamw_apply(float *p, const float *g, float *m, float *v, int64_t n,
                     const qtx_adamw_step *s);

/* Sum of squares of g[0, n), in double, in an order independent of the thread count. */
double qtx_sum_squares(const float *g, int64_t n);

/* Number of threads kernels will use (OpenMP). */
int qtx_num_threads(void);

#endif
