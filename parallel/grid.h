/* grid.h: the world of ranks as a dp x pp x tp grid (tp fastest-varying, so a TP group is
 * adjacent ranks), with a communicator per axis, and where each rank's model shard lies.
 */
#ifndef QTX_GRID_H
#define QTX_GRID_H

#include "check.h"
#include "comm.h"
#include "model_config.h"
#include "parallel_config.h"
#include "params.h"

typedef struct qtx_grid {
    qtx_comm *world, *dp, *tp, *pp;
    qtx_comm *embed; /* first and last stage of one (dp, tp) pipeline when pp > 1 and the head
                        is tied to the embedding: they keep token_embd in sync; else NULL */
    int world_size, rank;
    int dp_size, tp_size, pp_size;
    int dp_rank, tp_rank, pp_rank;
    int zero;
    qtx_shard_spec spec; /* this rank's TP slice of its stage's layers */
} qtx_grid;

/* Resolves dp = auto and checks the layout against the world size and the model: every
 * inconsistency is one line naming the keys and the fix (QTX_ERR_INPUT). stage_layers lists
 * each stage's layer count (NULL or empty: as even as possible, earlier stages take the
 * remainder). Pure: no communication, so every rank reaches the same verdict. */
int qtx_grid_plan(qtx_parallel_config *p, const qtx_model_config *m, int world_size,
                  const char *stage_layers, int layers_out[], qtx_err *e);

/* Splits world into the axis groups (collective). p must have passed qtx_grid_plan. */
void qtx_grid_create(qtx_grid *g, qtx_comm *world, const qtx_parallel_config *p,
                     const qtx_model_config *m, const int stage_layers[]);
void qtx_grid_destroy(qtx_grid *g);

/* Collective over world: every rank learns whether any rank failed (rc != 0). The lowest
 * failing rank keeps its message in e; every other rank's e->msg is emptied, so exactly one
 * line is reported. Returns the worst code on every rank. */
int qtx_comm_agree(qtx_comm *world, int rc, qtx_err *e);

#endif
