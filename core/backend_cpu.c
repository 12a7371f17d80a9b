/* backend_cpu.c: the CPU backend (core/backend.h): kernels.h on host memory from
 * qtx_alloc_big. Each entry forwards to its kernel unchanged, so a model on this backend
 * computes exactly what it computed before backends existed. */
#include <string.h>

#include "backend.h"
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
