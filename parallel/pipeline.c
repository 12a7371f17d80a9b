/* pipeline.c: generating the 1F1B schedule, and simulating it. */
#include "pipeline.h"

#include <stdlib.h>

#include "check.h"

int qtx_pp_slots(int pp, int stage, int m) {
    return pp - stage < m ? pp - stage : m;
}

int qtx_pp_1f1b(int pp, int stage, int m, qtx_pp_action *out) {
    const int first = stage == 0, last = stage == pp - 1;
    const int slots = qtx_pp_slots(pp, stage, m);
    int warmup = pp - stage - 1;
    if (warmup > m) warmup = m;
    const int steady = m - warmup;
    int n = 0, f = 0, b = 0; /* next forward and backward micro-batches */
#define PUSH(k, x) (out[n++] = (qtx_pp_action){(k), (x), (x) % slots})
    for (int i = 0; i < warmup; i++) {
        if (!first) PUSH(QTX_PP_RECV_FWD, f);
        PUSH(QTX_PP_FWD, f);
        if (!last) PUSH(QTX_PP_SEND_FWD, f);
        f++;
    }
    if (steady > 0 && !first) PUSH(QTX_PP_RECV_FWD, f);
    for (int i = 0; i < steady; i++) {
        PUSH(QTX_PP_FWD, f);
        if (!last) PUSH(QTX_PP_SEND_FWD_RECV_BWD, f);
        f++;
        PUSH(QTX_PP_BWD, b);
        if (!first) PUSH(i == steady - 1 ? QTX_PP_SEND_BWD : QTX_PP_SEND_BWD_RECV_FWD, b);
        b++;
    }
    for (int i = 0; i < warmup; i++) {
        if (!last) PUSH(QTX_PP_RECV_BWD, b);
        PUSH(QTX_PP_BWD, b);
        if (!first) PUSH(QTX_PP_SEND_BWD, b);
        b++;
    }
#undef PUSH
    QTX_CHECK(f == m && b == m && n <= 6 * m + 4, "1F1B schedule lost a micro-batch");
    return n;
}

/* Discrete-event simulation: each stage runs its actions in order; a receive completes when
 * the neighbour's matching send has been issued; sends never block (buffered). */
double qtx_pp_simulate(int pp, int m, double tf, double tb) {
    qtx_pp_action **acts = calloc((size_t)pp, sizeof *acts);
    int *n = calloc((size_t)pp, sizeof *n), *pc = calloc((size_t)pp, sizeof *pc);
    double *clock = calloc((size_t)pp, sizeof *clock), *busy = calloc((size_t)pp, sizeof *busy);
    /* fwd_ready[s][mb]: when stage s's output of mb was sent; bwd_ready likewise for grads. */
    double *fwd_ready = malloc((size_t)pp * m * sizeof(double));
    double *bwd_ready = malloc((size_t)pp * m * sizeof(double));
    QTX_CHECK(acts && n && pc && clock && busy && fwd_ready && bwd_ready, "out of memory");
    for (int i = 0; i < pp * m; i++) fwd_ready[i] = bwd_ready[i] = -1.0;
    for (int s = 0; s < pp; s++) {
        acts[s] = malloc((size_t)(6 * m + 4) * sizeof **acts);
        QTX_CHECK(acts[s], "out of memory");
        n[s] = qtx_pp_1f1b(pp, s, m, acts[s]);
    }
    int progress = 1, remaining = 1;
    int next_fwd_in[64] = {0}, next_bwd_in[64] = {0};
    QTX_CHECK(pp <= 64, "simulator handles at most 64 stages");
    while (progress && remaining) {
        progress = 0;
        remaining = 0;
        for (int s = 0; s < pp; s++) {
            while (pc[s] < n[s]) {
                const qtx_pp_action *a = &acts[s][pc[s]];
                /* What the action must receive first, if anything. */
                int need_fwd = a->kind == QTX_PP_RECV_FWD || a->kind == QTX_PP_SEND_BWD_RECV_FWD;
                int need_bwd = a->kind == QTX_PP_RECV_BWD || a->kind == QTX_PP_SEND_FWD_RECV_BWD;
                double t = clock[s];
                if (a->kind == QTX_PP_SEND_FWD || a->kind == QTX_PP_SEND_FWD_RECV_BWD)
                    fwd_ready[s * m + a->mb] = clock[s];
                if (a->kind == QTX_PP_SEND_BWD || a->kind == QTX_PP_SEND_BWD_RECV_FWD)
                    bwd_ready[s * m + a->mb] = clock[s];
                if (need_fwd) {
                    double r = fwd_ready[(s - 1) * m + next_fwd_in[s]]; /* NOLINT: all set */
                    if (r < 0) break;
                    if (r > t) t = r;
                    next_fwd_in[s]++;
                }
                if (need_bwd) {
                    double r = bwd_ready[(s + 1) * m + next_bwd_in[s]]; /* NOLINT: all set */
                    if (r < 0) break;
                    if (r > t) t = r;
                    next_bwd_in[s]++;
                }
                clock[s] = t;
                if (a->kind == QTX_PP_FWD) {
                    clock[s] += tf;
                    busy[s] += tf;
                } else if (a->kind == QTX_PP_BWD) {
                    clock[s] += tb;
                    busy[s] += tb;
                }
                pc[s]++;
                progress = 1;
            }
            if (pc[s] < n[s]) remaining = 1;
        }
    }
    QTX_CHECK(!remaining, "1F1B simulation deadlocked");
    double makespan = 0.0, total_busy = 0.0;
    for (int s = 0; s < pp; s++) {
        if (clock[s] > makespan) makespan = clock[s];
        total_busy += busy[s];
        free(acts[s]);
    }
    free(acts);
    free(n);
    free(pc);
    free(clock);
    free(busy);
    free(fwd_ready);
    free(bwd_ready);
    return 1.0 - total_busy / ((double)pp * makespan);
}
