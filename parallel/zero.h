/* zero.h: data parallelism and ZeRO over the DP group: gradients reduced in buckets while
 * backward runs, optimizer state (and with stage 2 gradients) sharded, parameters
 * all-gathered after the update.
 *
 * Buckets are the model's gradient units (params.h): one per layer, the embedding and the
 * head. A bucket is split over the DP ranks in near-equal contiguous parts (the first
 * len % dp ranks take one more element), so any parameter count works with no padding
 * buffer; rank r owns part r of every bucket. Its optimizer state is those parts back to
 * back.
 *   stage 0: all-reduce each bucket; every rank updates the whole stage.
 *   stage 1: reduce-scatter each bucket; update the own parts; all-gather parameters.
 *   stage 2: as 1, but backward writes each bucket into a small staging buffer that is
 *            reduce-scattered at once, every micro-batch, and added into the own-part
 *            gradient shard: no full gradient buffer exists (DeepSpeed's ZeRO-2).
 * With a tied head over pp > 1 the embedding bucket is first summed between the first and
 * last stage (grid.embed), then reduced like the others, at the end of backward.
 */
#ifndef QTX_ZERO_H
#define QTX_ZERO_H

#include <stdint.h>

#include "comm.h"
#include "grid.h"
#include "model.h"
#include "optim_config.h"

typedef struct qtx_bucket {
    int64_t begin, end;         /* flat range of the stage buffer (a gradient unit) */
    int64_t *counts;            /* dp_size parts */
    int64_t own_begin, own_end; /* this rank's part */
    int64_t shard_pos;          /* where the part starts in the shard buffers */
} qtx_bucket;

typedef struct qtx_zero_memory {
    int64_t params, grads, optim, staging; /* bytes per rank */
    int64_t psi;                           /* parameters of this rank's model shard */
    int64_t shard;                         /* elements this rank owns (stage >= 1) */
} qtx_zero_memory;

typedef struct qtx_zero {
    const qtx_grid *g;
    qtx_model *model;
    qtx_backend *be; /* the model's: every buffer below is its memory */
    qtx_comm *dp;    /* the DP group over that memory (g->dp, or its NCCL twin on GPUs) */
    qtx_comm *embed; /* g->embed over that memory, or NULL */
    const qtx_optim_config *oc;
    int stage;
    int n_buckets;
    qtx_bucket *b;
    int64_t shard_floats; /* own elements over all buckets; the whole stage with stage 0 */
    float *m, *v;         /* AdamW moments of the owned elements */
    float *gshard;        /* stage 2: reduced gradients of the owned elements */
    /* stage 2 staging: two rotating bucket buffers, and one for the embedding bucket, which
     * backward may touch twice (tied head) and which waits for the embedding group. */
    float *ring[2];
    int ring_bucket[2];
    qtx_comm_req *ring_req[2];
    int64_t ring_floats;
    float *emb_stage;
    int64_t emb_floats;
    int next_ring;
    int emb_bucket;         /* index of the embedding bucket, -1 when none */
    int last_micro;         /* the backward running is the step's last micro-batch */
    int first_micro;        /* the backward running is the step's first micro-batch */
    qtx_comm_req **pending; /* stage 0/1: per bucket, its reduction in flight */
} qtx_zero;

/* Sizes buckets and shards and allocates the optimizer state (and stage-2 buffers) on the
 * model's backend; dp and embed carry that memory between the DP ranks and between the first
 * and last stage (NULL: g->dp, g->embed). The model must have been created with
 * no_grads = (stage == 2) and these hooks. */
void qtx_zero_create(qtx_zero *z, const qtx_grid *g, qtx_model *model, const qtx_optim_config *oc,
                     qtx_comm *dp, qtx_comm *embed);
void qtx_zero_destroy(qtx_zero *z);
/* The model hooks that drive the reductions; ctx is z. */
void qtx_zero_hooks(qtx_zero *z, qtx_model_hooks *h);

void qtx_zero_begin_step(qtx_zero *z);
/* Before each micro-batch's backward. */
void qtx_zero_begin_micro(qtx_zero *z, int first, int last);
/* After the last backward: waits for every reduction. */
void qtx_zero_finish_grads(qtx_zero *z);
/* This rank's share of the squared global gradient norm (each element counted once over the
 * whole grid); sum it over the world. */
double qtx_zero_grad_sq(const qtx_zero *z);
/* AdamW on the owned elements (t: 1-based step), then the parameter all-gather. */
void qtx_zero_update(qtx_zero *z, double lr, float clip_scale, int64_t t);

qtx_zero_memory qtx_zero_memory_use(const qtx_zero *z);

/* Gradient of owned element range [off, off + n) after qtx_zero_finish_grads, for the
 * norm and the update: a pointer into the backend's memory. */
const float *qtx_zero_grad_at(const qtx_zero *z, int bucket, int64_t off);

#endif
