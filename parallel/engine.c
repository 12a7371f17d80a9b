/* engine.c: executing the pipeline schedule and the step's collectives. */
#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sys.h"

enum { TAG_FWD = 1, TAG_BWD = 2 };

static void tp_sum(void *ctx, float *buf, int64_t n) {
    qtx_comm_allreduce(((qtx_engine *)ctx)->tp, buf, n, QTX_F32, QTX_SUM);
}
static void tp_max(void *ctx, float *buf, int64_t n) {
    qtx_comm_allreduce(((qtx_engine *)ctx)->tp, buf, n, QTX_F32, QTX_MAX);
}

void qtx_engine_create(qtx_engine *e, qtx_grid *g, const qtx_model_config *mc,
                       const qtx_optim_config *oc, int B, int T, int n_micro, uint64_t seed,
                       const qtx_engine_device *dev) {
    memset(e, 0, sizeof *e);
    e->g = g;
    e->B = B;
    e->T = T;
    e->n_micro = n_micro;
    e->tp = dev && dev->tp ? dev->tp : g->tp;
    e->pp = dev && dev->pp ? dev->pp : g->pp;
    qtx_model_options o = {0};
    o.B = B;
    o.T = T;
    o.n_slots = qtx_pp_slots(g->pp_size, g->pp_rank, n_micro);
    o.no_grads = g->zero == 2;
    o.backend = dev ? dev->backend : NULL;
    if (g->tp_size > 1) o.hooks.tp = (qtx_tp_ops){e, tp_sum, tp_max};
    /* The hooks' ctx is the ZeRO state, which needs the model's layout: create, then wire. */
    qtx_model_create_ex(&e->model, mc, &g->spec, &o);
    qtx_zero_create(&e->zero, g, &e->model, oc, dev ? dev->dp : NULL, dev ? dev->embed : NULL);
    qtx_zero_hooks(&e->zero, &e->model.hooks);
    qtx_model_init_weights(&e->model, seed);
    e->actions = qtx_malloc((size_t)(6 * n_micro + 4) * sizeof *e->actions);
    e->n_actions = qtx_pp_1f1b(g->pp_size, g->pp_rank, n_micro, e->actions);
}

void qtx_engine_destroy(qtx_engine *e) {
    qtx_zero_destroy(&e->zero);
    qtx_model_destroy(&e->model);
    free(e->actions);
    memset(e, 0, sizeof *e);
}

static const int32_t *micro(const qtx_engine *e, const int32_t *batch, int mb) {
    return batch + (int64_t)mb * e->B * (e->T + 1);
}

/* Sends a and receives b at once, so neighbours exchanging in both directions never wait on
 * each other's send (one NCCL group on GPUs). */
static void exchange(qtx_comm *c, const float *send, int to, int stag, float *recv, int from,
                     int rtag, int64_t n) {
    qtx_comm_wait(qtx_comm_isendrecv(c, send, to, stag, recv, from, rtag, n, QTX_F32));
}

double qtx_engine_forward_backward(qtx_engine *e, const int32_t *batch, float grad_scale) {
    qtx_grid *g = e->g;
    qtx_model *m = &e->model;
    qtx_comm *pp = e->pp;
    const int prev = g->pp_rank - 1, next = g->pp_rank + 1;
    const int64_t io = qtx_model_io_floats(m);
    const int slots = qtx_pp_slots(g->pp_size, g->pp_rank, e->n_micro);
    double loss = 0.0, wait = 0.0;
    int next_fwd = 0, n_bwd = 0;
    qtx_zero_begin_step(&e->zero);
    for (int i = 0; i < e->n_actions; i++) {
        const qtx_pp_action *a = &e->actions[i];
        const double t0 = qtx_now_s();
        switch (a->kind) {
        case QTX_PP_RECV_FWD:
            qtx_comm_recv(pp, qtx_model_stage_input(m, a->slot), io, QTX_F32, prev, TAG_FWD);
            break;
        case QTX_PP_FWD:
            qtx_model_forward(m, a->slot, micro(e, batch, a->mb));
            next_fwd = a->mb + 1;
            break;
        case QTX_PP_SEND_FWD:
            qtx_comm_send(pp, qtx_model_stage_output(m, a->slot), io, QTX_F32, next, TAG_FWD);
            break;
        case QTX_PP_SEND_FWD_RECV_BWD:
            exchange(pp, qtx_model_stage_output(m, a->slot), next, TAG_FWD, qtx_model_grad_io(m),
                     next, TAG_BWD, io);
            break;
        case QTX_PP_BWD:
            qtx_zero_begin_micro(&e->zero, n_bwd == 0, n_bwd == e->n_micro - 1);
            loss += qtx_model_backward(m, a->slot, grad_scale);
            n_bwd++;
            break;
        case QTX_PP_SEND_BWD:
            qtx_comm_send(pp, qtx_model_grad_io(m), io, QTX_F32, prev, TAG_BWD);
            break;
        case QTX_PP_SEND_BWD_RECV_FWD:
            exchange(pp, qtx_model_grad_io(m), prev, TAG_BWD,
                     qtx_model_stage_input(m, next_fwd % slots), prev, TAG_FWD, io);
            break;
        case QTX_PP_RECV_BWD:
            qtx_comm_recv(pp, qtx_model_grad_io(m), io, QTX_F32, next, TAG_BWD);
            break;
        }
        if (a->kind != QTX_PP_FWD && a->kind != QTX_PP_BWD) wait += qtx_now_s() - t0;
    }
    e->comm_wait_s = wait;
    qtx_zero_finish_grads(&e->zero);
    /* The last stage's TP rank 0 of each replica holds that replica's loss. */
    if (!(g->spec.has_head && g->tp_rank == 0)) loss = 0.0;
    qtx_comm_allreduce(g->world, &loss, 1, QTX_F64, QTX_SUM);
    return loss;
}

double qtx_engine_grad_norm(qtx_engine *e) {
    double sq = qtx_zero_grad_sq(&e->zero);
    qtx_comm_allreduce(e->g->world, &sq, 1, QTX_F64, QTX_SUM);
    return sqrt(sq);
}

void qtx_engine_update(qtx_engine *e, double lr, float clip_scale, int64_t t) {
    qtx_zero_update(&e->zero, lr, clip_scale, t);
}

double qtx_engine_eval(qtx_engine *e, const int32_t *batch, int n) {
    qtx_grid *g = e->g;
    qtx_model *m = &e->model;
    const int64_t io = qtx_model_io_floats(m);
    double loss = 0.0;
    for (int mb = 0; mb < n; mb++) {
        if (!g->spec.has_embedding)
            qtx_comm_recv(e->pp, qtx_model_stage_input(m, 0), io, QTX_F32, g->pp_rank - 1, TAG_FWD);
        qtx_model_forward(m, 0, micro(e, batch, mb));
        if (g->spec.has_head)
            loss += qtx_model_head_loss(m, 0);
        else
            qtx_comm_send(e->pp, qtx_model_stage_output(m, 0), io, QTX_F32, g->pp_rank + 1,
                          TAG_FWD);
    }
    if (!(g->spec.has_head && g->tp_rank == 0)) loss = 0.0;
    qtx_comm_allreduce(g->world, &loss, 1, QTX_F64, QTX_SUM);
    return loss;
}
