/* grid.c: validating a parallel layout and splitting the world into its groups. */
#include "grid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses "a,b,c" into counts; returns how many, or -1 when malformed. */
static int parse_stage_layers(const char *s, int out[], int max) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1000000 || n == max) return -1;
        out[n++] = (int)v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return n;
}

int qtx_grid_plan(qtx_parallel_config *p, const qtx_model_config *m, int world_size,
                  const char *stage_layers, int layers_out[], qtx_err *e) {
    const int tp = p->tp, pp = p->pp;
    if (world_size % (tp * pp))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "world size %d is not a multiple of parallel.tp x parallel.pp = %d x %d = "
                        "%d; launch a multiple of %d ranks (mpirun -np) or change parallel.tp / "
                        "parallel.pp",
                        world_size, tp, pp, tp * pp, tp * pp);
    const int dp = world_size / (tp * pp);
    if (p->dp == 0) {
        p->dp = dp;
    } else if (p->dp != dp) {
        return qtx_fail(e, QTX_ERR_INPUT,
                        "parallel.dp x parallel.tp x parallel.pp = %d x %d x %d = %d but the world "
                        "has %d ranks; launch %d ranks (mpirun -np %d) or set parallel.dp to auto",
                        p->dp, tp, pp, p->dp * tp * pp, world_size, p->dp * tp * pp,
                        p->dp * tp * pp);
    }
    if (p->zero > 0 && p->dp == 1)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "parallel.zero = %d shards over data-parallel ranks but dp = 1 (world %d = "
                        "tp %d x pp %d); set parallel.zero to 0 or launch more ranks",
                        p->zero, world_size, tp, pp);
    if (stage_layers && stage_layers[0]) {
        int n = parse_stage_layers(stage_layers, layers_out, pp + 1);
        if (n < 0)
            return qtx_fail(e, QTX_ERR_INPUT,
                            "parallel.stage_layers = '%s' is not a comma-separated list of "
                            "positive layer counts, e.g. '3,5'",
                            stage_layers);
        int sum = 0;
        for (int i = 0; i < n; i++) sum += layers_out[i];
        if (n != pp || sum != m->n_layers)
            return qtx_fail(e, QTX_ERR_INPUT,
                            "parallel.stage_layers = '%s' must give %d counts (parallel.pp) that "
                            "sum to model.n_layers = %d (got %d counts summing to %d)",
                            stage_layers, pp, m->n_layers, n, sum);
    } else {
        for (int s = 0; s < pp; s++)
            layers_out[s] = m->n_layers / pp + (s < m->n_layers % pp ? 1 : 0);
    }
    return QTX_OK;
}

void qtx_grid_create(qtx_grid *g, qtx_comm *world, const qtx_parallel_config *p,
                     const qtx_model_config *m, const int stage_layers[]) {
    memset(g, 0, sizeof *g);
    g->world = world;
    g->world_size = qtx_comm_size(world);
    g->rank = qtx_comm_rank(world);
    g->dp_size = p->dp;
    g->tp_size = p->tp;
    g->pp_size = p->pp;
    g->zero = p->zero;
    QTX_CHECK(g->dp_size * g->tp_size * g->pp_size == g->world_size, "grid not planned");
    /* rank = (dp_rank * pp + pp_rank) * tp + tp_rank */
    g->tp_rank = g->rank % g->tp_size;
    g->pp_rank = (g->rank / g->tp_size) % g->pp_size;
    g->dp_rank = g->rank / (g->tp_size * g->pp_size);
    g->tp = qtx_comm_split(world, g->rank / g->tp_size, g->tp_rank, "tp");
    g->pp = qtx_comm_split(world, g->dp_rank * g->tp_size + g->tp_rank, g->pp_rank, "pp");
    g->dp = qtx_comm_split(world, g->pp_rank * g->tp_size + g->tp_rank, g->dp_rank, "dp");
    const int end_stage = g->pp_rank == 0 || g->pp_rank == g->pp_size - 1;
    if (g->pp_size > 1 && m->tie_embeddings) {
        /* Every rank takes part in the split; the middle stages get a group they never use. */
        const int color =
            end_stage ? g->dp_rank * g->tp_size + g->tp_rank : g->world_size + g->rank;
        g->embed = qtx_comm_split(world, color, g->pp_rank, "embed");
        if (!end_stage) {
            qtx_comm_free(g->embed);
            g->embed = NULL;
        }
    }
    int begin = 0;
    for (int s = 0; s < g->pp_rank; s++) begin += stage_layers[s];
    g->spec.tp_rank = g->tp_rank;
    g->spec.tp_size = g->tp_size;
    g->spec.layer_begin = begin;
    g->spec.layer_end = begin + stage_layers[g->pp_rank];
    g->spec.has_embedding = g->pp_rank == 0;
    g->spec.has_head = g->pp_rank == g->pp_size - 1;
}

void qtx_grid_destroy(qtx_grid *g) {
    if (g->embed) qtx_comm_free(g->embed);
    if (g->dp) qtx_comm_free(g->dp);
    if (g->pp) qtx_comm_free(g->pp);
    if (g->tp) qtx_comm_free(g->tp);
    memset(g, 0, sizeof *g);
}

int qtx_comm_agree(qtx_comm *world, int rc, qtx_err *e) {
    const int rank = qtx_comm_rank(world);
    int worst = rc;
    qtx_comm_allreduce(world, &worst, 1, QTX_I32, QTX_MAX);
    if (!worst) return QTX_OK;
    int first = -(rc ? rank : qtx_comm_size(world)); /* max of -rank is the lowest rank */
    qtx_comm_allreduce(world, &first, 1, QTX_I32, QTX_MAX);
    if (-first != rank) e->msg[0] = '\0';
    e->code = worst;
    return worst;
}
