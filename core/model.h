/* model.h: a Llama-family model on one rank: parameters, gradients, activations, and the
 * forward and backward passes over a micro-batch.
 *
 * Parameters live in one contiguous buffer and gradients in another, both in the order of
 * the parameter layout (params.h). Activations live in one arena sized at creation for
 * (micro_batch, seq_len); a training step allocates nothing.
 */
#ifndef QTX_MODEL_H
#define QTX_MODEL_H

#include <stdint.h>

#include "check.h"
#include "model_config.h"
#include "params.h"

/* Per-layer activations saved for backward; N = B * T rows. */
typedef struct qtx_layer_acts {
    float *x;    /* [N, C] layer input (residual stream) */
    float *xn1;  /* [N, C] attention RMSNorm output */
    float *r1;   /* [N] its inverse RMS */
    float *qkv;  /* [N, (H + 2 KV) hd] after RoPE */
    float *att;  /* [N, H hd] attention output before attn_output */
    float *lse;  /* [B, H, T] */
    float *xmid; /* [N, C] after the attention residual */
    float *xn2;  /* [N, C] */
    float *r2;   /* [N] */
    float *gu;   /* [N, 2 F] gate and up pre-activations */
    float *h;    /* [N, F] silu(gate) * up */
} qtx_layer_acts;

typedef struct qtx_model {
    qtx_model_config cfg;
    qtx_param_layout layout;
    float *params; /* layout.n_floats */
    float *grads;  /* layout.n_floats */
    qtx_model_view pv, gv;
    int B, T; /* micro-batch shape the arena was sized for */

    /* The activation arena and what is carved from it. */
    float *arena;
    size_t arena_bytes;
    qtx_layer_acts *acts; /* per local layer */
    float *x_out;         /* [N, C] output of the last layer */
    float *xnf, *rf;      /* final norm output and inverse RMS */
    float *dres, *dxn;    /* [N, C] residual and normed-input gradients */
    float *dqkv, *datt;   /* backward scratch */
    float *dgu, *dh;
    float *head_scratch; /* head_chunk * (V + 1) */
    int64_t head_chunk;
    float *attn_scratch; /* for n_threads threads */
    int n_threads;       /* OpenMP threads at creation: the attention kernels use at most these */
    float *rope_cos, *rope_sin;
    int32_t *inputs, *targets; /* [N] copies of the batch split */
} qtx_model;

/* Sizes and allocates everything; weights are zero until qtx_model_init_weights or a load. */
void qtx_model_create(qtx_model *m, const qtx_model_config *cfg, const qtx_shard_spec *spec, int B,
                      int T);
void qtx_model_destroy(qtx_model *m);

void qtx_model_init_weights(qtx_model *m, uint64_t seed);
void qtx_model_zero_grads(qtx_model *m);

/* Checks every id of tokens [B, T+1] is in [0, vocab). */
int qtx_model_check_tokens(const qtx_model *m, const int32_t *tokens, int64_t n, qtx_err *e);

/* Forward and backward over tokens [B, T+1] (inputs [:, :T], targets [:, 1:]). Gradients
 * accumulate (+=) with the loss scaled by grad_scale per token (1 / tokens in the optimizer
 * step). Returns the summed (unscaled) loss of the B*T positions. */
double qtx_model_train_step(qtx_model *m, const int32_t *tokens, float grad_scale);

/* Forward only: summed loss of the B*T positions. */
double qtx_model_eval_loss(qtx_model *m, const int32_t *tokens);

/* Forward only, writing all logits [B, T, V] (tests and inference). */
void qtx_model_logits(qtx_model *m, const int32_t *tokens, float *logits);

#endif
