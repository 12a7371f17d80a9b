/* params.c: building the parameter layout and initialising weights. */
#include "params.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "rng.h"

typedef struct layout_builder {
    qtx_param_layout *l;
    int cap;
} layout_builder;

/* Adds a tensor; split_dim says how TP splits it (-1 replicated). */
static void add(layout_builder *b, const char *name, int ndim, int64_t rows, int64_t cols,
                int split_dim, float init_std, int layer) {
    qtx_param_layout *l = b->l;
    if (l->n_tensors == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 32;
        l->tensors = qtx_realloc(l->tensors, (size_t)b->cap * sizeof *l->tensors);
    }
    qtx_tensor_desc *t = &l->tensors[l->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->local[0] = rows;
    t->local[1] = cols;
    t->split_dim = split_dim;
    int tp = l->spec.tp_size, r = l->spec.tp_rank;
    if (split_dim >= 0 && tp > 1) {
        QTX_CHECK(t->shape[split_dim] % tp == 0, "%s: dim %d (%lld) not divisible by tp %d", name,
                  split_dim, (long long)t->shape[split_dim], tp);
        t->local[split_dim] = t->shape[split_dim] / tp;
        t->split_offset = t->local[split_dim] * r;
    }
    t->numel = t->local[0] * t->local[1];
    t->offset = l->n_floats;
    t->init_std = init_std;
    t->decay = ndim == 2;
    t->layer = layer;
    l->n_floats += t->numel;
}

/* Groups consecutive tensors into units: token_embd; each layer; output_norm and output. */
static void build_units(qtx_param_layout *l) {
    l->units = qtx_calloc((size_t)l->n_tensors, sizeof *l->units);
    l->n_units = 0;
    for (int i = 0; i < l->n_tensors; i++) {
        const qtx_tensor_desc *t = &l->tensors[i];
        const qtx_unit_kind kind = t->layer >= 0                    ? QTX_UNIT_LAYER
                                   : !strcmp(t->name, "token_embd") ? QTX_UNIT_EMBED
                                                                    : QTX_UNIT_HEAD;
        qtx_param_unit *u = l->n_units ? &l->units[l->n_units - 1] : NULL;
        if (!u || u->kind != kind || u->layer != t->layer) {
            u = &l->units[l->n_units++];
            u->kind = kind;
            u->layer = t->layer;
            u->begin = t->offset;
            u->t_begin = i;
        }
        u->end = t->offset + t->numel;
        u->t_end = i + 1;
    }
}

int qtx_layout_unit_of(const qtx_param_layout *l, int64_t off) {
    for (int u = 0; u < l->n_units; u++)
        if (off >= l->units[u].begin && off < l->units[u].end) return u;
    return -1;
}

qtx_shard_spec qtx_shard_spec_full(const qtx_model_config *cfg) {
    qtx_shard_spec s = {0, 1, 0, cfg->n_layers, 1, 1};
    return s;
}

void qtx_layout_build(qtx_param_layout *l, const qtx_model_config *cfg,
                      const qtx_shard_spec *spec) {
    memset(l, 0, sizeof *l);
    l->cfg = *cfg;
    l->spec = *spec;
    layout_builder b = {l, 0};
    const int64_t C = cfg->dim, hd = cfg->dim / cfg->n_heads, F = cfg->ffn_dim, V = cfg->vocab_size;
    const int64_t qd = cfg->n_heads * hd, kvd = cfg->n_kv_heads * hd;
    const float std = 0.02f, std_out = 0.02f / sqrtf(2.0f * (float)cfg->n_layers);
    char name[QTX_TENSOR_NAME_MAX];
    if (spec->has_embedding || (spec->has_head && cfg->tie_embeddings))
        add(&b, "token_embd", 2, V, C, 0, std, -1);
    for (int i = spec->layer_begin; i < spec->layer_end; i++) {
#define LAYER_TENSOR(suffix, nd, rows, cols, split, sd)                                            \
    snprintf(name, sizeof name, "blk.%d." suffix, i);                                              \
    add(&b, name, nd, rows, cols, split, sd, i)
        LAYER_TENSOR("attn_norm", 1, C, 1, -1, 0.0f);
        LAYER_TENSOR("attn_q", 2, qd, C, 0, std);
        LAYER_TENSOR("attn_k", 2, kvd, C, 0, std);
        LAYER_TENSOR("attn_v", 2, kvd, C, 0, std);
        LAYER_TENSOR("attn_output", 2, C, qd, 1, std_out);
        LAYER_TENSOR("ffn_norm", 1, C, 1, -1, 0.0f);
        LAYER_TENSOR("ffn_gate", 2, F, C, 0, std);
        LAYER_TENSOR("ffn_up", 2, F, C, 0, std);
        LAYER_TENSOR("ffn_down", 2, C, F, 1, std_out);
#undef LAYER_TENSOR
    }
    if (spec->has_head) {
        add(&b, "output_norm", 1, C, 1, -1, 0.0f, -1);
        if (!cfg->tie_embeddings) add(&b, "output", 2, V, C, 0, std, -1);
    }
    build_units(l);
}

void qtx_layout_free(qtx_param_layout *l) {
    free(l->tensors);
    free(l->units);
    l->tensors = NULL;
    l->units = NULL;
    l->n_tensors = 0;
    l->n_units = 0;
}

const qtx_tensor_desc *qtx_layout_find(const qtx_param_layout *l, const char *name) {
    for (int i = 0; i < l->n_tensors; i++)
        if (!strcmp(l->tensors[i].name, name)) return &l->tensors[i];
    return NULL;
}

void qtx_layout_init_weights(const qtx_param_layout *l, float *buf, uint64_t seed) {
    for (int i = 0; i < l->n_tensors; i++) {
        const qtx_tensor_desc *t = &l->tensors[i];
        float *dst = buf + t->offset;
        if (t->init_std == 0.0f) {
            for (int64_t k = 0; k < t->numel; k++) dst[k] = 1.0f;
            continue;
        }
        const uint64_t stream = qtx_rng_stream(t->name);
        const int64_t r0 = t->split_dim == 0 ? t->split_offset : 0;
        const int64_t c0 = t->split_dim == 1 ? t->split_offset : 0;
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < t->local[0]; r++)
            for (int64_t c = 0; c < t->local[1]; c++) {
                uint64_t global = (uint64_t)((r0 + r) * t->shape[1] + c0 + c);
                dst[r * t->local[1] + c] =
                    (float)(t->init_std * qtx_rng_normal(seed, stream, global));
            }
    }
}

static float *find_ptr(const qtx_param_layout *l, float *buf, const char *name) {
    const qtx_tensor_desc *t = qtx_layout_find(l, name);
    return t ? buf + t->offset : NULL;
}

void qtx_view_build(qtx_model_view *v, const qtx_param_layout *l, float *buf) {
    memset(v, 0, sizeof *v);
    const qtx_shard_spec *s = &l->spec;
    v->token_embd = s->has_embedding ? find_ptr(l, buf, "token_embd") : NULL;
    v->output_norm = find_ptr(l, buf, "output_norm");
    if (s->has_head) v->output = find_ptr(l, buf, l->cfg.tie_embeddings ? "token_embd" : "output");
    v->n_layers = s->layer_end - s->layer_begin;
    v->layers = qtx_calloc((size_t)(v->n_layers > 0 ? v->n_layers : 1), sizeof *v->layers);
    char name[QTX_TENSOR_NAME_MAX];
    for (int i = 0; i < v->n_layers; i++) {
        qtx_layer_view *lv = &v->layers[i];
        int g = s->layer_begin + i;
#define PTR(field, suffix)                                                                         \
    snprintf(name, sizeof name, "blk.%d." suffix, g);                                              \
    lv->field = find_ptr(l, buf, name);                                                            \
    QTX_CHECK(lv->field, "layout has no %s", name)
        PTR(attn_norm, "attn_norm");
        PTR(wqkv, "attn_q");
        PTR(wo, "attn_output");
        PTR(ffn_norm, "ffn_norm");
        PTR(wgu, "ffn_gate");
        PTR(wdown, "ffn_down");
#undef PTR
    }
}

/* The tensor of unit u whose name ends in suffix, placed in base (which stands for the
 * unit's first float); NULL when the unit has none. */
static float *unit_ptr(const qtx_param_layout *l, int u, float *base, const char *suffix) {
    const qtx_param_unit *pu = &l->units[u];
    const size_t ns = strlen(suffix);
    for (int i = pu->t_begin; i < pu->t_end; i++) {
        const qtx_tensor_desc *t = &l->tensors[i];
        const size_t n = strlen(t->name);
        if (n >= ns && !strcmp(t->name + n - ns, suffix)) return base + (t->offset - pu->begin);
    }
    return NULL;
}

void qtx_view_bind_unit(qtx_model_view *v, const qtx_param_layout *l, int u, float *base) {
    const qtx_param_unit *pu = &l->units[u];
    switch (pu->kind) {
    case QTX_UNIT_EMBED:
        if (l->spec.has_embedding) v->token_embd = base;
        if (l->cfg.tie_embeddings && l->spec.has_head) v->output = base;
        break;
    case QTX_UNIT_HEAD:
        v->output_norm = unit_ptr(l, u, base, "output_norm");
        if (!l->cfg.tie_embeddings) v->output = unit_ptr(l, u, base, "output");
        break;
    case QTX_UNIT_LAYER: {
        qtx_layer_view *lv = &v->layers[pu->layer - l->spec.layer_begin];
        lv->attn_norm = unit_ptr(l, u, base, ".attn_norm");
        lv->wqkv = unit_ptr(l, u, base, ".attn_q");
        lv->wo = unit_ptr(l, u, base, ".attn_output");
        lv->ffn_norm = unit_ptr(l, u, base, ".ffn_norm");
        lv->wgu = unit_ptr(l, u, base, ".ffn_gate");
        lv->wdown = unit_ptr(l, u, base, ".ffn_down");
        break;
    }
    }
}

void qtx_view_free(qtx_model_view *v) {
    free(v->layers);
    v->layers = NULL;
}
