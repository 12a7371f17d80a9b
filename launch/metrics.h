/* metrics.h: what a run reports: console lines or a live progress bar on rank 0, and
 * out_dir/metrics.jsonl, one JSON object per step and per evaluation. */
#ifndef QTX_METRICS_H
#define QTX_METRICS_H

#include <stdio.h>

#include "check.h"

typedef struct qtx_step_stats {
    int step, total_steps;
    double loss, lr, grad_norm;
    double tokens_per_s, mfu; /* mfu in [0, 1] */
    double step_s, elapsed_s;
    int skipped; /* 1 when the update was skipped for a non-finite loss or gradient */
} qtx_step_stats;

typedef struct qtx_metrics {
    FILE *jsonl;
    int tty; /* stdout is a terminal: redraw one progress line */
    int log_every;
} qtx_metrics;

/* Opens out_dir/metrics.jsonl (appending when `append`, for resumed runs). */
int qtx_metrics_open(qtx_metrics *m, const char *out_dir, int append, int log_every, qtx_err *e);
void qtx_metrics_step(qtx_metrics *m, const qtx_step_stats *s);
void qtx_metrics_eval(qtx_metrics *m, int step, double val_loss, int batches);
void qtx_metrics_close(qtx_metrics *m);

/* "1:02:03" or "2:03". */
void qtx_format_duration(char *buf, size_t n, double seconds);

#endif
