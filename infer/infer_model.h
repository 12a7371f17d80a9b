/* infer_model.h: a Llama-family model for inference: weights of any supported format (f32,
 * f16, q8_0, q4_0) from a GGUF file or gathered from a training checkpoint, a paged KV
 * cache, and the forward pass over a batch of new tokens of one sequence (prompt: many
 * tokens as matrix-matrix products; decode: one token, matrix-vector).
 *
 * The math is the training model's (core/): RMSNorm, RoPE on pairs (2i, 2i+1) from the same
 * tables, grouped-query causal attention, SwiGLU; an f32 export reproduces the training
 * forward pass's logits.
 */
#ifndef QTX_INFER_MODEL_H
#define QTX_INFER_MODEL_H

#include <stdint.h>

#include "check.h"
#include "gguf.h"
#include "kv_cache.h"
#include "model_config.h"
#include "quant.h"
#include "tokenizer.h"

typedef struct qtx_qtensor {
    qtx_qtype type;
    const void *data; /* rows x row bytes of `type` */
    int64_t rows, cols;
} qtx_qtensor;

typedef struct qtx_infer_layer {
    const float *attn_norm, *ffn_norm;
    qtx_qtensor wq, wk, wv, wo, wgate, wup, wdown;
} qtx_infer_layer;

typedef struct qtx_infer_model {
    qtx_model_config cfg;
    char source[1024];   /* the file or directory it came from */
    qtx_qtype main_type; /* of the attention and MLP weights */
    qtx_qtensor token_embd, output;
    const float *output_norm;
    qtx_infer_layer *layers;
    void *owner;     /* what keeps the weights alive: a GGUF mapping or gathered buffers */
    int weights_own; /* the weights are this process's private copy: qtx_infer_start may
                      * repack q4_0 / q8_0 ones in place (core/quant.h) */
    void (*free_owner)(void *);
    qtx_tokenizer *tok; /* the model's tokenizer when its source carries one, else NULL */
    void (*free_tok)(qtx_tokenizer *); /* how qtx_infer_free releases tok */
    char tokenizer_hash[80]; /* SHA-256 of the training tokenizer.json, as shards carry it */

    /* Runtime state for up to max_batch tokens at once. */
    qtx_kv_cache *kv;
    int seq;
    int64_t n_past; /* tokens in the cache */
    int64_t ctx;    /* capacity */
    int max_batch;
    float *x, *xn, *q, *k, *v, *att, *g, *u, *tmp, *rstd, *kv_scratch;
    float *rope_cos, *rope_sin; /* [ctx, hd/2] */
    void *qscratch;

    /* Optional check of a quantized cache: an f32 twin attended side by side, and the cosine
     * similarity of every head's output against it (qtx_infer_compare_kv). */
    qtx_kv_cache *kv_ref;
    int seq_ref;
    float *att_ref;
    double cos_min, cos_sum;
    int64_t cos_n;
} qtx_infer_model;

/* Opens a GGUF file: weights stay in its mapping (QTX_GGUF_MAP) or in a copy on huge pages
 * (QTX_GGUF_COPY, faster decoding; gguf.h). */
int qtx_infer_load_gguf(qtx_infer_model *m, const char *path, qtx_gguf_load how, qtx_err *e);

/* For other sources (ckpt/ gathers a training checkpoint): finds tensor `name` (llama.cpp
 * name without ".weight") into *t, or returns QTX_ERR_INPUT naming what is missing. */
typedef int (*qtx_infer_tensor_fn)(void *ctx, const char *name, int64_t rows, int64_t cols,
                                   qtx_qtensor *t, qtx_err *e);
/* Builds the model from cfg and a tensor source; owner (may be NULL) is released with
 * free_owner when the model is freed. */
int qtx_infer_build(qtx_infer_model *m, const qtx_model_config *cfg, qtx_infer_tensor_fn get,
                    void *ctx, void *owner, void (*free_owner)(void *), const char *source,
                    qtx_err *e);

/* Sizes the KV cache (ctx tokens of one sequence, keys and values of kv_type) and the
 * batch buffers. */
int qtx_infer_start(qtx_infer_model *m, int64_t ctx, qtx_kv_type k_type, qtx_kv_type v_type,
                    int max_batch, qtx_err *e);
/* Keeps an f32 twin of the cache from now on and measures each attention output against it. */
int qtx_infer_compare_kv(qtx_infer_model *m, qtx_err *e);

/* Forgets the sequence (the cache is emptied, its blocks return to the pool). */
void qtx_infer_reset(qtx_infer_model *m, qtx_err *e);

/* Runs n new tokens (at positions n_past ...) and writes logits: the last token's [V] into
 * logits when all_logits is 0, every token's [n, V] otherwise. n <= max_batch; beyond the
 * context it is an error. */
int qtx_infer_forward(qtx_infer_model *m, const int32_t *tokens, int n, float *logits,
                      int all_logits, qtx_err *e);

/* What every forward pass checks first (the CPU's and the GPU's): 1 <= n <= max_batch, room
 * for n more tokens after n_past in ctx, every token in the vocabulary. */
int qtx_infer_check_batch(const qtx_model_config *c, const int32_t *tokens, int n, int max_batch,
                          int64_t n_past, int64_t ctx, qtx_err *e);

void qtx_infer_free(qtx_infer_model *m);

#endif
