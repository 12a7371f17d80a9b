/* infer_model.c: building an inference model from tensors, and its forward pass. */
#include "infer_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "log.h"
#include "vmath.h"

static int get_tensor(qtx_infer_model *m, qtx_infer_tensor_fn get, void *ctx, const char *name,
                      int64_t rows, int64_t cols, qtx_qtensor *t, qtx_err *e) {
    int rc = get(ctx, name, rows, cols, t, e);
    if (rc) return rc;
    if (t->rows != rows || t->cols != cols)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "%s: tensor %s is [%lld, %lld], the model config needs [%lld, %lld]",
                        m->source, name, (long long)t->rows, (long long)t->cols, (long long)rows,
                        (long long)cols);
    if (!qtx_qtype_get(t->type))
        return qtx_fail(e, QTX_ERR_INPUT, "%s: tensor %s has an unsupported type %d", m->source,
                        name, (int)t->type);
    return QTX_OK;
}

/* A norm weight: one f32 row. */
static int get_norm(qtx_infer_model *m, qtx_infer_tensor_fn get, void *ctx, const char *name,
                    const float **out, qtx_err *e) {
    qtx_qtensor t;
    int rc = get_tensor(m, get, ctx, name, 1, m->cfg.dim, &t, e);
    if (rc) return rc;
    if (t.type != QTX_Q_F32)
        return qtx_fail(e, QTX_ERR_INPUT, "%s: norm weight %s must be f32, not %s", m->source, name,
                        qtx_qtype_get(t.type)->name);
    *out = t.data;
    return QTX_OK;
}

int qtx_infer_build(qtx_infer_model *m, const qtx_model_config *cfg, qtx_infer_tensor_fn get,
                    void *ctx, void *owner, void (*free_owner)(void *), const char *source,
                    qtx_err *e) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->owner = owner;
    m->free_owner = free_owner;
    snprintf(m->source, sizeof m->source, "%s", source);
    const int64_t C = cfg->dim, hd = cfg->dim / cfg->n_heads, F = cfg->ffn_dim, V = cfg->vocab_size;
    const int64_t qd = cfg->n_heads * hd, kvd = cfg->n_kv_heads * hd;
    int rc = get_tensor(m, get, ctx, "token_embd", V, C, &m->token_embd, e);
    if (!rc) rc = get_norm(m, get, ctx, "output_norm", &m->output_norm, e);
    if (!rc) {
        if (cfg->tie_embeddings)
            m->output = m->token_embd;
        else
            rc = get_tensor(m, get, ctx, "output", V, C, &m->output, e);
    }
    m->layers = qtx_calloc((size_t)cfg->n_layers, sizeof *m->layers);
    char name[64];
    for (int l = 0; l < cfg->n_layers && !rc; l++) {
        qtx_infer_layer *L = &m->layers[l];
#define T(field, suffix, r, c)                                                                     \
    if (!rc) {                                                                                     \
        snprintf(name, sizeof name, "blk.%d." suffix, l);                                          \
        rc = get_tensor(m, get, ctx, name, r, c, &L->field, e);                                    \
    }
#define N(field, suffix)                                                                           \
    if (!rc) {                                                                                     \
        snprintf(name, sizeof name, "blk.%d." suffix, l);                                          \
        rc = get_norm(m, get, ctx, name, &L->field, e);                                            \
    }
        N(attn_norm, "attn_norm");
        T(wq, "attn_q", qd, C);
        T(wk, "attn_k", kvd, C);
        T(wv, "attn_v", kvd, C);
        T(wo, "attn_output", C, qd);
        N(ffn_norm, "ffn_norm");
        T(wgate, "ffn_gate", F, C);
        T(wup, "ffn_up", F, C);
        T(wdown, "ffn_down", C, F);
#undef T
#undef N
    }
    if (!rc) m->main_type = cfg->n_layers > 0 ? m->layers[0].wq.type : m->output.type;
    if (rc) qtx_infer_free(m);
    return rc;
}

/* ---- runtime --------------------------------------------------------------------------------- */

/* t to the type the CPU's kernels prefer for it (q4_0r, q8_0r; core/quant.h), row by row in
 * place through the scratch *row; n_rows[0] / [1] count the q4_0 / q8_0 rows repacked. */
static void repack(qtx_qtensor *t, void **row, int64_t n_rows[2]) {
    const qtx_qtype to = qtx_qtype_repacked(NULL, t->type);
    if (to == t->type) return;
    const size_t rb = qtx_qtype_row_bytes(t->type, t->cols);
    *row = qtx_realloc(*row, rb);
    for (int64_t r = 0; r < t->rows; r++) {
        uint8_t *w = (uint8_t *)(uintptr_t)t->data + (size_t)r * rb; /* weights_own */
        memcpy(*row, w, rb);
        (to == QTX_Q_Q4_0R ? qtx_q4_0r_pack_row : qtx_q8_0r_pack_row)(*row, w, t->cols);
    }
    n_rows[to == QTX_Q_Q8_0R] += t->rows;
    t->type = to;
}

/* The layer weights and an untied output head, repacked where the kernels have tiles for
 * them. The embedding table stays as it is (rows are looked up, not multiplied), and with it
 * a tied output head. */
static void repack_weights(qtx_infer_model *m) {
    if (!m->weights_own) return;
    void *row = NULL;
    int64_t n_rows[2] = {0, 0};
    if (!m->cfg.tie_embeddings) repack(&m->output, &row, n_rows);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        qtx_infer_layer *L = &m->layers[l];
        qtx_qtensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) repack(ts[i], &row, n_rows);
    }
    free(row);
    for (int i = 0; i < 2; i++)
        if (n_rows[i])
            qtx_log_info("%s weights repacked for %s: %lld rows", i ? "q8_0" : "q4_0",
                         qtx_quant_kernels_best()->name, (long long)n_rows[i]);
}

int qtx_infer_start(qtx_infer_model *m, int64_t ctx, qtx_kv_type k_type, qtx_kv_type v_type,
                    int max_batch, qtx_err *e) {
    const qtx_model_config *c = &m->cfg;
    const int64_t C = c->dim, hd = c->dim / c->n_heads, F = c->ffn_dim;
    const int64_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, B = max_batch;
    if (ctx < 1)
        return qtx_fail(e, QTX_ERR_INPUT, "--ctx %lld: the context must be at least 1 token",
                        (long long)ctx);
    int rc = qtx_kv_create(&m->kv, c->n_layers, c->n_kv_heads, (int)hd, ctx, 16, k_type, v_type, e);
    if (rc) return rc;
    repack_weights(m);
    if ((m->seq = qtx_kv_seq_new(m->kv, e)) < 0) return e->code ? e->code : QTX_ERR_RUNTIME;
    m->ctx = ctx;
    m->max_batch = max_batch;
    m->n_past = 0;
    m->x = qtx_malloc((size_t)(B * C) * sizeof(float));
    m->xn = qtx_malloc((size_t)(B * C) * sizeof(float));
    m->tmp = qtx_malloc((size_t)(B * C) * sizeof(float));
    m->q = qtx_malloc((size_t)(B * qd) * sizeof(float));
    m->k = qtx_malloc((size_t)(B * kvd) * sizeof(float));
    m->v = qtx_malloc((size_t)(B * kvd) * sizeof(float));
    m->att = qtx_malloc((size_t)(B * qd) * sizeof(float));
    m->g = qtx_malloc((size_t)(B * F) * sizeof(float));
    m->u = qtx_malloc((size_t)(B * F) * sizeof(float));
    m->rstd = qtx_malloc((size_t)B * sizeof(float));
    m->kv_scratch = qtx_malloc(qtx_kv_scratch_floats(m->kv, ctx) * sizeof(float));
    m->rope_cos = qtx_malloc((size_t)(ctx * hd / 2) * sizeof(float));
    m->rope_sin = qtx_malloc((size_t)(ctx * hd / 2) * sizeof(float));
    qtx_rope_tables(m->rope_cos, m->rope_sin, (int)ctx, (int)hd, c->rope_theta);
    /* Scratch for the activations' conversion, sized for the widest input (F or C). */
    const int64_t widest = F > qd ? (F > C ? F : C) : (qd > C ? qd : C);
    size_t qs = 0;
    const qtx_qtype types[] = {QTX_Q_F32,  QTX_Q_F16,   QTX_Q_Q8_0,
                               QTX_Q_Q4_0, QTX_Q_Q4_0R, QTX_Q_Q8_0R};
    for (int i = 0; i < 6; i++) {
        size_t s = qtx_qmatmul_scratch_bytes(types[i], widest, B);
        if (s > qs) qs = s;
    }
    m->qscratch = qtx_malloc(qs > 0 ? qs : 1);
    qtx_log_info("KV cache: %lld tokens, %.1f KiB per token (%s keys, %s values), %.1f MB",
                 (long long)ctx, qtx_kv_bytes_per_token(m->kv) / 1024.0, qtx_kv_type_name(k_type),
                 qtx_kv_type_name(v_type), (double)qtx_kv_bytes(m->kv) / 1e6);
    return QTX_OK;
}

int qtx_infer_compare_kv(qtx_infer_model *m, qtx_err *e) {
    const qtx_model_config *c = &m->cfg;
    const int64_t hd = c->dim / c->n_heads;
    int rc = qtx_kv_create(&m->kv_ref, c->n_layers, c->n_kv_heads, (int)hd, m->ctx, 16, QTX_KV_F32,
                           QTX_KV_F32, e);
    if (rc) return rc;
    if ((m->seq_ref = qtx_kv_seq_new(m->kv_ref, e)) < 0) return QTX_ERR_RUNTIME;
    m->att_ref = qtx_malloc((size_t)(m->max_batch * c->n_heads * hd) * sizeof(float));
    m->cos_min = 1.0;
    return QTX_OK;
}

void qtx_infer_reset(qtx_infer_model *m, qtx_err *e) {
    qtx_kv_seq_free(m->kv, m->seq);
    m->seq = qtx_kv_seq_new(m->kv, e);
    if (m->kv_ref) {
        qtx_kv_seq_free(m->kv_ref, m->seq_ref);
        m->seq_ref = qtx_kv_seq_new(m->kv_ref, e);
    }
    m->n_past = 0;
}

/* Cosine of each head's output against the f32 twin's. */
static void compare_heads(qtx_infer_model *m, const float *att, const float *ref, int n_heads,
                          int64_t hd) {
    for (int h = 0; h < n_heads; h++) {
        const float *a = att + h * hd, *b = ref + h * hd;
        double ab = 0, aa = 0, bb = 0;
        for (int64_t j = 0; j < hd; j++) {
            ab += (double)a[j] * b[j];
            aa += (double)a[j] * a[j];
            bb += (double)b[j] * b[j];
        }
        const double cs = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
        if (cs < m->cos_min) m->cos_min = cs;
        m->cos_sum += cs;
        m->cos_n++;
    }
}

/* y_i[n, rows_i] = x[n, cols] W_i^T for weights that read the same x: a batch of f32 weights
 * is oneDNN's sgemm (as in training), everything else one fused qtx_qmatmul_many. */
static void project(qtx_infer_model *m, const qtx_qtensor *const *w, float *const *y, int n_w,
                    const float *x, int64_t n) {
    qtx_qmm rest[QTX_QMM_MAX];
    int n_rest = 0;
    for (int i = 0; i < n_w; i++) {
        if (w[i]->type == QTX_Q_F32 && n > 1)
            qtx_linear_fwd(y[i], x, w[i]->data, n, w[i]->cols, w[i]->rows, 0);
        else
            rest[n_rest++] = (qtx_qmm){w[i]->type, w[i]->data, w[i]->rows, y[i]};
    }
    if (n_rest) qtx_qmatmul_many(NULL, rest, n_rest, w[0]->cols, x, n, m->qscratch);
}

static void matmul(qtx_infer_model *m, const qtx_qtensor *w, const float *x, int64_t n, float *y) {
    project(m, &w, &y, 1, x, n);
}

/* A prompt of at least this many tokens sets the quantized keys' offset (kv_cache.h). */
#define KEY_OFFSET_MIN_TOKENS 8

/* The mean of the prompt's n keys (after RoPE) in layer l, as the sequence's key offset. */
static void set_key_offset(qtx_infer_model *m, int l, int n) {
    const int64_t kvd = (int64_t)m->cfg.n_kv_heads * (m->cfg.dim / m->cfg.n_heads);
    float *mu = m->tmp; /* free until the attention output projection */
    for (int64_t j = 0; j < kvd; j++) {
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += m->k[i * kvd + j];
        mu[j] = (float)(sum / n);
    }
    qtx_kv_set_key_offset(m->kv, m->seq, l, mu);
}

/* The element-wise steps between products run on one thread while the others wait: kept in
 * vector form (a scalar expf loop was 5% of a two-thread decode). */
static void add_to(float *restrict y, const float *restrict x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void swiglu(float *restrict g, const float *restrict u, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + qtx_expf(-g[i])) * u[i];
}

/* Rows of the embedding table, dequantized. */
static void embed(qtx_infer_model *m, const int32_t *tokens, int n, float *x) {
    const qtx_qtensor *t = &m->token_embd;
    const qtx_qtype_traits *tr = qtx_qtype_get(t->type);
    const size_t row_bytes = qtx_qtype_row_bytes(t->type, t->cols);
    for (int i = 0; i < n; i++)
        tr->dequantize_row((const char *)t->data + (size_t)tokens[i] * row_bytes,
                           x + (int64_t)i * t->cols, t->cols);
}

int qtx_infer_check_batch(const qtx_model_config *c, const int32_t *tokens, int n, int max_batch,
                          int64_t n_past, int64_t ctx, qtx_err *e) {
    if (n < 1 || n > max_batch)
        return qtx_fail(e, QTX_ERR_RUNTIME, "forward of %d tokens; the batch holds %d", n,
                        max_batch);
    if (n_past + n > ctx)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "the context is full: %lld tokens + %d new exceed --ctx %lld; raise "
                        "--ctx or shorten the prompt",
                        (long long)n_past, n, (long long)ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return qtx_fail(e, QTX_ERR_INPUT, "token id %d is outside the vocabulary [0, %d)",
                            tokens[i], c->vocab_size);
    return QTX_OK;
}

int qtx_infer_forward(qtx_infer_model *m, const int32_t *tokens, int n, float *logits,
                      int all_logits, qtx_err *e) {
    const qtx_model_config *c = &m->cfg;
    const int64_t C = c->dim, hd = c->dim / c->n_heads, F = c->ffn_dim;
    const int64_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    const int rc = qtx_infer_check_batch(c, tokens, n, m->max_batch, m->n_past, m->ctx, e);
    if (rc) return rc;
    embed(m, tokens, n, m->x);
    const int64_t p0 = m->n_past;
    const float *cos_t = m->rope_cos + p0 * (hd / 2), *sin_t = m->rope_sin + p0 * (hd / 2);
    for (int l = 0; l < c->n_layers; l++) {
        const qtx_infer_layer *L = &m->layers[l];
        qtx_rmsnorm_fwd(m->xn, m->rstd, m->x, L->attn_norm, n, C, c->norm_eps);
        const qtx_qtensor *qkv[3] = {&L->wq, &L->wk, &L->wv};
        float *qkv_out[3] = {m->q, m->k, m->v};
        project(m, qkv, qkv_out, 3, m->xn, n);
        /* Rows are positions p0 .. p0 + n - 1: tables from p0 on, one position per row. */
        qtx_rope(m->q, qd, n, n, c->n_heads, (int)hd, cos_t, sin_t, 0);
        qtx_rope(m->k, kvd, n, n, c->n_kv_heads, (int)hd, cos_t, sin_t, 0);
        if (p0 == 0 && n >= KEY_OFFSET_MIN_TOKENS) set_key_offset(m, l, n);
        for (int i = 0; i < n; i++) {
            int rc = qtx_kv_append(m->kv, m->seq, l, m->k + i * kvd, m->v + i * kvd, e);
            if (!rc && m->kv_ref)
                rc = qtx_kv_append(m->kv_ref, m->seq_ref, l, m->k + i * kvd, m->v + i * kvd, e);
            if (rc) return rc;
        }
        qtx_kv_attend_batch(m->kv, m->seq, l, m->q, c->n_heads, n, p0 + 1, m->att, m->kv_scratch);
        if (m->kv_ref) {
            qtx_kv_attend_batch(m->kv_ref, m->seq_ref, l, m->q, c->n_heads, n, p0 + 1, m->att_ref,
                                m->kv_scratch);
            for (int i = 0; i < n; i++)
                compare_heads(m, m->att + i * qd, m->att_ref + i * qd, c->n_heads, hd);
        }
        matmul(m, &L->wo, m->att, n, m->tmp);
        add_to(m->x, m->tmp, n * C);
        qtx_rmsnorm_fwd(m->xn, m->rstd, m->x, L->ffn_norm, n, C, c->norm_eps);
        const qtx_qtensor *gu[2] = {&L->wgate, &L->wup};
        float *gu_out[2] = {m->g, m->u};
        project(m, gu, gu_out, 2, m->xn, n);
        swiglu(m->g, m->u, n * F);
        matmul(m, &L->wdown, m->g, n, m->tmp);
        add_to(m->x, m->tmp, n * C);
    }
    m->n_past += n;
    if (all_logits) {
        qtx_rmsnorm_fwd(m->xn, m->rstd, m->x, m->output_norm, n, C, c->norm_eps);
        matmul(m, &m->output, m->xn, n, logits);
    } else {
        qtx_rmsnorm_fwd(m->xn, m->rstd, m->x + (int64_t)(n - 1) * C, m->output_norm, 1, C,
                        c->norm_eps);
        matmul(m, &m->output, m->xn, 1, logits);
    }
    return QTX_OK;
}

void qtx_infer_free(qtx_infer_model *m) {
    if (m->kv) qtx_kv_free(m->kv);
    if (m->kv_ref) qtx_kv_free(m->kv_ref);
    free(m->att_ref);
    free(m->x);
    free(m->xn);
    free(m->tmp);
    free(m->q);
    free(m->k);
    free(m->v);
    free(m->att);
    free(m->g);
    free(m->u);
    free(m->rstd);
    free(m->kv_scratch);
    free(m->rope_cos);
    free(m->rope_sin);
    free(m->qscratch);
    free(m->layers);
    if (m->tok && m->free_tok) m->free_tok(m->tok);
    if (m->owner && m->free_owner) m->free_owner(m->owner);
    memset(m, 0, sizeof *m);
}
