/* test_parallel_pipeline.c: the 1F1B schedule: every micro-batch goes forward then backward
 * once per stage, never more in flight than the stage's activation slots (and never two in
 * one slot), and, run against a deterministic cost model (backward = 2 x forward, free
 * communication), the idle fraction equals the 1F1B bubble (p - 1) / (m + p - 1). */
#include <math.h>
#include <stdlib.h>

#include "pipeline.h"
#include "testutil.h"

static void check_stage(int p, int s, int m) {
    qtx_pp_action *a = malloc((size_t)(6 * m + 4) * sizeof *a);
    int *state = calloc((size_t)m, sizeof *state); /* 0 none, 1 forwarded, 2 done */
    int *slot_of = malloc((size_t)qtx_pp_slots(p, s, m) * sizeof *slot_of);
    const int slots = qtx_pp_slots(p, s, m);
    for (int k = 0; k < slots; k++) slot_of[k] = -1;
    const int n = qtx_pp_1f1b(p, s, m, a);
    int in_flight = 0, max_in_flight = 0, ok = 1;
    for (int i = 0; i < n; i++) {
        if (a[i].kind == QTX_PP_FWD) {
            ok &= state[a[i].mb] == 0 && slot_of[a[i].slot] == -1;
            state[a[i].mb] = 1;
            slot_of[a[i].slot] = a[i].mb;
            if (++in_flight > max_in_flight) max_in_flight = in_flight;
        } else if (a[i].kind == QTX_PP_BWD) {
            ok &= state[a[i].mb] == 1 && slot_of[a[i].slot] == a[i].mb;
            state[a[i].mb] = 2;
            slot_of[a[i].slot] = -1;
            in_flight--;
        }
        /* The first stage receives nothing and the last sends nothing forward. */
        if (s == 0)
            ok &= a[i].kind != QTX_PP_RECV_FWD && a[i].kind != QTX_PP_SEND_BWD &&
                  a[i].kind != QTX_PP_SEND_BWD_RECV_FWD;
        if (s == p - 1)
            ok &= a[i].kind != QTX_PP_SEND_FWD && a[i].kind != QTX_PP_RECV_BWD &&
                  a[i].kind != QTX_PP_SEND_FWD_RECV_BWD;
    }
    for (int k = 0; k < m; k++) ok &= state[k] == 2;
    T_CHECK(ok, "p %d stage %d m %d: schedule order or slots wrong", p, s, m);
    T_CHECK(max_in_flight <= slots, "p %d stage %d m %d: %d in flight > %d slots", p, s, m,
            max_in_flight, slots);
    free(a);
    free(state);
    free(slot_of);
}

int main(void) {
    for (int p = 1; p <= 8; p++)
        for (int m = 1; m <= 16; m++) {
            for (int s = 0; s < p; s++) check_stage(p, s, m);
            const double idle = qtx_pp_simulate(p, m, 1.0, 2.0);
            if (m >= p) {
                const double bubble = (double)(p - 1) / (double)(m + p - 1);
                T_CHECK(fabs(idle - bubble) < 1e-12, "p %d m %d: idle %.6f, 1F1B bubble %.6f", p, m,
                        idle, bubble);
            }
        }
    /* The figures quoted in docs: pp 4 with 8 micro-batches idles 3/11. */
    T_CHECK(fabs(qtx_pp_simulate(4, 8, 1.0, 2.0) - 3.0 / 11.0) < 1e-12, "pp4 m8");
    T_CHECK(qtx_pp_slots(4, 0, 8) == 4 && qtx_pp_slots(4, 3, 8) == 1 && qtx_pp_slots(4, 0, 2) == 2,
            "slots");
    return qtx_test_done("test_parallel_pipeline");
}
