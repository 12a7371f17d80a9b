/* params.h: the parameter layout: every named tensor of the model, its global shape, the
 * slice this rank holds, and its offset in the rank's one contiguous buffer.
 *
 * Parameters and gradients use the same layout, so a collective or the optimizer can work on
 * any flat range. Within a layer, attn_q/attn_k/attn_v are adjacent (one fused QKV GEMM) and
 * so are ffn_gate/ffn_up (one fused gate-up GEMM). Names are llama.cpp's, without ".weight".
 */
#ifndef QTX_PARAMS_H
#define QTX_PARAMS_H

#include <stdint.h>

#include "model_config.h"

#define QTX_TENSOR_NAME_MAX 48

typedef struct qtx_tensor_desc {
    char name[QTX_TENSOR_NAME_MAX];
    int ndim;             /* 1 (norm weights) or 2 ([out, in] like torch Linear) */
    int64_t shape[2];     /* global shape; shape[1] = 1 when ndim == 1 */
    int64_t local[2];     /* this rank's slice shape */
    int split_dim;        /* -1 replicated, 0 rows split over tp, 1 columns split over tp */
    int64_t split_offset; /* first global row/column of this rank's slice along split_dim */
    int64_t offset;       /* in floats, into the rank's flat buffer */
    int64_t numel;        /* local element count */
    float init_std;       /* normal(0, init_std); 0 means constant 1 (norm weights) */
    int decay;            /* AdamW weight decay applies (2-D weights only) */
    int layer;            /* global layer index, -1 for non-layer tensors */
} qtx_tensor_desc;

/* Which part of the model this rank holds: a TP shard of a contiguous layer range. */
typedef struct qtx_shard_spec {
    int tp_rank, tp_size;
    int layer_begin, layer_end; /* [begin, end) */
    int has_embedding;          /* first pipeline stage */
    int has_head;               /* last pipeline stage (final norm + output head) */
} qtx_shard_spec;

/* A unit is the set of tensors whose gradients one step of backward finalises together: the
 * embedding, one layer, or the head (final norm and an untied output). Units are contiguous,
 * in buffer order, and are what data parallelism reduces as buckets. Backward finishes them
 * in reverse order: head, last layer ... first layer, embedding. */
typedef enum qtx_unit_kind { QTX_UNIT_EMBED, QTX_UNIT_LAYER, QTX_UNIT_HEAD } qtx_unit_kind;

typedef struct qtx_param_unit {
    qtx_unit_kind kind;
    int layer;          /* global layer for QTX_UNIT_LAYER, else -1 */
    int64_t begin, end; /* [begin, end) in floats of the flat buffer */
    int t_begin, t_end; /* its tensors: [t_begin, t_end) of the layout's */
} qtx_param_unit;

typedef struct qtx_param_layout {
    qtx_model_config cfg;
    qtx_shard_spec spec;
    int n_tensors;
    qtx_tensor_desc *tensors;
    int64_t n_floats; /* this rank's buffer length */
    int n_units;
    qtx_param_unit *units;
} qtx_param_layout;

/* The whole model on one rank. */
qtx_shard_spec qtx_shard_spec_full(const qtx_model_config *cfg);

void qtx_layout_build(qtx_param_layout *l, const qtx_model_config *cfg, const qtx_shard_spec *spec);
void qtx_layout_free(qtx_param_layout *l);

/* The tensor with this name, or NULL when this rank does not hold it. */
const qtx_tensor_desc *qtx_layout_find(const qtx_param_layout *l, const char *name);

/* Fills buf (l->n_floats) with the initial weights of this rank's slices: each element is
 * a function of (seed, tensor name, global element index) only. */
void qtx_layout_init_weights(const qtx_param_layout *l, float *buf, uint64_t seed);

/* Views of one layer's tensors inside a flat buffer (parameters or gradients). */
typedef struct qtx_layer_view {
    float *attn_norm; /* [C] */
    float *wqkv;      /* attn_q, attn_k, attn_v stacked: [(H + 2 KV) hd, C] (local rows) */
    float *wo;        /* attn_output [C, H hd] */
    float *ffn_norm;  /* [C] */
    float *wgu;       /* ffn_gate, ffn_up stacked: [2 F, C] */
    float *wdown;     /* ffn_down [C, F] */
} qtx_layer_view;

typedef struct qtx_model_view {
    float *token_embd;      /* [V, C], NULL off the first stage */
    float *output_norm;     /* [C], NULL off the last stage */
    float *output;          /* [V, C]: the head; token_embd when tied */
    qtx_layer_view *layers; /* indexed by local layer (global - layer_begin) */
    int n_layers;
} qtx_model_view;

void qtx_view_build(qtx_model_view *v, const qtx_param_layout *l, float *buf);
void qtx_view_free(qtx_model_view *v);

/* Points the views of unit u's tensors at base, which stands for flat offset units[u].begin
 * (ZeRO-2 backward writes each unit's gradients into a staging buffer). */
void qtx_view_bind_unit(qtx_model_view *v, const qtx_param_layout *l, int u, float *base);

/* The unit holding flat offset off. */
int qtx_layout_unit_of(const qtx_param_layout *l, int64_t off);

#endif
