/* model.c: the forward and backward passes of the whole model, composed from the operations
 * of its backend (backend.h: kernels.h on the CPU, or the CUDA kernels). */
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
    d.V = c->vocab_size / tp; /* this rank's vocabulary slice */
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
    for (int s = 0; s < m->n_slots; s++) {
        qtx_slot *sl = &m->slots[s];
        for (int l = 0; l < L; l++) {
            qtx_layer_acts *a = &sl->acts[l];
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
        sl->x_out = CARVE_F(cv, d.N * d.C);
        if (m->layout.spec.has_head) {
            sl->xnf = CARVE_F(cv, d.N * d.C);
            sl->rf = CARVE_F(cv, d.N);
        }
        sl->inputs = (int32_t *)carve(cv, (size_t)d.N * sizeof(int32_t));
        sl->targets = (int32_t *)carve(cv, (size_t)d.N * sizeof(int32_t));
    }
    m->dres = CARVE_F(cv, d.N * d.C);
    m->dxn = CARVE_F(cv, d.N * d.C);
    m->dqkv = CARVE_F(cv, d.N * d.qkv);
    m->datt = CARVE_F(cv, d.N * d.qd);
    m->dgu = CARVE_F(cv, d.N * 2 * d.F);
    m->dh = CARVE_F(cv, d.N * d.F);
    if (m->layout.spec.has_head) m->head_scratch = CARVE_F(cv, m->head_chunk * (d.V + 4));
    m->attn_scratch = CARVE_F(cv, m->be.attention_scratch_floats(&m->be, m->B, m->T, (int)d.H));
    m->rope_cos = CARVE_F(cv, (int64_t)m->T * d.hd / 2);
    m->rope_sin = CARVE_F(cv, (int64_t)m->T * d.hd / 2);
}

void qtx_model_create_ex(qtx_model *m, const qtx_model_config *cfg, const qtx_shard_spec *spec,
                         const qtx_model_options *o) {
    memset(m, 0, sizeof *m);
    QTX_CHECK(o->n_slots >= 1 && o->B >= 1 && o->T >= 1, "bad model options");
    m->cfg = *cfg;
    m->B = o->B;
    m->T = o->T;
    m->hooks = o->hooks;
    m->n_slots = o->n_slots;
    m->be = o->backend ? *o->backend : qtx_backend_cpu(qtx_num_threads());
    qtx_layout_build(&m->layout, cfg, spec);
    const size_t pbytes = (size_t)m->layout.n_floats * sizeof(float);
    m->params = m->be.alloc(&m->be, pbytes);
    if (m->be.bind_params) m->be.bind_params(&m->be, m->params, m->layout.n_floats);
    m->grads = o->no_grads ? NULL : m->be.alloc(&m->be, pbytes);
    qtx_view_build(&m->pv, &m->layout, m->params);
    qtx_view_build(&m->gv, &m->layout, m->grads ? m->grads : m->params);
    if (!m->grads) { /* every gradient view is bound per unit during backward */
        m->gv.token_embd = m->gv.output_norm = m->gv.output = NULL;
        memset(m->gv.layers, 0, (size_t)m->gv.n_layers * sizeof *m->gv.layers);
    }
    m->slots = qtx_calloc((size_t)m->n_slots, sizeof *m->slots);
    for (int s = 0; s < m->n_slots; s++)
        m->slots[s].acts =
            qtx_calloc((size_t)(m->pv.n_layers > 0 ? m->pv.n_layers : 1), sizeof(qtx_layer_acts));
    /* Head chunk: about 4M logits at a time, at least 64 rows. */
    const int64_t N = (int64_t)o->B * o->T, Vl = cfg->vocab_size / spec->tp_size;
    int64_t chunk = ((int64_t)4 << 20) / Vl;
    if (chunk < 64) chunk = 64;
    m->head_chunk = chunk < N ? chunk : N;
    carver cv = {NULL, 0};
    carve_all(m, &cv);
    m->arena_bytes = cv.used;
    m->arena = m->be.alloc(&m->be, m->arena_bytes);
    cv = (carver){(char *)m->arena, 0};
    carve_all(m, &cv);
    if (!m->be.host_memory) m->host_tok = qtx_malloc(2 * (size_t)N * sizeof(int32_t));
    const dims d = model_dims(m);
    const size_t tab = (size_t)o->T * (size_t)(d.hd / 2) * sizeof(float);
    float *cs = qtx_malloc(2 * tab); /* tables made on the host, then moved to the backend */
    qtx_rope_tables(cs, cs + tab / sizeof(float), o->T, (int)d.hd, cfg->rope_theta);
    m->be.to_device(&m->be, m->rope_cos, cs, tab);
    m->be.to_device(&m->be, m->rope_sin, cs + tab / sizeof(float), tab);
    free(cs);
}

void qtx_model_create(qtx_model *m, const qtx_model_config *cfg, const qtx_shard_spec *spec, int B,
                      int T) {
    qtx_model_options o = {0};
    o.B = B;
    o.T = T;
    o.n_slots = 1;
    qtx_model_create_ex(m, cfg, spec, &o);
}

void qtx_model_destroy(qtx_model *m) {
    m->be.free(&m->be, m->arena, m->arena_bytes);
    if (m->be.bind_params) m->be.bind_params(&m->be, m->params, 0);
    m->be.free(&m->be, m->params, (size_t)m->layout.n_floats * sizeof(float));
    if (m->grads) m->be.free(&m->be, m->grads, (size_t)m->layout.n_floats * sizeof(float));
    free(m->host_tok);
    qtx_view_free(&m->pv);
    qtx_view_free(&m->gv);
    for (int s = 0; s < m->n_slots; s++) free(m->slots[s].acts);
    free(m->slots);
    qtx_layout_free(&m->layout);
    memset(m, 0, sizeof *m);
}

void qtx_model_init_weights(qtx_model *m, uint64_t seed) {
    if (m->be.host_memory) {
        qtx_layout_init_weights(&m->layout, m->params, seed);
        return;
    }
    const size_t bytes = (size_t)m->layout.n_floats * sizeof(float);
    float *h = qtx_malloc(bytes);
    qtx_layout_init_weights(&m->layout, h, seed);
    m->be.to_device(&m->be, m->params, h, bytes);
    free(h);
}

void qtx_model_zero_grads(qtx_model *m) {
    if (m->grads) m->be.zero(&m->be, m->grads, (size_t)m->layout.n_floats * sizeof(float));
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

/* Inputs and targets of slot sl; a device backend gets them through host staging. */
static void split_batch(qtx_model *m, qtx_slot *sl, const int32_t *tokens) {
    const int T = m->T;
    const int64_t N = (int64_t)m->B * T;
    int32_t *in = m->host_tok ? m->host_tok : sl->inputs;
    int32_t *tg = m->host_tok ? m->host_tok + N : sl->targets;
    for (int b = 0; b < m->B; b++) {
        memcpy(in + (int64_t)b * T, tokens + (int64_t)b * (T + 1), (size_t)T * sizeof(int32_t));
        memcpy(tg + (int64_t)b * T, tokens + (int64_t)b * (T + 1) + 1, (size_t)T * sizeof(int32_t));
    }
    if (!m->host_tok) return;
    m->be.to_device(&m->be, sl->inputs, in, (size_t)N * sizeof(int32_t));
    m->be.to_device(&m->be, sl->targets, tg, (size_t)N * sizeof(int32_t));
}

static const qtx_tp_ops *tp_ops(const qtx_model *m) {
    return m->layout.spec.tp_size > 1 && m->hooks.tp.sum ? &m->hooks.tp : NULL;
}

/* y = x_res + x_in W^T where W is row-parallel over TP: each rank's product is partial, so it
 * is summed over the group before the residual is added. */
static void row_parallel_residual(qtx_model *m, float *y, const float *x_res, const float *x_in,
                                  const float *W, int64_t n, int64_t in, int64_t out) {
    const qtx_tp_ops *tp = tp_ops(m);
    qtx_backend *be = &m->be;
    if (!tp) {
        be->copy(be, y, x_res, (size_t)(n * out) * sizeof(float));
        be->linear_fwd(be, y, x_in, W, n, in, out, 1);
        return;
    }
    be->linear_fwd(be, y, x_in, W, n, in, out, 0);
    tp->sum(tp->ctx, y, n * out);
    be->add(be, y, x_res, n * out);
}

/* The input gradient of a column-parallel layer is partial on each TP rank. */
static void tp_sum(const qtx_model *m, float *buf, int64_t n) {
    const qtx_tp_ops *tp = tp_ops(m);
    if (tp) tp->sum(tp->ctx, buf, n);
}

static int64_t vocab_offset(const qtx_model *m) {
    return (int64_t)m->layout.spec.tp_rank * (m->cfg.vocab_size / m->layout.spec.tp_size);
}

float *qtx_model_stage_input(qtx_model *m, int s) {
    return m->pv.n_layers > 0 ? m->slots[s].acts[0].x : m->slots[s].x_out;
}
float *qtx_model_stage_output(qtx_model *m, int s) {
    return m->slots[s].x_out;
}
float *qtx_model_grad_io(qtx_model *m) {
    return m->dres;
}
int64_t qtx_model_io_floats(const qtx_model *m) {
    return (int64_t)m->B * m->T * m->cfg.dim;
}

void qtx_model_forward(qtx_model *m, int s, const int32_t *tokens) {
    const dims d = model_dims(m);
    const float eps = m->cfg.norm_eps;
    const int L = m->pv.n_layers;
    qtx_slot *sl = &m->slots[s];
    qtx_backend *be = &m->be;
    split_batch(m, sl, tokens);
    if (m->layout.spec.has_embedding) {
        float *x0 = qtx_model_stage_input(m, s);
        be->embedding_fwd(be, x0, m->pv.token_embd, sl->inputs, d.N, d.C, vocab_offset(m), d.V);
        tp_sum(m, x0, d.N * d.C);
    }
    for (int l = 0; l < L; l++) {
        const qtx_layer_view *w = &m->pv.layers[l];
        qtx_layer_acts *a = &sl->acts[l];
        float *x_next = l + 1 < L ? sl->acts[l + 1].x : sl->x_out;
        be->rmsnorm_fwd(be, a->xn1, a->r1, a->x, w->attn_norm, d.N, d.C, eps);
        be->linear_fwd(be, a->qkv, a->xn1, w->wqkv, d.N, d.C, d.qkv, 0);
        be->rope(be, a->qkv, d.qkv, d.N, m->T, (int)(d.H + d.KV), (int)d.hd, m->rope_cos,
                 m->rope_sin, 0);
        be->attention_fwd(be, a->att, a->lse, a->qkv, m->B, m->T, (int)d.H, (int)d.KV, (int)d.hd,
                          m->attn_scratch);
        row_parallel_residual(m, a->xmid, a->x, a->att, w->wo, d.N, d.qd, d.C);
        be->rmsnorm_fwd(be, a->xn2, a->r2, a->xmid, w->ffn_norm, d.N, d.C, eps);
        be->linear_fwd(be, a->gu, a->xn2, w->wgu, d.N, d.C, 2 * d.F, 0);
        be->swiglu_fwd(be, a->h, a->gu, d.N, d.F);
        row_parallel_residual(m, x_next, a->xmid, a->h, w->wdown, d.N, d.F, d.C);
    }
    if (m->layout.spec.has_head)
        be->rmsnorm_fwd(be, sl->xnf, sl->rf, sl->x_out, m->pv.output_norm, d.N, d.C, eps);
}

static void hook_begin(qtx_model *m, int unit) {
    if (m->hooks.grads_begin) m->hooks.grads_begin(m->hooks.ctx, unit);
}
static void hook_done(qtx_model *m, int unit) {
    if (m->hooks.grads_done) m->hooks.grads_done(m->hooks.ctx, unit);
}

/* Unit indices: the embedding (when held) comes first, then the layers, then the head. */
static int embed_unit(const qtx_model *m) {
    return m->layout.n_units > 0 && m->layout.units[0].kind == QTX_UNIT_EMBED ? 0 : -1;
}
static int layer_unit(const qtx_model *m, int l) {
    return (embed_unit(m) == 0 ? 1 : 0) + l;
}

double qtx_model_backward(qtx_model *m, int s, float grad_scale) {
    const dims d = model_dims(m);
    const int L = m->pv.n_layers;
    const qtx_shard_spec *spec = &m->layout.spec;
    qtx_slot *sl = &m->slots[s];
    qtx_backend *be = &m->be;
    float *dres = m->dres, *dxn = m->dxn;
    const int eu = embed_unit(m);
    double loss = 0.0;
    if (spec->has_head) {
        const int hu = m->layout.n_units - 1;
        if (eu >= 0 && m->cfg.tie_embeddings) hook_begin(m, eu); /* the head writes token_embd */
        hook_begin(m, hu);
        loss =
            be->head_xent(be, dxn, m->gv.output, sl->xnf, m->pv.output, sl->targets, d.N, d.C, d.V,
                          vocab_offset(m), grad_scale, m->head_scratch, m->head_chunk, tp_ops(m));
        tp_sum(m, dxn, d.N * d.C);
        be->zero(be, dres, (size_t)(d.N * d.C) * sizeof(float));
        be->rmsnorm_bwd(be, dres, m->gv.output_norm, dxn, sl->x_out, sl->rf, m->pv.output_norm, d.N,
                        d.C);
        hook_done(m, hu);
    }
    for (int l = L - 1; l >= 0; l--) {
        const qtx_layer_view *w = &m->pv.layers[l];
        const qtx_layer_acts *a = &sl->acts[l];
        hook_begin(m, layer_unit(m, l));
        const qtx_layer_view *g = &m->gv.layers[l];
        /* MLP: x_next = xmid + h Wdown^T. dres passes through the residual unchanged. */
        be->linear_bwd(be, m->dh, g->wdown, dres, a->h, w->wdown, d.N, d.F, d.C);
        be->swiglu_bwd(be, m->dgu, m->dh, a->gu, d.N, d.F);
        be->linear_bwd(be, dxn, g->wgu, m->dgu, a->xn2, w->wgu, d.N, d.C, 2 * d.F);
        tp_sum(m, dxn, d.N * d.C);
        be->rmsnorm_bwd(be, dres, g->ffn_norm, dxn, a->xmid, a->r2, w->ffn_norm, d.N, d.C);
        /* Attention: xmid = x + att Wo^T. */
        be->linear_bwd(be, m->datt, g->wo, dres, a->att, w->wo, d.N, d.qd, d.C);
        be->attention_bwd(be, m->dqkv, m->datt, a->qkv, a->att, a->lse, m->B, m->T, (int)d.H,
                          (int)d.KV, (int)d.hd, m->attn_scratch);
        be->rope(be, m->dqkv, d.qkv, d.N, m->T, (int)(d.H + d.KV), (int)d.hd, m->rope_cos,
                 m->rope_sin, 1);
        be->linear_bwd(be, dxn, g->wqkv, m->dqkv, a->xn1, w->wqkv, d.N, d.C, d.qkv);
        tp_sum(m, dxn, d.N * d.C);
        be->rmsnorm_bwd(be, dres, g->attn_norm, dxn, a->x, a->r1, w->attn_norm, d.N, d.C);
        hook_done(m, layer_unit(m, l));
    }
    if (eu >= 0) {
        if (!(spec->has_head && m->cfg.tie_embeddings)) hook_begin(m, eu);
        if (spec->has_embedding)
            be->embedding_bwd(be, m->gv.token_embd, dres, sl->inputs, d.N, d.C, vocab_offset(m),
                              d.V);
        hook_done(m, eu);
    }
    return loss;
}

double qtx_model_head_loss(qtx_model *m, int s) {
    const dims d = model_dims(m);
    qtx_slot *sl = &m->slots[s];
    return m->be.head_xent(&m->be, NULL, NULL, sl->xnf, m->pv.output, sl->targets, d.N, d.C, d.V,
                           vocab_offset(m), 0.0f, m->head_scratch, m->head_chunk, tp_ops(m));
}

double qtx_model_train_step(qtx_model *m, const int32_t *tokens, float grad_scale) {
    qtx_model_forward(m, 0, tokens);
    return qtx_model_backward(m, 0, grad_scale);
}

double qtx_model_eval_loss(qtx_model *m, const int32_t *tokens) {
    qtx_model_forward(m, 0, tokens);
    return qtx_model_head_loss(m, 0);
}

void qtx_model_logits(qtx_model *m, const int32_t *tokens, float *logits) {
    const dims d = model_dims(m);
    QTX_CHECK(m->be.host_memory, "qtx_model_logits: host-memory backends only");
    qtx_model_forward(m, 0, tokens);
    m->be.linear_fwd(&m->be, logits, m->slots[0].xnf, m->pv.output, d.N, d.C, d.V, 0);
}
