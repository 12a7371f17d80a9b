/* engine.h: one rank's part of a training step over the dp x pp x tp grid: the pipeline
 * schedule over micro-batches, the TP reductions inside the model, and the DP/ZeRO gradient
 * reduction and update.
 *
 * Every rank of a (dp) replica receives the same local batch; the first stage embeds its
 * inputs, the last reads its targets. Losses and gradient norms returned are global (summed
 * over the world), so every rank takes the same decisions (skip, clip, stop).
 */
#ifndef QTX_ENGINE_H
#define QTX_ENGINE_H

#include <stdint.h>

#include "grid.h"
#include "model.h"
#include "optim_config.h"
#include "pipeline.h"
#include "zero.h"

typedef struct qtx_engine {
    qtx_grid *g;
    qtx_model model;
    qtx_zero zero;
    int B, T;    /* micro-batch shape */
    int n_micro; /* micro-batches per step on this replica */
    int n_actions;
    qtx_pp_action *actions; /* this stage's 1F1B schedule */
    qtx_comm *tp, *pp;      /* the TP and PP groups over the model's memory */
    double comm_wait_s;     /* time blocked on pipeline transfers, last step */
} qtx_engine;

/* Where an engine computes: the model's backend (NULL: the CPU) and the communicators that
 * carry that backend's memory between ranks, one per grid group (NULL: the grid's own, MPI
 * over host memory; NCCL twins of them for CUDA). */
typedef struct qtx_engine_device {
    const qtx_backend *backend;
    qtx_comm *dp, *tp, *pp, *embed;
} qtx_engine_device;

/* dev NULL: the CPU. */
void qtx_engine_create(qtx_engine *e, qtx_grid *g, const qtx_model_config *mc,
                       const qtx_optim_config *oc, int B, int T, int n_micro, uint64_t seed,
                       const qtx_engine_device *dev);
void qtx_engine_destroy(qtx_engine *e);

/* Forward and backward over n_micro micro-batches of batch [n_micro * B, T + 1], gradients
 * scaled by grad_scale per token; returns the loss summed over the whole global batch. */
double qtx_engine_forward_backward(qtx_engine *e, const int32_t *batch, float grad_scale);
/* Global gradient L2 norm (after qtx_engine_forward_backward). */
double qtx_engine_grad_norm(qtx_engine *e);
void qtx_engine_update(qtx_engine *e, double lr, float clip_scale, int64_t t);

/* Forward only over n micro-batches (each [B, T+1]); the summed loss over all DP replicas. */
double qtx_engine_eval(qtx_engine *e, const int32_t *batch, int n);

#endif
