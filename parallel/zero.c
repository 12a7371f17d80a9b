/* zero.c: bucketed gradient reduction, sharded AdamW and the parameter all-gather. */
#include "zero.h"

#include <stdlib.h>
#include <string.h>

#include "adamw.h"

static int is_embed(const qtx_zero *z, int u) {
    return u == z->emb_bucket;
}

void qtx_zero_create(qtx_zero *z, const qtx_grid *g, qtx_model *model, const qtx_optim_config *oc,
                     qtx_comm *dp_comm, qtx_comm *embed_comm) {
    memset(z, 0, sizeof *z);
    z->g = g;
    z->model = model;
    z->be = &model->be;
    z->dp = dp_comm ? dp_comm : g->dp;
    z->embed = embed_comm ? embed_comm : g->embed;
    z->oc = oc;
    z->stage = g->zero;
    const qtx_param_layout *l = &model->layout;
    const int dp = g->dp_size;
    z->n_buckets = l->n_units;
    z->b = qtx_calloc((size_t)z->n_buckets, sizeof *z->b);
    z->pending = qtx_calloc((size_t)z->n_buckets, sizeof *z->pending);
    z->emb_bucket = -1;
    int64_t pos = 0;
    for (int i = 0; i < z->n_buckets; i++) {
        qtx_bucket *b = &z->b[i];
        b->begin = l->units[i].begin;
        b->end = l->units[i].end;
        if (l->units[i].kind == QTX_UNIT_EMBED) z->emb_bucket = i;
        const int64_t len = b->end - b->begin;
        b->counts = qtx_calloc((size_t)dp, sizeof *b->counts);
        int64_t at = b->begin;
        for (int r = 0; r < dp; r++) {
            b->counts[r] = len / dp + (r < len % dp ? 1 : 0);
            if (r == g->dp_rank) {
                b->own_begin = at;
                b->own_end = at + b->counts[r];
            }
            at += b->counts[r];
        }
        if (z->stage == 0) { /* every rank updates the whole bucket */
            b->own_begin = b->begin;
            b->own_end = b->end;
        }
        b->shard_pos = pos;
        pos += b->own_end - b->own_begin;
        const int64_t cap = len;
        if (z->stage == 2 && !is_embed(z, i) && cap > z->ring_floats) z->ring_floats = cap;
        if (is_embed(z, i)) z->emb_floats = len;
    }
    z->shard_floats = pos;
    /* Everything on the model's backend (zeroed by alloc): the moments next to the
     * parameters they update. */
    qtx_backend *be = z->be;
    const size_t sb = (size_t)(pos > 0 ? pos : 1) * sizeof(float);
    z->m = be->alloc(be, sb);
    z->v = be->alloc(be, sb);
    if (z->stage == 2) {
        z->gshard = be->alloc(be, sb);
        for (int k = 0; k < 2; k++) {
            z->ring[k] =
                be->alloc(be, (size_t)(z->ring_floats > 0 ? z->ring_floats : 1) * sizeof(float));
            z->ring_bucket[k] = -1;
        }
        if (z->emb_floats > 0) z->emb_stage = be->alloc(be, (size_t)z->emb_floats * sizeof(float));
    }
}

void qtx_zero_destroy(qtx_zero *z) {
    qtx_backend *be = z->be;
    const size_t sb = (size_t)(z->shard_floats > 0 ? z->shard_floats : 1) * sizeof(float);
    be->free(be, z->m, sb);
    be->free(be, z->v, sb);
    if (z->stage == 2) {
        be->free(be, z->gshard, sb);
        for (int k = 0; k < 2; k++)
            be->free(be, z->ring[k],
                     (size_t)(z->ring_floats > 0 ? z->ring_floats : 1) * sizeof(float));
        if (z->emb_stage) be->free(be, z->emb_stage, (size_t)z->emb_floats * sizeof(float));
    }
    for (int i = 0; i < z->n_buckets; i++) free(z->b[i].counts);
    free(z->b);
    free(z->pending);
    memset(z, 0, sizeof *z);
}

/* Where bucket i's gradients are written during backward. */
static float *grad_base(qtx_zero *z, int i) {
    if (z->stage < 2) return z->model->grads + z->b[i].begin;
    if (is_embed(z, i)) return z->emb_stage;
    for (int k = 0; k < 2; k++)
        if (z->ring_bucket[k] == i) return z->ring[k];
    return NULL;
}

/* Stage 2: the reduce-scatter of ring slot k is done; add its own part into the shard. */
static void ring_retire(qtx_zero *z, int k) {
    if (z->ring_bucket[k] < 0) return;
    qtx_comm_wait(z->ring_req[k]);
    z->ring_req[k] = NULL;
    const qtx_bucket *b = &z->b[z->ring_bucket[k]];
    z->be->add(z->be, z->gshard + b->shard_pos, z->ring[k] + (b->own_begin - b->begin),
               b->own_end - b->own_begin);
    z->ring_bucket[k] = -1;
}

static void launch_reduce(qtx_zero *z, int i, float *base) {
    qtx_bucket *b = &z->b[i];
    const int64_t len = b->end - b->begin;
    if (z->g->dp_size == 1) return;
    qtx_comm *dp = z->dp;
    if (z->stage == 0)
        z->pending[i] = qtx_comm_iallreduce(dp, base, len, QTX_F32, QTX_SUM);
    else
        z->pending[i] = qtx_comm_ireduce_scatterv(dp, base, b->counts, QTX_F32, QTX_SUM);
}

static void on_begin(void *ctx, int u) {
    qtx_zero *z = ctx;
    if (z->stage < 2) return;
    qtx_model *m = z->model;
    if (is_embed(z, u)) {
        if (z->first_micro) z->be->zero(z->be, z->emb_stage, (size_t)z->emb_floats * sizeof(float));
        qtx_view_bind_unit(&m->gv, &m->layout, u, z->emb_stage);
        return;
    }
    const int k = z->next_ring;
    z->next_ring ^= 1;
    ring_retire(z, k);
    const int64_t len = z->b[u].end - z->b[u].begin;
    z->be->zero(z->be, z->ring[k], (size_t)len * sizeof(float));
    z->ring_bucket[k] = u;
    qtx_view_bind_unit(&m->gv, &m->layout, u, z->ring[k]);
}

static void on_done(void *ctx, int u) {
    qtx_zero *z = ctx;
    if (is_embed(z, u)) return; /* reduced once, at the end of the step */
    if (z->stage == 2) {
        /* The slot on_begin gave u; the other may hold u's previous micro-batch in flight. */
        const int k = z->next_ring ^ 1;
        QTX_CHECK(z->ring_bucket[k] == u, "ZeRO-2: unit %d finished out of order", u);
        if (z->g->dp_size > 1)
            z->ring_req[k] =
                qtx_comm_ireduce_scatterv(z->dp, z->ring[k], z->b[u].counts, QTX_F32, QTX_SUM);
    } else if (z->last_micro) {
        launch_reduce(z, u, grad_base(z, u));
    }
    /* Let the collectives in flight progress while backward computes. */
    for (int i = 0; i < z->n_buckets; i++)
        if (z->pending[i]) qtx_comm_test(z->pending[i]);
}

void qtx_zero_hooks(qtx_zero *z, qtx_model_hooks *h) {
    h->ctx = z;
    h->grads_begin = on_begin;
    h->grads_done = on_done;
}

void qtx_zero_begin_step(qtx_zero *z) {
    qtx_model_zero_grads(z->model);
    if (z->stage == 2) z->be->zero(z->be, z->gshard, (size_t)z->shard_floats * sizeof(float));
}

void qtx_zero_begin_micro(qtx_zero *z, int first, int last) {
    z->first_micro = first;
    z->last_micro = last;
}

void qtx_zero_finish_grads(qtx_zero *z) {
    if (z->stage == 2)
        for (int k = 0; k < 2; k++) ring_retire(z, k);
    for (int i = 0; i < z->n_buckets; i++) {
        qtx_comm_wait(z->pending[i]);
        z->pending[i] = NULL;
    }
    const int e = z->emb_bucket;
    if (e < 0) return;
    qtx_bucket *b = &z->b[e];
    float *base = grad_base(z, e);
    if (z->embed) qtx_comm_allreduce(z->embed, base, b->end - b->begin, QTX_F32, QTX_SUM);
    launch_reduce(z, e, base);
    qtx_comm_wait(z->pending[e]);
    z->pending[e] = NULL;
    if (z->stage == 2)
        z->be->add(z->be, z->gshard + b->shard_pos, base + (b->own_begin - b->begin),
                   b->own_end - b->own_begin);
}

const float *qtx_zero_grad_at(const qtx_zero *z, int bucket, int64_t off) {
    const qtx_bucket *b = &z->b[bucket];
    if (z->stage == 2) return z->gshard + b->shard_pos + (off - b->own_begin);
    return z->model->grads + off;
}

/* Calls fn for each piece of the owned range of bucket i that lies in one tensor. */
typedef void (*piece_fn)(qtx_zero *z, int bucket, const qtx_tensor_desc *t, int64_t lo, int64_t hi,
                         void *arg);
static void for_each_piece(qtx_zero *z, int i, piece_fn fn, void *arg) {
    const qtx_param_layout *l = &z->model->layout;
    const qtx_bucket *b = &z->b[i];
    const qtx_param_unit *u = &l->units[i];
    for (int k = u->t_begin; k < u->t_end; k++) {
        const qtx_tensor_desc *t = &l->tensors[k];
        int64_t lo = t->offset > b->own_begin ? t->offset : b->own_begin;
        int64_t hi = t->offset + t->numel < b->own_end ? t->offset + t->numel : b->own_end;
        if (lo < hi) fn(z, i, t, lo, hi, arg);
    }
}

static void add_sq(qtx_zero *z, int bucket, const qtx_tensor_desc *t, int64_t lo, int64_t hi,
                   void *arg) {
    const qtx_grid *g = z->g;
    if (t->split_dim < 0 && g->tp_rank != 0) return;                      /* replicated over TP */
    if (!strcmp(t->name, "token_embd") && !g->spec.has_embedding) return; /* tied copy */
    if (z->stage == 0 && g->dp_rank != 0) return; /* every DP rank has it all */
    *(double *)arg += z->be->sum_squares(z->be, qtx_zero_grad_at(z, bucket, lo), hi - lo);
}

double qtx_zero_grad_sq(const qtx_zero *z) {
    double sq = 0.0;
    for (int i = 0; i < z->n_buckets; i++) for_each_piece((qtx_zero *)z, i, add_sq, &sq);
    return sq;
}

typedef struct update_args {
    double lr;
    float clip;
    int64_t t;
} update_args;

static void update_piece(qtx_zero *z, int bucket, const qtx_tensor_desc *t, int64_t lo, int64_t hi,
                         void *arg) {
    const update_args *a = arg;
    const qtx_bucket *b = &z->b[bucket];
    const int64_t pos = b->shard_pos + (lo - b->own_begin);
    const qtx_adamw_step s =
        qtx_adamw_constants(a->lr, t->decay ? z->oc->weight_decay : 0.0, z->oc, a->t, a->clip);
    z->be->adamw(z->be, z->model->params + lo, qtx_zero_grad_at(z, bucket, lo), z->m + pos,
                 z->v + pos, hi - lo, &s);
}

void qtx_zero_update(qtx_zero *z, double lr, float clip_scale, int64_t t) {
    update_args a = {lr, clip_scale, t};
    for (int i = 0; i < z->n_buckets; i++) for_each_piece(z, i, update_piece, &a);
    if (z->stage == 0 || z->g->dp_size == 1) return;
    for (int i = 0; i < z->n_buckets; i++)
        z->pending[i] =
            qtx_comm_iallgatherv(z->dp, z->model->params + z->b[i].begin, z->b[i].counts, QTX_F32);
    qtx_comm_wait_all(z->pending, z->n_buckets);
    /* The gathers wrote the other ranks' shards behind the backend's back (a rank owning
     * nothing in a bucket updated none of it itself). */
    if (z->be->params_changed) z->be->params_changed(z->be);
}

qtx_zero_memory qtx_zero_memory_use(const qtx_zero *z) {
    qtx_zero_memory mem = {0};
    const int64_t psi = z->model->layout.n_floats;
    mem.psi = psi;
    mem.shard = z->stage == 0 ? psi : z->shard_floats;
    mem.params = 4 * psi;
    mem.grads = z->stage == 2 ? 4 * z->shard_floats : 4 * psi;
    mem.optim = 8 * mem.shard;
    mem.staging = z->stage == 2 ? 4 * (2 * z->ring_floats + z->emb_floats) : 0;
    return mem;
}
