/* pipeline.h: the 1F1B pipeline schedule as a list of actions per stage, and a simulator
 * that runs every stage's list against a cost model (to check the bubble).
 *
 * The same action list drives the real pipeline (engine.c), so what the simulator measures
 * is the schedule that runs. After pp - 1 - stage warm-up forwards, each stage alternates one
 * forward and one backward, then drains the remaining backwards: a stage holds at most
 * pp - stage micro-batches of activations (Narayanan et al., PipeDream-Flush / Megatron).
 */
#ifndef QTX_PIPELINE_H
#define QTX_PIPELINE_H

typedef enum qtx_pp_kind {
    QTX_PP_RECV_FWD,          /* receive the next micro-batch's input activations */
    QTX_PP_FWD,               /* forward micro-batch mb */
    QTX_PP_SEND_FWD,          /* send its output to the next stage */
    QTX_PP_SEND_FWD_RECV_BWD, /* both at once (no deadlock between neighbours) */
    QTX_PP_BWD,               /* backward micro-batch mb */
    QTX_PP_SEND_BWD,
    QTX_PP_SEND_BWD_RECV_FWD,
    QTX_PP_RECV_BWD,
} qtx_pp_kind;

typedef struct qtx_pp_action {
    qtx_pp_kind kind;
    int mb;   /* micro-batch the action is about (for a combined action: the one sent) */
    int slot; /* activation slot of mb: mb % qtx_pp_slots(...) */
} qtx_pp_action;

/* Activation slots stage `stage` needs: min(pp - stage, m). */
int qtx_pp_slots(int pp, int stage, int m);

/* Fills out (capacity 6 m + 4) with stage's actions; returns the count. First and last stages
 * omit the receives and sends they have no neighbour for. */
int qtx_pp_1f1b(int pp, int stage, int m, qtx_pp_action *out);

/* Runs all stages' schedules with forward cost tf and backward cost tb per micro-batch,
 * communication free, and returns the idle fraction: 1 - busy / (pp x makespan). */
double qtx_pp_simulate(int pp, int m, double tf, double tb);

#endif
