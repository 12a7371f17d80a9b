/* backend_cpu.c: the CPU backend (core/backend.h): kernels.h on host memory from
 * qtx_alloc_big. Each entry forwards to its kernel unchanged, so a model on this backend
 * computes exactly what it computed before backends existed. The staged variants say their
 * memory is a device's; the bf16 one also rounds its products' operands as the CUDA backend's
 * bf16 products do, so that path (the parameters' bf16 copy included) runs without a GPU. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bf16.h"
#include "check.h"

static void *cpu_alloc(qtx_backend *be, size_t bytes) {
    (void)be;
    return qtx_alloc_big(bytes); /* zeroed (pre-touched) */
}
static void cpu_free(qtx_backend *be, void *p, size_t bytes) {
    (void)be;
    qtx_free_big(p, bytes);
}
static void cpu_zero(qtx_backend *be, void *p, size_t bytes) {
    (void)be;
    memset(p, 0, bytes);
}
static void cpu_copy(qtx_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (dst != src) memcpy(dst, src, bytes);
}

static void linear_fwd(qtx_backend *be, float *y, const float *x, const float *W, int64_t n,
                       int64_t in, int64_t out, int accumulate) {
    (void)be;
    qtx_linear_fwd(y, x, W, n, in, out, accumulate);
}
static void linear_bwd(qtx_backend *be, float *dx, float *dW, const float *dy, const float *x,
                       const float *W, int64_t n, int64_t in, int64_t out) {
    (void)be;
    qtx_linear_bwd(dx, dW, dy, x, W, n, in, out);
}
static void rmsnorm_fwd(qtx_backend *be, float *y, float *rstd, const float *x, const float *w,
                        int64_t n, int64_t c, float eps) {
    (void)be;
    qtx_rmsnorm_fwd(y, rstd, x, w, n, c, eps);
}
static void rmsnorm_bwd(qtx_backend *be, float *dx, float *dw, const float *dy, const float *x,
                        const float *rstd, const float *w, int64_t n, int64_t c) {
    (void)be;
    qtx_rmsnorm_bwd(dx, dw, dy, x, rstd, w, n, c);
}
static void rope(qtx_backend *be, float *x, int64_t ld, int64_t n, int T, int n_heads, int hd,
                 const float *cos_t, const float *sin_t, int inverse) {
    (void)be;
    qtx_rope(x, ld, n, T, n_heads, hd, cos_t, sin_t, inverse);
}
static int64_t attention_scratch_floats(qtx_backend *be, int B, int T, int H) {
    (void)B, (void)H;
    return qtx_attention_scratch_floats(T, be->n_threads);
}
static void attention_fwd(qtx_backend *be, float *out, float *lse, const float *qkv, int B, int T,
                          int H, int KV, int hd, float *scratch) {
    qtx_attention_fwd(out, lse, qkv, B, T, H, KV, hd, scratch, be->n_threads);
}
static void attention_bwd(qtx_backend *be, float *dqkv, const float *dout, const float *qkv,
                          const float *out, const float *lse, int B, int T, int H, int KV, int hd,
                          float *scratch) {
    qtx_attention_bwd(dqkv, dout, qkv, out, lse, B, T, H, KV, hd, scratch, be->n_threads);
}
static void swiglu_fwd(qtx_backend *be, float *h, const float *gu, int64_t n, int64_t f) {
    (void)be;
    qtx_swiglu_fwd(h, gu, n, f);
}
static void swiglu_bwd(qtx_backend *be, float *dgu, const float *dh, const float *gu, int64_t n,
                       int64_t f) {
    (void)be;
    qtx_swiglu_bwd(dgu, dh, gu, n, f);
}
static void embedding_fwd(qtx_backend *be, float *x, const float *E, const int32_t *tok, int64_t n,
                          int64_t c, int64_t v0, int64_t vl) {
    (void)be;
    qtx_embedding_fwd(x, E, tok, n, c, v0, vl);
}
static void embedding_bwd(qtx_backend *be, float *dE, const float *dx, const int32_t *tok,
                          int64_t n, int64_t c, int64_t v0, int64_t vl) {
    (void)be;
    qtx_embedding_bwd(dE, dx, tok, n, c, v0, vl);
}
static void add(qtx_backend *be, float *y, const float *x, int64_t n) {
    (void)be;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}
static double head_xent(qtx_backend *be, float *dx, float *dW, const float *x, const float *W,
                        const int32_t *targets, int64_t n, int64_t c, int64_t vl, int64_t v0,
                        float grad_scale, float *logits_scratch, int64_t chunk,
                        const qtx_tp_ops *tp) {
    (void)be;
    return qtx_head_xent(dx, dW, x, W, targets, n, c, vl, v0, grad_scale, logits_scratch, chunk,
                         tp);
}

static void adamw(qtx_backend *be, float *p, const float *g, float *m, float *v, int64_t n,
                  const qtx_adamw_step *s) {
    (void)be;
    qtx_adamw_apply(p, g, m, v, n, s);
}
static double sum_squares(qtx_backend *be, const float *x, int64_t n) {
    (void)be;
    return qtx_sum_squares(x, n);
}

qtx_backend qtx_backend_cpu(int n_threads) {
    return (qtx_backend){.name = "cpu",
                         .host_memory = 1,
                         .n_threads = n_threads,
                         .alloc = cpu_alloc,
                         .free = cpu_free,
                         .zero = cpu_zero,
                         .copy = cpu_copy,
                         .to_device = cpu_copy,
                         .to_host = cpu_copy,
                         .linear_fwd = linear_fwd,
                         .linear_bwd = linear_bwd,
                         .rmsnorm_fwd = rmsnorm_fwd,
                         .rmsnorm_bwd = rmsnorm_bwd,
                         .rope = rope,
                         .attention_scratch_floats = attention_scratch_floats,
                         .attention_fwd = attention_fwd,
                         .attention_bwd = attention_bwd,
                         .swiglu_fwd = swiglu_fwd,
                         .swiglu_bwd = swiglu_bwd,
                         .embedding_fwd = embedding_fwd,
                         .embedding_bwd = embedding_bwd,
                         .add = add,
                         .head_xent = head_xent,
                         .adamw = adamw,
                         .sum_squares = sum_squares};
}

qtx_backend qtx_backend_cpu_staged(int n_threads) {
    qtx_backend be = qtx_backend_cpu(n_threads);
    be.name = "staged";
    be.host_memory = 0;
    return be;
}

/* ---- staged with bf16 products ---- */

typedef struct staged_bf16 {
    int keep_copy;
    qtx_bf16_params params; /* copy: the rounded parameters, as floats */
    float *op[2];           /* the two rounded operands of a product; grow on the first step */
    size_t op_n[2];
} staged_bf16;

static staged_bf16 *bf16_ctx(qtx_backend *be) {
    return (staged_bf16 *)be->ctx;
}

/* The operand A (rows x cols, row stride ld) rounded to bf16: from the parameters' copy
 * (refreshed first if stale) when A lies in them, else rounded into scratch `slot`. */
static const float *rounded(staged_bf16 *s, int slot, const float *A, int64_t rows, int64_t cols,
                            int64_t ld) {
    const int64_t span = (rows - 1) * ld + cols;
    const int64_t at = qtx_bf16_params_find(&s->params, A, span);
    if (at >= 0) {
        if (s->params.stale) {
            qtx_bf16_round(s->params.copy, s->params.base, s->params.n);
            s->params.stale = 0;
        }
        return (const float *)s->params.copy + at;
    }
    if ((size_t)span > s->op_n[slot]) {
        qtx_free_big(s->op[slot], s->op_n[slot] * sizeof(float));
        s->op[slot] = qtx_alloc_big((size_t)span * sizeof(float));
        s->op_n[slot] = (size_t)span;
    }
    qtx_bf16_round(s->op[slot], A, span);
    return s->op[slot];
}

/* qtx_sgemm with A and B rounded to bf16, summed in fp32 (the CUDA backend's sgemm); ctx is
 * the backend. */
static void sgemm_bf16(void *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc) {
    staged_bf16 *s = bf16_ctx(ctx);
    const float *a = rounded(s, 0, A, ta ? K : M, ta ? M : K, lda);
    const float *b = rounded(s, 1, B, tb ? N : K, tb ? K : N, ldb);
    qtx_sgemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, C, ldc);
}

static void bf16_linear_fwd(qtx_backend *be, float *y, const float *x, const float *W, int64_t n,
                            int64_t in, int64_t out, int accumulate) {
    qtx_linear_fwd_by(sgemm_bf16, be, y, x, W, n, in, out, accumulate);
}
static void bf16_linear_bwd(qtx_backend *be, float *dx, float *dW, const float *dy, const float *x,
                            const float *W, int64_t n, int64_t in, int64_t out) {
    qtx_linear_bwd_by(sgemm_bf16, be, dx, dW, dy, x, W, n, in, out);
}
static double bf16_head_xent(qtx_backend *be, float *dx, float *dW, const float *x, const float *W,
                             const int32_t *targets, int64_t n, int64_t c, int64_t vl, int64_t v0,
                             float grad_scale, float *logits_scratch, int64_t chunk,
                             const qtx_tp_ops *tp) {
    staged_bf16 *s = bf16_ctx(be);
    const float *xr = rounded(s, 0, x, n, c, c), *wr = rounded(s, 1, W, vl, c, c);
    return qtx_head_xent(dx, dW, xr, wr, targets, n, c, vl, v0, grad_scale, logits_scratch, chunk,
                         tp);
}

/* The writes of this backend: each marks the parameters' copy stale where it lands in them. */
static void bf16_zero(qtx_backend *be, void *p, size_t bytes) {
    qtx_bf16_params_touch(&bf16_ctx(be)->params, p, bytes);
    memset(p, 0, bytes);
}
static void bf16_copy(qtx_backend *be, void *dst, const void *src, size_t bytes) {
    qtx_bf16_params_touch(&bf16_ctx(be)->params, dst, bytes);
    if (dst != src) memcpy(dst, src, bytes);
}
static void bf16_adamw(qtx_backend *be, float *p, const float *g, float *m, float *v, int64_t n,
                       const qtx_adamw_step *st) {
    qtx_bf16_params_touch(&bf16_ctx(be)->params, p, (size_t)n * sizeof(float));
    qtx_adamw_apply(p, g, m, v, n, st);
}

static void bf16_bind_params(qtx_backend *be, const float *p, int64_t n) {
    staged_bf16 *s = bf16_ctx(be);
    if (n == 0 && p != s->params.base) return; /* another buffer than the bound one goes */
    if (s->params.copy) qtx_free_big(s->params.copy, (size_t)s->params.n * sizeof(float));
    s->params = (qtx_bf16_params){.base = p, .n = n, .stale = 1};
    if (s->keep_copy && p && n > 0) s->params.copy = qtx_alloc_big((size_t)n * sizeof(float));
}
static void bf16_params_changed(qtx_backend *be) {
    bf16_ctx(be)->params.stale = 1;
}

qtx_backend qtx_backend_cpu_staged_bf16(int n_threads, int keep_copy) {
    qtx_backend be = qtx_backend_cpu_staged(n_threads);
    staged_bf16 *s = qtx_calloc(1, sizeof *s);
    s->keep_copy = keep_copy;
    be.name = "staged-bf16";
    be.ctx = s;
    be.zero = bf16_zero;
    be.copy = bf16_copy;
    be.to_device = bf16_copy;
    be.linear_fwd = bf16_linear_fwd;
    be.linear_bwd = bf16_linear_bwd;
    be.head_xent = bf16_head_xent;
    be.adamw = bf16_adamw;
    be.bind_params = bf16_bind_params;
    be.params_changed = bf16_params_changed;
    return be;
}

void qtx_backend_cpu_free(qtx_backend *be) {
    staged_bf16 *s = be->ctx;
    if (s) {
        if (s->params.copy) qtx_free_big(s->params.copy, (size_t)s->params.n * sizeof(float));
        for (int i = 0; i < 2; i++) qtx_free_big(s->op[i], s->op_n[i] * sizeof(float));
        free(s);
    }
    memset(be, 0, sizeof *be);
}
