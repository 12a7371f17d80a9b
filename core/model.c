/* model.c: the forward and backward passes of the whole model, composed from kernels.h. */
#include "model.h"

#include <stdlib.h>
#include <string.h>

#include "kernels.h"

typedef struct dims {
    int64_t N, C, hd, H, KV, F, V, qkv, qd;
} dims;

static dims model_dims(const qtx_model *m) {
    const qtx_model_config *c = &m->cfg;
    const int tp = m->layout.spec.tp_size;
    dims d;
    d.N = (int64_t)m->B * m->T;
    d.C = c->dim;
    d.hd = c->dim / c->n_heads;
    d.H = c->n_heads / tp;
    d.KV = c->n_kv_heads / tp;
    d.F = c->ffn_dim / tp;
    d.V = c->vocab_size;
    d.qkv = (d.H + 2 * d.KV) * d.hd;
    d.qd = d.H * d.hd;
    return d;
}

/* Carves aligned float arrays from the arena (or, with base NULL, only counts). */
typedef struct carver {
    char *base;
    size_t used;
} carver;

static void *carve(carver *cv, size_t bytes) {
    size_t off = (cv->used + 63) & ~(size_t)63;
    cv->used = off + bytes;
    return cv->base ? cv->base + off : NULL;
}
#define CARVE_F(cv, n) ((float *)carve(cv, (size_t)(n) * sizeof(float)))

static void carve_all(qtx_model *m, carver *cv) {
    const dims d = model_dims(m);
    const int L = m->pv.n_layers;
    for (int l = 0; l < L; l++) {
        qtx_layer_acts *a = &m->acts[l];
        a->x = CARVE_F(cv, d.N * d.C);
        a->xn1 = CARVE_F(cv, d.N * d.C);
        a->r1 = CARVE_F(cv, d.N);
        a->qkv = CARVE_F(cv, d.N * d.qkv);
        a->att = CARVE_F(cv, d.N * d.qd);
        a->lse = CARVE_F(cv, (int64_t)m->B * d.H * m->T);
        a->xmid = CARVE_F(cv, d.N * d.C);
        a->xn2 = CARVE_F(cv, d.N * d.C);
        a->r2 = CARVE_F(cv, d.N);
        a->gu = CARVE_F(cv, d.N * 2 * d.F);
        a->h = CARVE_F(cv, d.N * d.F);
    }
    m->x_out = CARVE_F(cv, d.N * d.C);
    m->xnf = CARVE_F(cv, d.N * d.C);
    m->rf = CARVE_F(cv, d.N);
    m->dres = CARVE_F(cv, d.N * d.C);
    m->dxn = CARVE_F(cv, d.N * d.C);
    m->dqkv = CARVE_F(cv, d.N * d.qkv);
    m->datt = CARVE_F(cv, d.N * d.qd);
    m->dgu = CARVE_F(cv, d.N * 2 * d.F);
    m->dh = CARVE_F(cv, d.N * d.F);
    m->head_scratch = CARVE_F(cv, m->head_chunk * (d.V + 1));
    m->attn_scratch = CARVE_F(cv, qtx_attention_scratch_floats(m->T, m->n_threads));
    m->rope_cos = CARVE_F(cv, (int64_t)m->T * d.hd / 2);
    m->rope_sin = CARVE_F(cv, (int64_t)m->T * d.hd / 2);
    m->inputs = (int32_t *)carve(cv, (size_t)d.N * sizeof(int32_t));
    m->targets = (int32_t *)carve(cv, (size_t)d.N * sizeof(int32_t));
}

void qtx_model_create(qtx_model *m, const qtx_model_config *cfg, const qtx_shard_spec *spec, int B,
                      int T) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->B = B;
    m->T = T;
    m->n_threads = qtx_num_threads();
    qtx_layout_build(&m->layout, cfg, spec);
    const size_t pbytes = (size_t)m->layout.n_floats * sizeof(float);
    m->params = qtx_alloc_big(pbytes);
    m->grads = qtx_alloc_big(pbytes);
    qtx_view_build(&m->pv, &m->layout, m->params);
    qtx_view_build(&m->gv, &m->layout, m->grads);
    m->acts = qtx_calloc((size_t)(m->pv.n_layers > 0 ? m->pv.n_layers : 1), sizeof *m->acts);
    /* Head chunk: about 4M logits at a time, at least 64 rows. */
    const int64_t N = (int64_t)B * T;
    int64_t chunk = ((int64_t)4 << 20) / cfg->vocab_size;
    if (chunk < 64) chunk = 64;
    m->head_chunk = chunk < N ? chunk : N;
    carver cv = {NULL, 0};
    carve_all(m, &cv);
    m->arena_bytes = cv.used;
    m->arena = qtx_alloc_big(m->arena_bytes);
    cv = (carver){(char *)m->arena, 0};
    carve_all(m, &cv);
    const dims d = model_dims(m);
    qtx_rope_tables(m->rope_cos, m->rope_sin, T, (int)d.hd, cfg->rope_theta);
}

void qtx_model_destroy(qtx_model *m) {
    qtx_free_big(m->arena, m->arena_bytes);
    qtx_free_big(m->params, (size_t)m->layout.n_floats * sizeof(float));
    qtx_free_big(m->grads, (size_t)m->layout.n_floats * sizeof(float));
    qtx_view_free(&m->pv);
    qtx_view_free(&m->gv);
    free(m->acts);
    qtx_layout_free(&m->layout);
    memset(m, 0, sizeof *m);
}

void qtx_model_init_weights(qtx_model *m, uint64_t seed) {
    qtx_layout_init_weights(&m->layout, m->params, seed);
}

void qtx_model_zero_grads(qtx_model *m) {
    memset(m->grads, 0, (size_t)m->layout.n_floats * sizeof(float));
}

int qtx_model_check_tokens(const qtx_model *m, const int32_t *tokens, int64_t n, qtx_err *e) {
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab_size)
            return qtx_fail(e, QTX_ERR_INPUT,
                            "token id %d at position %lld is outside the vocabulary [0, %d); "
                            "the data was made with another tokenizer than model.vocab_size says",
                            (int)tokens[i], (long long)i, m->cfg.vocab_size);
    return QTX_OK;
}

static void split_batch(qtx_model *m, const int32_t *tokens) {
    const int T = m->T;
    for (int b = 0; b < m->B; b++) {
        memcpy(m->inputs + (int64_t)b * T, tokens + (int64_t)b * (T + 1),
               (size_t)T * sizeof(int32_t));
        memcpy(m->targets + (int64_t)b * T, tokens + (int64_t)b * (T + 1) + 1,
               (size_t)T * sizeof(int32_t));
    }
}

/* Runs the layers; leaves the final normed activations in m->xnf. */
static void forward(qtx_model *m) {
    const dims d = model_dims(m);
    const float eps = m->cfg.norm_eps;
    const int L = m->pv.n_layers;
    float *x0 = L > 0 ? m->acts[0].x : m->x_out;
    qtx_embedding_fwd(x0, m->pv.token_embd, m->inputs, d.N, d.C);
    for (int l = 0; l < L; l++) {
        const qtx_layer_view *w = &m->pv.layers[l];
        qtx_layer_acts *a = &m->acts[l];
        float *x_next = l + 1 < L ? m->acts[l + 1].x : m->x_out;
        qtx_rmsnorm_fwd(a->xn1, a->r1, a->x, w->attn_norm, d.N, d.C, eps);
        qtx_linear_fwd(a->qkv, a->xn1, w->wqkv, d.N, d.C, d.qkv, 0);
        qtx_rope(a->qkv, d.qkv, d.N, m->T, (int)(d.H + d.KV), (int)d.hd, m->rope_cos, m->rope_sin,
                 0);
        qtx_attention_fwd(a->att, a->lse, a->qkv, m->B, m->T, (int)d.H, (int)d.KV, (int)d.hd,
                          m->attn_scratch, m->n_threads);
        memcpy(a->xmid, a->x, (size_t)(d.N * d.C) * sizeof(float));
        qtx_linear_fwd(a->xmid, a->att, w->wo, d.N, d.qd, d.C, 1);
        qtx_rmsnorm_fwd(a->xn2, a->r2, a->xmid, w->ffn_norm, d.N, d.C, eps);
        qtx_linear_fwd(a->gu, a->xn2, w->wgu, d.N, d.C, 2 * d.F, 0);
        qtx_swiglu_fwd(a->h, a->gu, d.N, d.F);
        memcpy(x_next, a->xmid, (size_t)(d.N * d.C) * sizeof(float));
        qtx_linear_fwd(x_next, a->h, w->wdown, d.N, d.F, d.C, 1);
    }
    qtx_rmsnorm_fwd(m->xnf, m->rf, m->x_out, m->pv.output_norm, d.N, d.C, eps);
}

static void backward(qtx_model *m) {
    const dims d = model_dims(m);
    const int L = m->pv.n_layers;
    float *dres = m->dres, *dxn = m->dxn;
    /* m->dxn holds d(loss)/d(xnf) from the head. */
    memset(dres, 0, (size_t)(d.N * d.C) * sizeof(float));
    qtx_rmsnorm_bwd(dres, m->gv.output_norm, dxn, m->x_out, m->rf, m->pv.output_norm, d.N, d.C);
    for (int l = L - 1; l >= 0; l--) {
        const qtx_layer_view *w = &m->pv.layers[l], *g = &m->gv.layers[l];
        const qtx_layer_acts *a = &m->acts[l];
        /* MLP: x_next = xmid + h Wdown^T. dres passes through the residual unchanged. */
        qtx_linear_bwd(m->dh, g->wdown, dres, a->h, w->wdown, d.N, d.F, d.C);
        qtx_swiglu_bwd(m->dgu, m->dh, a->gu, d.N, d.F);
        qtx_linear_bwd(dxn, g->wgu, m->dgu, a->xn2, w->wgu, d.N, d.C, 2 * d.F);
        qtx_rmsnorm_bwd(dres, g->ffn_norm, dxn, a->xmid, a->r2, w->ffn_norm, d.N, d.C);
        /* Attention: xmid = x + att Wo^T. */
        qtx_linear_bwd(m->datt, g->wo, dres, a->att, w->wo, d.N, d.qd, d.C);
        qtx_attention_bwd(m->dqkv, m->datt, a->qkv, a->att, a->lse, m->B, m->T, (int)d.H, (int)d.KV,
                          (int)d.hd, m->attn_scratch, m->n_threads);
        qtx_rope(m->dqkv, d.qkv, d.N, m->T, (int)(d.H + d.KV), (int)d.hd, m->rope_cos, m->rope_sin,
                 1);
        qtx_linear_bwd(dxn, g->wqkv, m->dqkv, a->xn1, w->wqkv, d.N, d.C, d.qkv);
        qtx_rmsnorm_bwd(dres, g->attn_norm, dxn, a->x, a->r1, w->attn_norm, d.N, d.C);
    }
    qtx_embedding_bwd(m->gv.token_embd, dres, m->inputs, d.N, d.C);
}

double qtx_model_train_step(qtx_model *m, const int32_t *tokens, float grad_scale) {
    const dims d = model_dims(m);
    split_batch(m, tokens);
    forward(m);
    double loss = qtx_head_xent(m->dxn, m->gv.output, m->xnf, m->pv.output, m->targets, d.N, d.C,
                                d.V, grad_scale, m->head_scratch, m->head_chunk);
    backward(m);
    return loss;
}

double qtx_model_eval_loss(qtx_model *m, const int32_t *tokens) {
    const dims d = model_dims(m);
    split_batch(m, tokens);
    forward(m);
    return qtx_head_xent(NULL, NULL, m->xnf, m->pv.output, m->targets, d.N, d.C, d.V, 0.0f,
                         m->head_scratch, m->head_chunk);
}

void qtx_model_logits(qtx_model *m, const int32_t *tokens, float *logits) {
    const dims d = model_dims(m);
    split_batch(m, tokens);
    forward(m);
    qtx_linear_fwd(logits, m->xnf, m->pv.output, d.N, d.C, d.V, 0);
}
