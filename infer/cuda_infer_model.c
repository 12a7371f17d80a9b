/* cuda_infer_model.c: the inference forward pass on one GPU (infer/cuda_infer_model.h): the
 * CPU pass of infer_model.c step for step, each step a kernel on one stream; the host waits
 * once per call, for the logits. */
#include "cuda_infer_model.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "cuda_gemm.h"
#include "cuda_infer.h"
#include "cuda_kernels.h"
#include "cuda_quant.h"
#include "kernels.h"
#include "log.h"
#include "quant.h"

#define GEMM_WORKSPACE ((size_t)32 << 20)
#define SCORE_BUDGET ((int64_t)64 << 20) /* floats of attention scores at once */
#define LOGIT_ROWS 16                    /* rows of logits on the device at once */

/* A weight on the device: f32 (f16 widened at upload), q8_0 or q4_0, ggml's ids. */
typedef struct dtensor {
    int type;
    void *data;
    int64_t rows, cols;
} dtensor;

typedef struct dlayer {
    float *attn_norm, *ffn_norm;
    dtensor wq, wk, wv, wo, wgate, wup, wdown;
} dlayer;

struct qtx_infer_cuda {
    qtx_model_config cfg;
    int device;
    cudaStream_t stream;
    qtx_cuda_gemm *gemm;
    dtensor token_embd, output;
    float *output_norm;
    dlayer *layers;
    size_t weight_bytes;
    /* The cache: per layer ctx rows of kvd values, f32 or q8_0 blocks. */
    void **K, **V;
    int k_q8, v_q8;
    size_t k_row, v_row; /* bytes per position */
    int64_t ctx, n_past;
    int max_batch;
    int64_t att_tokens; /* tokens attended per launch: the scores scratch holds theirs */
    /* Activations for max_batch tokens. */
    float *x, *xn, *q, *k, *v, *att, *gu, *h, *tmp, *rstd, *scores, *logits;
    float *rope_cos, *rope_sin;
    void *xq; /* q8_0 blocks of the widest activation rows */
    int32_t *tok;
};

/* One device allocation: 0, or the error code with e filled. */
static int dev_alloc(void **p, size_t bytes, const char *what, qtx_err *e) {
    *p = NULL;
    if (cudaMalloc(p, bytes ? bytes : 64) == cudaSuccess) return 0;
    *p = NULL;
    return qtx_fail(e, QTX_ERR_RUNTIME, "--device cuda: cannot allocate %.1f MB for %s: %s",
                    bytes / 1e6, what, cudaGetErrorString(cudaGetLastError()));
}

static int upload(void **p, const void *host, size_t bytes, const char *what, qtx_err *e) {
    int rc = dev_alloc(p, bytes, what, e);
    if (rc) return rc;
    if (cudaMemcpy(*p, host, bytes, cudaMemcpyHostToDevice) == cudaSuccess) return 0;
    return qtx_fail(e, QTX_ERR_RUNTIME, "--device cuda: copying %s: %s", what,
                    cudaGetErrorString(cudaGetLastError()));
}

/* A weight as it is, f16 widened to f32 (the GPU path has no f16 product). */
static int upload_tensor(qtx_infer_cuda *g, dtensor *d, const qtx_qtensor *t, const char *what,
                         qtx_err *e) {
    d->rows = t->rows;
    d->cols = t->cols;
    d->type = t->type == QTX_Q_F16 ? QTX_Q_F32 : (int)t->type;
    if (t->type == QTX_Q_F32 || t->type == QTX_Q_Q8_0 || t->type == QTX_Q_Q4_0) {
        const size_t bytes = (size_t)t->rows * qtx_qtype_row_bytes(t->type, t->cols);
        g->weight_bytes += bytes;
        return upload(&d->data, t->data, bytes, what, e);
    }
    if (t->type != QTX_Q_F16)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "--device cuda: %s has type %s, which the GPU path does not multiply; "
                        "use f32, f16, q8_0 or q4_0",
                        what, qtx_qtype_get(t->type)->name);
    const size_t bytes = (size_t)t->rows * (size_t)t->cols * sizeof(float);
    float *wide = qtx_malloc(bytes);
    const qtx_qtype_traits *tr = qtx_qtype_get(t->type);
    const size_t rb = qtx_qtype_row_bytes(t->type, t->cols);
    for (int64_t r = 0; r < t->rows; r++)
        tr->dequantize_row((const char *)t->data + (size_t)r * rb, wide + r * t->cols, t->cols);
    g->weight_bytes += bytes;
    const int rc = upload(&d->data, wide, bytes, what, e);
    free(wide);
    return rc;
}

static int upload_norm(qtx_infer_cuda *g, float **d, const float *w, const char *what, qtx_err *e) {
    g->weight_bytes += (size_t)g->cfg.dim * sizeof(float);
    return upload((void **)d, w, (size_t)g->cfg.dim * sizeof(float), what, e);
}

int qtx_infer_cuda_create(qtx_infer_cuda **out, const qtx_infer_model *m, int device, int64_t ctx,
                          qtx_kv_type k_type, qtx_kv_type v_type, int max_batch, qtx_err *e) {
    *out = NULL;
    const qtx_model_config *c = &m->cfg;
    const int64_t C = c->dim, hd = c->dim / c->n_heads, F = c->ffn_dim, V = c->vocab_size;
    const int64_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    char why[256] = "";
    const int n_dev = qtx_cuda_device_count(why, sizeof why);
    if (n_dev == 0)
        return qtx_fail(e, QTX_ERR_INPUT, "--device cuda: no GPU (%s); use --device cpu", why);
    if (device < 0 || device >= n_dev)
        return qtx_fail(e, QTX_ERR_INPUT, "--device cuda:%d: this machine has %d GPU(s)", device,
                        n_dev);
    if (k_type == QTX_KV_Q4 || v_type == QTX_KV_Q4)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "--kv-quant q4 is a CPU cache format for now; with --device cuda use "
                        "f32 or q8");
    if (hd > 256 || ((k_type == QTX_KV_Q8 || v_type == QTX_KV_Q8) && hd % 32))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "--device cuda: head size %lld is above 256, or not a multiple of 32 "
                        "for a q8 cache; use --kv-quant f32 or --device cpu",
                        (long long)hd);
    if (max_batch < 1 || max_batch > 65535 || ctx < 1)
        return qtx_fail(e, QTX_ERR_INPUT, "--device cuda: batch %d, context %lld", max_batch,
                        (long long)ctx);
    if (c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads)
        return qtx_fail(e, QTX_ERR_INPUT, "--device cuda: %d heads over %d kv heads", c->n_heads,
                        c->n_kv_heads);
    const cudaError_t se = cudaSetDevice(device);
    if (se != cudaSuccess)
        return qtx_fail(e, QTX_ERR_RUNTIME, "--device cuda:%d: %s", device, cudaGetErrorString(se));
    qtx_infer_cuda *g = qtx_calloc(1, sizeof *g);
    *out = g;
    g->cfg = *c;
    g->device = device;
    g->ctx = ctx;
    g->max_batch = max_batch;
    g->k_q8 = k_type == QTX_KV_Q8;
    g->v_q8 = v_type == QTX_KV_Q8;
    g->layers = qtx_calloc((size_t)c->n_layers, sizeof *g->layers);
    g->K = qtx_calloc((size_t)c->n_layers, sizeof *g->K);
    g->V = qtx_calloc((size_t)c->n_layers, sizeof *g->V);
    if (cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking) != cudaSuccess) {
        g->stream = NULL;
        qtx_fail(e, QTX_ERR_RUNTIME, "--device cuda: a stream: %s",
                 cudaGetErrorString(cudaGetLastError()));
        goto fail;
    }
    if (qtx_cuda_gemm_create(&g->gemm, GEMM_WORKSPACE, why, sizeof why)) {
        qtx_fail(e, QTX_ERR_RUNTIME, "--device cuda: %s", why);
        goto fail;
    }
    char what[64];
    if (upload_tensor(g, &g->token_embd, &m->token_embd, "token_embd", e) ||
        upload_norm(g, &g->output_norm, m->output_norm, "output_norm", e))
        goto fail;
    if (m->output.data == m->token_embd.data && m->output.type == m->token_embd.type)
        g->output = g->token_embd; /* tied: one copy */
    else if (upload_tensor(g, &g->output, &m->output, "output", e))
        goto fail;
    for (int l = 0; l < c->n_layers; l++) {
        const qtx_infer_layer *L = &m->layers[l];
        dlayer *D = &g->layers[l];
        const struct {
            dtensor *d;
            const qtx_qtensor *t;
            const char *name;
        } ws[] = {{&D->wq, &L->wq, "attn_q"},         {&D->wk, &L->wk, "attn_k"},
                  {&D->wv, &L->wv, "attn_v"},         {&D->wo, &L->wo, "attn_output"},
                  {&D->wgate, &L->wgate, "ffn_gate"}, {&D->wup, &L->wup, "ffn_up"},
                  {&D->wdown, &L->wdown, "ffn_down"}};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            snprintf(what, sizeof what, "blk.%d.%s", l, ws[i].name);
            if (upload_tensor(g, ws[i].d, ws[i].t, what, e)) goto fail;
        }
        if (upload_norm(g, &D->attn_norm, L->attn_norm, "attn_norm", e) ||
            upload_norm(g, &D->ffn_norm, L->ffn_norm, "ffn_norm", e))
            goto fail;
    }
    g->k_row = g->k_q8 ? (size_t)(kvd / 32) * 34 : (size_t)kvd * sizeof(float);
    g->v_row = g->v_q8 ? (size_t)(kvd / 32) * 34 : (size_t)kvd * sizeof(float);
    for (int l = 0; l < c->n_layers; l++)
        if (dev_alloc(&g->K[l], (size_t)ctx * g->k_row, "the KV cache", e) ||
            dev_alloc(&g->V[l], (size_t)ctx * g->v_row, "the KV cache", e))
            goto fail;
    /* Attention keeps every score of att_tokens tokens at once: as many as a 64M-float
     * budget allows (a long context with a large batch would otherwise need gigabytes). */
    g->att_tokens = SCORE_BUDGET / ((int64_t)c->n_heads * ctx);
    if (g->att_tokens < 1) g->att_tokens = 1;
    if (g->att_tokens > max_batch) g->att_tokens = max_batch;
    const int64_t B = max_batch, widest = F > qd ? (F > C ? F : C) : (qd > C ? qd : C);
    struct {
        float **p;
        int64_t n;
    } bufs[] = {{&g->x, B * C},
                {&g->xn, B * C},
                {&g->tmp, B * C},
                {&g->q, B * qd},
                {&g->k, B * kvd},
                {&g->v, B * kvd},
                {&g->att, B * qd},
                {&g->gu, B * 2 * F},
                {&g->h, B * F},
                {&g->rstd, B},
                {&g->logits, LOGIT_ROWS * V},
                {&g->scores, g->att_tokens * c->n_heads * ctx},
                {&g->rope_cos, ctx * hd / 2},
                {&g->rope_sin, ctx * hd / 2}};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (dev_alloc((void **)bufs[i].p, (size_t)bufs[i].n * sizeof(float), "activations", e))
            goto fail;
    if (dev_alloc(&g->xq, (size_t)(B * ((widest + 31) / 32)) * 34, "activations", e) ||
        dev_alloc((void **)&g->tok, (size_t)B * sizeof(int32_t), "tokens", e))
        goto fail;
    const size_t tab = (size_t)(ctx * hd / 2) * sizeof(float);
    float *cs = qtx_malloc(2 * tab);
    qtx_rope_tables(cs, cs + tab / sizeof(float), (int)ctx, (int)hd, c->rope_theta);
    const int ok = cudaMemcpy(g->rope_cos, cs, tab, cudaMemcpyHostToDevice) == cudaSuccess &&
                   cudaMemcpy(g->rope_sin, cs + tab / sizeof(float), tab, cudaMemcpyHostToDevice) ==
                       cudaSuccess;
    free(cs);
    /* Copies from pageable memory may still be in flight; the non-blocking stream would not
     * wait for them. */
    if (!ok || cudaDeviceSynchronize() != cudaSuccess) {
        qtx_fail(e, QTX_ERR_RUNTIME, "--device cuda: uploading the model: %s",
                 cudaGetErrorString(cudaGetLastError()));
        goto fail;
    }
    qtx_log_info("GPU %d: weights %.1f MB; KV cache %lld tokens, %.1f KiB per token (%s keys, %s "
                 "values), %.1f MB",
                 device, g->weight_bytes / 1e6, (long long)ctx,
                 (double)(g->k_row + g->v_row) * c->n_layers / 1024.0, qtx_kv_type_name(k_type),
                 qtx_kv_type_name(v_type), (double)(g->k_row + g->v_row) * c->n_layers * ctx / 1e6);
    return QTX_OK;
fail:
    qtx_infer_cuda_free(g);
    *out = NULL;
    return e->code ? e->code : QTX_ERR_RUNTIME;
}

/* y_i[n, rows_i] (row stride ld_i) = x[n, cols] W_i^T for weights reading the same x: the
 * activations quantized once for every quantized weight. */
static void project(qtx_infer_cuda *g, const dtensor *const *w, float *const *y, const int64_t *ld,
                    int n_w, const float *x, int64_t n) {
    int quantized = 0;
    for (int i = 0; i < n_w; i++) {
        if (w[i]->type == QTX_Q_F32) {
            CUDA_OK(qtx_cuda_gemm_f32(g->gemm, 0, 1, n, w[i]->rows, w[i]->cols, 1.0f, x, w[i]->cols,
                                      w[i]->data, w[i]->cols, 0.0f, y[i], ld[i], g->stream, WHY));
            continue;
        }
        if (!quantized) CUDA_OK(qtx_cuda_quantize_q8_0(g->xq, x, n * w[i]->cols, g->stream, WHY));
        quantized = 1;
        CUDA_OK(qtx_cuda_qmatmul(w[i]->type, w[i]->data, w[i]->rows, w[i]->cols, g->xq, n, y[i],
                                 ld[i], g->stream, WHY));
    }
}

static void matmul(qtx_infer_cuda *g, const dtensor *w, const float *x, int64_t n, float *y) {
    const int64_t ld = w->rows;
    project(g, &w, &y, &ld, 1, x, n);
}

int qtx_infer_cuda_forward(qtx_infer_cuda *g, const int32_t *tokens, int n, float *logits,
                           int all_logits, qtx_err *e) {
    const qtx_model_config *c = &g->cfg;
    const int64_t C = c->dim, hd = c->dim / c->n_heads, F = c->ffn_dim, V = c->vocab_size;
    const int64_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    const int rc = qtx_infer_check_batch(c, tokens, n, g->max_batch, g->n_past, g->ctx, e);
    if (rc) return rc;
    CU(cudaSetDevice(g->device));
    const cudaStream_t s = g->stream;
    CU(cudaMemcpyAsync(g->tok, tokens, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice, s));
    CUDA_OK(qtx_cuda_get_rows(g->x, g->token_embd.data, g->token_embd.type, C, g->tok, n, s, WHY));
    const int64_t p0 = g->n_past;
    const float *cos_t = g->rope_cos + p0 * (hd / 2), *sin_t = g->rope_sin + p0 * (hd / 2);
    for (int l = 0; l < c->n_layers; l++) {
        const dlayer *L = &g->layers[l];
        CUDA_OK(
            qtx_cuda_rmsnorm_fwd(g->xn, g->rstd, g->x, L->attn_norm, n, C, c->norm_eps, s, WHY));
        const dtensor *qkv[3] = {&L->wq, &L->wk, &L->wv};
        float *qkv_out[3] = {g->q, g->k, g->v};
        const int64_t qkv_ld[3] = {qd, kvd, kvd};
        project(g, qkv, qkv_out, qkv_ld, 3, g->xn, n);
        /* Rows are positions p0 .. p0 + n - 1: tables from p0 on, one position per row. */
        CUDA_OK(qtx_cuda_rope(g->q, qd, n, n, c->n_heads, (int)hd, cos_t, sin_t, 0, s, WHY));
        CUDA_OK(qtx_cuda_rope(g->k, kvd, n, n, c->n_kv_heads, (int)hd, cos_t, sin_t, 0, s, WHY));
        char *Kl = (char *)g->K[l] + (size_t)p0 * g->k_row,
             *Vl = (char *)g->V[l] + (size_t)p0 * g->v_row;
        if (g->k_q8)
            CUDA_OK(qtx_cuda_quantize_q8_0(Kl, g->k, n * kvd, s, WHY));
        else
            CU(cudaMemcpyAsync(Kl, g->k, (size_t)n * g->k_row, cudaMemcpyDeviceToDevice, s));
        if (g->v_q8)
            CUDA_OK(qtx_cuda_quantize_q8_0(Vl, g->v, n * kvd, s, WHY));
        else
            CU(cudaMemcpyAsync(Vl, g->v, (size_t)n * g->v_row, cudaMemcpyDeviceToDevice, s));
        for (int i0 = 0; i0 < n; i0 += (int)g->att_tokens) {
            const int nt = n - i0 < g->att_tokens ? n - i0 : (int)g->att_tokens;
            CUDA_OK(qtx_cuda_kv_attend(g->att + i0 * qd, g->q + i0 * qd, nt, p0 + i0, c->n_heads,
                                       c->n_kv_heads, (int)hd, g->K[l], g->k_q8, g->V[l], g->v_q8,
                                       g->scores, g->ctx, s, WHY));
        }
        matmul(g, &L->wo, g->att, n, g->tmp);
        CUDA_OK(qtx_cuda_add(g->x, g->tmp, n * C, s, WHY));
        CUDA_OK(qtx_cuda_rmsnorm_fwd(g->xn, g->rstd, g->x, L->ffn_norm, n, C, c->norm_eps, s, WHY));
        /* gate and up side by side in each row, as the SwiGLU kernel reads them */
        const dtensor *gu[2] = {&L->wgate, &L->wup};
        float *gu_out[2] = {g->gu, g->gu + F};
        const int64_t gu_ld[2] = {2 * F, 2 * F};
        project(g, gu, gu_out, gu_ld, 2, g->xn, n);
        CUDA_OK(qtx_cuda_swiglu_fwd(g->h, g->gu, n, F, s, WHY));
        matmul(g, &L->wdown, g->h, n, g->tmp);
        CUDA_OK(qtx_cuda_add(g->x, g->tmp, n * C, s, WHY));
    }
    g->n_past += n;
    /* The head over LOGIT_ROWS rows at a time: the last token's, or every token's. */
    for (int i0 = all_logits ? 0 : n - 1; i0 < n; i0 += LOGIT_ROWS) {
        const int64_t rows = n - i0 < LOGIT_ROWS ? n - i0 : LOGIT_ROWS;
        CUDA_OK(qtx_cuda_rmsnorm_fwd(g->xn, g->rstd, g->x + (int64_t)i0 * C, g->output_norm, rows,
                                     C, c->norm_eps, s, WHY));
        matmul(g, &g->output, g->xn, rows, g->logits);
        float *dst = logits + (all_logits ? (int64_t)i0 * V : 0);
        CU(cudaMemcpyAsync(dst, g->logits, (size_t)(rows * V) * sizeof(float),
                           cudaMemcpyDeviceToHost, s));
        CU(cudaStreamSynchronize(s)); /* pageable destination: the copy is done when this returns */
    }
    return QTX_OK;
}

void qtx_infer_cuda_reset(qtx_infer_cuda *g) {
    g->n_past = 0; /* positions are overwritten before they are read again */
}

void qtx_infer_cuda_free(qtx_infer_cuda *g) {
    if (!g) return;
    cudaSetDevice(g->device);
    if (g->stream) cudaStreamSynchronize(g->stream);
    const int tied = g->output.data == g->token_embd.data;
    cudaFree(g->token_embd.data);
    if (!tied) cudaFree(g->output.data);
    cudaFree(g->output_norm);
    for (int l = 0; l < g->cfg.n_layers; l++) {
        dlayer *D = &g->layers[l];
        dtensor *ws[] = {&D->wq, &D->wk, &D->wv, &D->wo, &D->wgate, &D->wup, &D->wdown};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) cudaFree(ws[i]->data);
        cudaFree(D->attn_norm);
        cudaFree(D->ffn_norm);
        cudaFree(g->K[l]);
        cudaFree(g->V[l]);
    }
    float *bufs[] = {g->x,  g->xn, g->tmp,  g->q,      g->k,      g->v,        g->att,
                     g->gu, g->h,  g->rstd, g->logits, g->scores, g->rope_cos, g->rope_sin};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    cudaFree(g->xq);
    cudaFree(g->tok);
    qtx_cuda_gemm_free(g->gemm);
    if (g->stream) cudaStreamDestroy(g->stream);
    free(g->layers);
    free(g->K);
    free(g->V);
    free(g);
}
