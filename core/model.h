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

#include "backend.h"
#include "check.h"
#include "kernels.h"
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

/* What the model needs from the layers above it (parallel/), as callbacks so core knows
 * nothing of MPI. Any member may be NULL. */
typedef struct qtx_model_hooks {
    qtx_tp_ops tp; /* reductions over the tensor-parallel group; NULL sum when tp = 1 */
    void *ctx;
    /* Backward is about to accumulate into unit u's gradients (params.h units): ZeRO-2
     * binds a staging buffer here. Called once per unit per backward. */
    void (*grads_begin)(void *ctx, int unit);
    /* Backward has finished unit u's gradients of this micro-batch: data parallelism may
     * start reducing them. */
    void (*grads_done)(void *ctx, int unit);
} qtx_model_hooks;

typedef struct qtx_model_options {
    int B, T;     /* micro-batch shape the activation arena is sized for */
    int n_slots;  /* micro-batches whose activations are kept at once (pipeline); >= 1 */
    int no_grads; /* 1: no gradient buffer (ZeRO-2 binds staging per unit) */
    qtx_model_hooks hooks;
    /* Where it computes; NULL: the CPU on the current OpenMP thread count. With a backend
     * whose memory is not the host's, the hooks' reductions and the pipeline's transfers
     * get that backend's pointers (parallel/ gives them NCCL communicators on GPUs). */
    const qtx_backend *backend;
} qtx_model_options;

/* The activations of one micro-batch in flight. */
typedef struct qtx_slot {
    qtx_layer_acts *acts;      /* per local layer */
    float *x_out;              /* [N, C] output of the last local layer */
    float *xnf, *rf;           /* final norm output and inverse RMS (last stage) */
    int32_t *inputs, *targets; /* [N] copies of the batch split */
} qtx_slot;

typedef struct qtx_model {
    qtx_backend be; /* params, grads and the arena are its memory */
    qtx_model_config cfg;
    qtx_param_layout layout;
    float *params; /* layout.n_floats */
    float *grads;  /* layout.n_floats, or NULL with options.no_grads */
    qtx_model_view pv, gv;
    int B, T; /* micro-batch shape the arena was sized for */
    qtx_model_hooks hooks;

    /* The activation arena and what is carved from it. */
    float *arena;
    size_t arena_bytes;
    int n_slots;
    qtx_slot *slots;
    float *dres, *dxn;  /* [N, C] residual and normed-input gradients */
    float *dqkv, *datt; /* backward scratch */
    float *dgu, *dh;
    float *head_scratch; /* head_chunk * (V / tp + 4) */
    int64_t head_chunk;
    float *attn_scratch; /* what be.attention_scratch_floats asks */
    float *rope_cos, *rope_sin;
    int32_t *host_tok; /* [2 N] host staging of a batch's tokens (device backends; else NULL) */
} qtx_model;

/* Sizes and allocates everything; weights are zero until qtx_model_init_weights or a load. */
void qtx_model_create_ex(qtx_model *m, const qtx_model_config *cfg, const qtx_shard_spec *spec,
                         const qtx_model_options *o);
/* One slot, a gradient buffer, no hooks: the whole model on one rank. */
void qtx_model_create(qtx_model *m, const qtx_model_config *cfg, const qtx_shard_spec *spec, int B,
                      int T);
void qtx_model_destroy(qtx_model *m);

void qtx_model_init_weights(qtx_model *m, uint64_t seed);
void qtx_model_zero_grads(qtx_model *m);

/* Checks every id of tokens [B, T+1] is in [0, vocab). */
int qtx_model_check_tokens(const qtx_model *m, const int32_t *tokens, int64_t n, qtx_err *e);

/* ---- One pipeline stage's part of a micro-batch, kept in slot s ----
 * forward: tokens [B, T+1] (inputs [:, :T], targets [:, 1:]); the first stage embeds, a later
 * stage reads its input from qtx_model_stage_input(m, s), filled by the caller. The last
 * stage ends with the final norm; others leave their output in qtx_model_stage_output.
 * backward: the last stage runs the head and cross-entropy (loss scaled by grad_scale per
 * token) and returns the summed unscaled loss; another stage starts from the gradient of its
 * output, which the caller writes into qtx_model_grad_io(m) and returns 0. Afterwards
 * qtx_model_grad_io(m) holds the gradient of the stage's input (for the previous stage).
 * Gradients accumulate (+=). */
void qtx_model_forward(qtx_model *m, int s, const int32_t *tokens);
double qtx_model_backward(qtx_model *m, int s, float grad_scale);
/* Last stage, after qtx_model_forward: the summed loss of slot s, forward only. */
double qtx_model_head_loss(qtx_model *m, int s);
float *qtx_model_stage_input(qtx_model *m, int s);
float *qtx_model_stage_output(qtx_model *m, int s);
float *qtx_model_grad_io(qtx_model *m);
int64_t qtx_model_io_floats(const qtx_model *m); /* B * T * dim */

/* The whole model on one stage: forward and backward of slot 0. Returns the summed loss. */
double qtx_model_train_step(qtx_model *m, const int32_t *tokens, float grad_scale);

/* Forward only: summed loss of the B*T positions. */
double qtx_model_eval_loss(qtx_model *m, const int32_t *tokens);

/* Forward only, writing all logits [B, T, V] (tests and inference; tp = 1). */
void qtx_model_logits(qtx_model *m, const int32_t *tokens, float *logits);

#endif
