/* cuda_backend.c: the CUDA backend (core/cuda_backend.h): the table of backend.h over the
 * CUDA kernels, with fp32 or bf16-input GEMMs. A failing call stops the process with the CUDA
 * reason (QTX_CHECK): backend operations fail only when the device does. The loss of head_xent
 * comes back to the host once per chunk (a synchronisation), as the CPU path returns it. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "check.h"
#include "cuda_attention.h"
#include "cuda_backend.h"
#include "cuda_check.h"
#include "cuda_gemm.h"
#include "cuda_kernels.h"
#include "cuda_xent.h"

#define GEMM_WORKSPACE ((size_t)32 << 20)

typedef struct cuda_ctx {
    int device;
    cudaStream_t stream;
    qtx_cuda_gemm *gemm;
    float *host_loss; /* per-row losses of a head chunk, on the host */
    int64_t host_loss_n;
    int use_bf16;                   /* GEMM inputs rounded to bf16 */
    int keep_copy;                  /* weights from params.copy (QTX_CUDA_BF16) */
    qtx_bf16_params params;         /* the parameter buffer and its bf16 copy */
    uint16_t *bf16;                 /* bf16 copies of the other operands */
    size_t bf16_n;                  /* elements */
    double *sumsq_dev, *sumsq_host; /* QTX_CUDA_SUMSQ_PARTS partial sums of squares */
} cuda_ctx;

static cuda_ctx *ctx_of(qtx_backend *be) {
    return (cuda_ctx *)be->ctx;
}

static void *cu_alloc(qtx_backend *be, size_t bytes) {
    void *p = NULL;
    CU(cudaMalloc(&p, bytes ? bytes : 64)); /* 256-byte aligned */
    CU(cudaMemsetAsync(p, 0, bytes, ctx_of(be)->stream));
    /* at startup only: waiting here lets any stream (NCCL's too) use it at once */
    CU(cudaStreamSynchronize(ctx_of(be)->stream));
    return p;
}
static void cu_free(qtx_backend *be, void *p, size_t bytes) {
    (void)bytes;
    CU(cudaStreamSynchronize(ctx_of(be)->stream));
    CU(cudaFree(p));
}
/* zero, copy, to_device and adamw write device memory: each marks the parameters' bf16 copy
 * stale where it lands in them. */
static void cu_zero(qtx_backend *be, void *p, size_t bytes) {
    qtx_bf16_params_touch(&ctx_of(be)->params, p, bytes);
    CU(cudaMemsetAsync(p, 0, bytes, ctx_of(be)->stream));
}
static void cu_copy(qtx_backend *be, void *dst, const void *src, size_t bytes) {
    qtx_bf16_params_touch(&ctx_of(be)->params, dst, bytes);
    if (dst != src)
        CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx_of(be)->stream));
}
/* Synchronous both ways: the host buffer may be reused as soon as these return. */
static void cu_to_device(qtx_backend *be, void *dst, const void *host, size_t bytes) {
    qtx_bf16_params_touch(&ctx_of(be)->params, dst, bytes);
    CU(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, ctx_of(be)->stream));
    CU(cudaStreamSynchronize(ctx_of(be)->stream));
}
static void cu_to_host(qtx_backend *be, void *host, const void *src, size_t bytes) {
    CU(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, ctx_of(be)->stream));
    CU(cudaStreamSynchronize(ctx_of(be)->stream));
}

/* A bf16 copy of the rows x cols matrix at A (row stride ld) in the context's scratch, at
 * element offset `at`; the scratch grows (on the first step) to what the GEMMs need. */
static const uint16_t *to_bf16(cuda_ctx *c, const float *A, int64_t rows, int64_t cols, int64_t ld,
                               size_t at) {
    const int64_t n = (rows - 1) * ld + cols; /* the span the GEMM reads */
    if (at + (size_t)n > c->bf16_n) {
        const size_t want = (at + (size_t)n) * 2; /* room for the other operand too */
        CU(cudaStreamSynchronize(c->stream));
        if (c->bf16) CU(cudaFree(c->bf16));
        CU(cudaMalloc((void **)&c->bf16, want * sizeof(uint16_t)));
        c->bf16_n = want;
    }
    CUDA_OK(qtx_cuda_f32_to_bf16(c->bf16 + at, A, n, c->stream, WHY));
    return c->bf16 + at;
}

/* The operand A in bf16: from the parameters' copy (converted first, in one pass, if stale)
 * when A lies in them, else rounded into the scratch at `at`. */
static const uint16_t *operand_bf16(cuda_ctx *c, const float *A, int64_t rows, int64_t cols,
                                    int64_t ld, size_t at) {
    const int64_t i = qtx_bf16_params_find(&c->params, A, (rows - 1) * ld + cols);
    if (i < 0) return to_bf16(c, A, rows, cols, ld, at);
    if (c->params.stale) {
        CUDA_OK(qtx_cuda_f32_to_bf16(c->params.copy, c->params.base, c->params.n, c->stream, WHY));
        c->params.stale = 0;
    }
    return (const uint16_t *)c->params.copy + i;
}

/* qtx_sgemm's row-major C = alpha op(A) op(B) + beta C on the device: fp32 throughout, or with
 * A and B rounded to bf16 (fp32 accumulation) when the backend was made with bf16. */
static void sgemm(void *be, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc) {
    cuda_ctx *c = ctx_of(be);
    if (!c->use_bf16) {
        CUDA_OK(qtx_cuda_gemm_f32(c->gemm, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                                  c->stream, WHY));
        return;
    }
    const int64_t ra = ta ? K : M, ca = ta ? M : K, rb = tb ? N : K, cb = tb ? K : N;
    const size_t na = (size_t)((ra - 1) * lda + ca);
    const size_t b_at = (na + 127) / 128 * 128; /* B after A, 256-byte aligned */
    /* B first: A's conversion then fits below b_at and never regrows the scratch under B. */
    const uint16_t *b16 = operand_bf16(c, B, rb, cb, ldb, b_at);
    const uint16_t *a16 = operand_bf16(c, A, ra, ca, lda, 0);
    CUDA_OK(qtx_cuda_gemm_bf16(c->gemm, ta, tb, M, N, K, alpha, a16, lda, b16, ldb, beta, C, ldc,
                               c->stream, WHY));
}

static void linear_fwd(qtx_backend *be, float *y, const float *x, const float *W, int64_t n,
                       int64_t in, int64_t out, int accumulate) {
    qtx_linear_fwd_by(sgemm, be, y, x, W, n, in, out, accumulate);
}
static void linear_bwd(qtx_backend *be, float *dx, float *dW, const float *dy, const float *x,
                       const float *W, int64_t n, int64_t in, int64_t out) {
    qtx_linear_bwd_by(sgemm, be, dx, dW, dy, x, W, n, in, out);
}
static void rmsnorm_fwd(qtx_backend *be, float *y, float *rstd, const float *x, const float *w,
                        int64_t n, int64_t c, float eps) {
    CUDA_OK(qtx_cuda_rmsnorm_fwd(y, rstd, x, w, n, c, eps, ctx_of(be)->stream, WHY));
}
static void rmsnorm_bwd(qtx_backend *be, float *dx, float *dw, const float *dy, const float *x,
                        const float *rstd, const float *w, int64_t n, int64_t c) {
    CUDA_OK(qtx_cuda_rmsnorm_bwd(dx, dw, dy, x, rstd, w, n, c, ctx_of(be)->stream, WHY));
}
static void rope(qtx_backend *be, float *x, int64_t ld, int64_t n, int T, int n_heads, int hd,
                 const float *cos_t, const float *sin_t, int inverse) {
    CUDA_OK(
        qtx_cuda_rope(x, ld, n, T, n_heads, hd, cos_t, sin_t, inverse, ctx_of(be)->stream, WHY));
}
static int64_t attention_scratch_floats(qtx_backend *be, int B, int T, int H) {
    (void)be;
    return (int64_t)B * H * T; /* D = rowsum(dO * O) of backward */
}
static void attention_fwd(qtx_backend *be, float *out, float *lse, const float *qkv, int B, int T,
                          int H, int KV, int hd, float *scratch) {
    (void)scratch;
    CUDA_OK(qtx_cuda_attention_fwd(out, lse, qkv, B, T, H, KV, hd, ctx_of(be)->stream, WHY));
}
static void attention_bwd(qtx_backend *be, float *dqkv, const float *dout, const float *qkv,
                          const float *out, const float *lse, int B, int T, int H, int KV, int hd,
                          float *scratch) {
    CUDA_OK(qtx_cuda_attention_bwd(dqkv, dout, qkv, out, lse, scratch, B, T, H, KV, hd,
                                   ctx_of(be)->stream, WHY));
}
static void swiglu_fwd(qtx_backend *be, float *h, const float *gu, int64_t n, int64_t f) {
    CUDA_OK(qtx_cuda_swiglu_fwd(h, gu, n, f, ctx_of(be)->stream, WHY));
}
static void swiglu_bwd(qtx_backend *be, float *dgu, const float *dh, const float *gu, int64_t n,
                       int64_t f) {
    CUDA_OK(qtx_cuda_swiglu_bwd(dgu, dh, gu, n, f, ctx_of(be)->stream, WHY));
}
static void embedding_fwd(qtx_backend *be, float *x, const float *E, const int32_t *tok, int64_t n,
                          int64_t c, int64_t v0, int64_t vl) {
    CUDA_OK(qtx_cuda_embedding_fwd(x, E, tok, n, c, v0, vl, ctx_of(be)->stream, WHY));
}
static void embedding_bwd(qtx_backend *be, float *dE, const float *dx, const int32_t *tok,
                          int64_t n, int64_t c, int64_t v0, int64_t vl) {
    CUDA_OK(qtx_cuda_embedding_bwd(dE, dx, tok, n, c, v0, vl, ctx_of(be)->stream, WHY));
}
static void add(qtx_backend *be, float *y, const float *x, int64_t n) {
    CUDA_OK(qtx_cuda_add(y, x, n, ctx_of(be)->stream, WHY));
}

/* qtx_head_xent on the device, chunk by chunk: logits by GEMM, the three cross-entropy steps
 * (with the TP reductions between them, as on the CPU), then the two backward GEMMs. Scratch:
 * logits [chunk, vl], row maxima [chunk], sums and target logits [2 chunk], losses [chunk]. The
 * losses are summed on the host in row order, in double, as on the CPU. */
static double head_xent(qtx_backend *be, float *dx, float *dW, const float *x, const float *W,
                        const int32_t *targets, int64_t n, int64_t c, int64_t vl, int64_t v0,
                        float grad_scale, float *scratch, int64_t chunk, const qtx_tp_ops *tp) {
    if (tp && !tp->sum) tp = NULL;
    cuda_ctx *cx = ctx_of(be);
    if (cx->host_loss_n < chunk) { /* once, on the first step */
        free(cx->host_loss);
        cx->host_loss = qtx_malloc((size_t)chunk * sizeof(float));
        cx->host_loss_n = chunk;
    }
    float *logits = scratch, *rmax = scratch + chunk * vl, *rsum = rmax + chunk;
    float *loss = rsum + 2 * chunk;
    double total = 0.0;
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        const int64_t rows = n - r0 < chunk ? n - r0 : chunk;
        sgemm(be, 0, 1, rows, vl, c, 1.0f, x + r0 * c, c, W, c, 0.0f, logits, vl);
        CUDA_OK(qtx_cuda_xent_max(rmax, logits, rows, vl, cx->stream, WHY));
        /* Vocabulary-parallel: the row maxima, then sums and target logits (adjacent: one
         * reduction), over the TP group on device memory (NCCL follows this stream; the
         * all-reduce returns when it is done). */
        if (tp) tp->max(tp->ctx, rmax, rows);
        CUDA_OK(qtx_cuda_xent_sum(rsum, logits, rmax, targets + r0, rows, vl, v0, cx->stream, WHY));
        if (tp) tp->sum(tp->ctx, rsum, 2 * rows);
        CUDA_OK(qtx_cuda_xent_finish(loss, logits, rmax, rsum, targets + r0, rows, vl, v0,
                                     grad_scale, dx != NULL, cx->stream, WHY));
        cu_to_host(be, cx->host_loss, loss, (size_t)rows * sizeof(float));
        for (int64_t i = 0; i < rows; i++) total += (double)cx->host_loss[i];
        if (!dx) continue;
        sgemm(be, 0, 0, rows, c, vl, 1.0f, logits, vl, W, c, 0.0f, dx + r0 * c, c);
        sgemm(be, 1, 0, vl, c, rows, 1.0f, logits, vl, x + r0 * c, c, 1.0f, dW, c);
    }
    return total;
}

static void adamw(qtx_backend *be, float *p, const float *g, float *m, float *v, int64_t n,
                  const qtx_adamw_step *s) {
    qtx_bf16_params_touch(&ctx_of(be)->params, p, (size_t)n * sizeof(float));
    const float k[7] = {s->beta1,        s->beta2, s->eps,       s->step,
                        s->inv_sqrt_bc2, s->decay, s->grad_scale};
    CUDA_OK(qtx_cuda_adamw_apply(p, g, m, v, n, k, ctx_of(be)->stream, WHY));
}

/* Partial sums on the device, summed in order here: the same bits on every call. */
static double sum_squares(qtx_backend *be, const float *x, int64_t n) {
    cuda_ctx *c = ctx_of(be);
    CUDA_OK(qtx_cuda_sum_squares_parts(c->sumsq_dev, x, n, c->stream, WHY));
    cu_to_host(be, c->sumsq_host, c->sumsq_dev, QTX_CUDA_SUMSQ_PARTS * sizeof(double));
    double total = 0.0;
    for (int i = 0; i < QTX_CUDA_SUMSQ_PARTS; i++) total += c->sumsq_host[i];
    return total;
}

static void bind_params(qtx_backend *be, const float *p, int64_t n) {
    cuda_ctx *c = ctx_of(be);
    if (n == 0 && p != c->params.base) return; /* another buffer than the bound one goes */
    if (c->params.copy) {
        CU(cudaStreamSynchronize(c->stream));
        CU(cudaFree(c->params.copy));
    }
    c->params = (qtx_bf16_params){.base = p, .n = n, .stale = 1};
    if (c->keep_copy && p && n > 0) CU(cudaMalloc(&c->params.copy, (size_t)n * sizeof(uint16_t)));
}
static void params_changed(qtx_backend *be) {
    ctx_of(be)->params.stale = 1;
}

int qtx_cuda_device_count(char *why, size_t cap) {
    if (!qtx_cuda_available(why, cap)) return 0;
    int n = 0;
    cudaGetDeviceCount(&n);
    return n;
}

int qtx_cuda_device_bus_id(int device, char *out, size_t cap, char *why, size_t why_cap) {
    const cudaError_t err = cudaDeviceGetPCIBusId(out, (int)cap, device);
    if (err == cudaSuccess) return 0;
    if (why && why_cap) snprintf(why, why_cap, "%s", cudaGetErrorString(err));
    if (cap) out[0] = '\0';
    return -1;
}

int qtx_backend_cuda_create(qtx_backend *out, int device, int precision, char *why, size_t cap) {
    memset(out, 0, sizeof *out);
    if (precision < QTX_CUDA_FP32 || precision > QTX_CUDA_BF16_PER_PRODUCT) {
        snprintf(why, cap, "cuda: unknown precision %d", precision);
        return -1;
    }
    const int bf16 = precision != QTX_CUDA_FP32;
    if (!qtx_cuda_available(why, cap)) return -1;
    if (cudaSetDevice(device) != cudaSuccess) {
        snprintf(why, cap, "cuda: device %d: %s", device, cudaGetErrorString(cudaGetLastError()));
        return -1;
    }
    cuda_ctx *c = qtx_calloc(1, sizeof *c);
    c->device = device;
    c->use_bf16 = bf16;
    c->keep_copy = precision == QTX_CUDA_BF16;
    if (cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) != cudaSuccess) {
        snprintf(why, cap, "cuda: stream: %s", cudaGetErrorString(cudaGetLastError()));
        free(c);
        return -1;
    }
    if (qtx_cuda_gemm_create(&c->gemm, GEMM_WORKSPACE, why, cap)) {
        cudaStreamDestroy(c->stream);
        free(c);
        return -1;
    }
    if (cudaMalloc((void **)&c->sumsq_dev, QTX_CUDA_SUMSQ_PARTS * sizeof(double)) != cudaSuccess) {
        snprintf(why, cap, "cuda: device %d: %s", device, cudaGetErrorString(cudaGetLastError()));
        qtx_cuda_gemm_free(c->gemm);
        cudaStreamDestroy(c->stream);
        free(c);
        return -1;
    }
    c->sumsq_host = qtx_malloc(QTX_CUDA_SUMSQ_PARTS * sizeof(double));
    *out = (qtx_backend){.name = bf16 ? "cuda-bf16" : "cuda",
                         .host_memory = 0,
                         .ctx = c,
                         .alloc = cu_alloc,
                         .free = cu_free,
                         .zero = cu_zero,
                         .copy = cu_copy,
                         .to_device = cu_to_device,
                         .to_host = cu_to_host,
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
                         .sum_squares = sum_squares,
                         .bind_params = bf16 ? bind_params : NULL,
                         .params_changed = bf16 ? params_changed : NULL};
    return 0;
}

void *qtx_backend_cuda_stream(const qtx_backend *be) {
    return ((const cuda_ctx *)be->ctx)->stream;
}

void qtx_backend_cuda_free(qtx_backend *be) {
    cuda_ctx *c = be->ctx;
    if (!c) return;
    cudaStreamSynchronize(c->stream);
    qtx_cuda_gemm_free(c->gemm);
    cudaStreamDestroy(c->stream);
    if (c->bf16) cudaFree(c->bf16);
    if (c->params.copy) cudaFree(c->params.copy);
    cudaFree(c->sumsq_dev);
    free(c->sumsq_host);
    free(c->host_loss);
    free(c);
    memset(be, 0, sizeof *be);
}
