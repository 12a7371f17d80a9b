/* metrics.c: console progress and metrics.jsonl. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

int qtx_metrics_open(qtx_metrics *m, const char *out_dir, int append, int log_every, qtx_err *e) {
    memset(m, 0, sizeof *m);
    char path[2048];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out_dir);
    m->jsonl = fopen(path, append ? "a" : "w");
    if (!m->jsonl)
        return qtx_fail(e, QTX_ERR_INPUT, "cannot write '%s': %s; check train.out_dir", path,
                        strerror(errno));
    m->tty = isatty(STDOUT_FILENO);
    m->log_every = log_every > 0 ? log_every : 1;
    return QTX_OK;
}

void qtx_format_duration(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* JSON has no NaN or infinity: a non-finite value is written as null. */
static const char *json_num(char *buf, size_t n, double v) {
    if (isfinite(v))
        snprintf(buf, n, "%.9g", v);
    else
        snprintf(buf, n, "null");
    return buf;
}

void qtx_metrics_step(qtx_metrics *m, const qtx_step_stats *s) {
    char loss[32], gn[32];
    fprintf(m->jsonl,
            "{\"step\":%d,\"loss\":%s,\"lr\":%.9g,\"grad_norm\":%s,\"tokens_per_s\":%.1f,"
            "\"mfu\":%.4f,\"step_s\":%.6f,\"elapsed_s\":%.3f,\"skipped\":%d}\n",
            s->step, json_num(loss, sizeof loss, s->loss), s->lr,
            json_num(gn, sizeof gn, s->grad_norm), s->tokens_per_s, s->mfu, s->step_s, s->elapsed_s,
            s->skipped);
    fflush(m->jsonl);
    const int last = s->step == s->total_steps;
    if (!m->tty && s->step % m->log_every != 0 && !last && s->step != 1) return;
    char el[32], eta[32];
    qtx_format_duration(el, sizeof el, s->elapsed_s);
    qtx_format_duration(eta, sizeof eta,
                        s->elapsed_s / s->step * (double)(s->total_steps - s->step));
    if (m->tty) {
        const int width = 24, done = (int)((double)width * s->step / s->total_steps);
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < done ? '#' : '.';
        bar[width] = 0;
        printf("\r[%s] step %d/%d | loss %.4f | lr %.2e | gnorm %.3f | %.0f tok/s | MFU %.1f%% | "
               "%s < %s%s",
               bar, s->step, s->total_steps, s->loss, s->lr, s->grad_norm, s->tokens_per_s,
               100.0 * s->mfu, el, eta, s->skipped ? " | SKIPPED" : "");
        if (last) printf("\n");
    } else {
        printf("step %d/%d | loss %.4f | lr %.2e | gnorm %.3f | %.0f tok/s | MFU %.1f%% | %s "
               "elapsed | "
               "ETA %s%s\n",
               s->step, s->total_steps, s->loss, s->lr, s->grad_norm, s->tokens_per_s,
               100.0 * s->mfu, el, eta, s->skipped ? " | SKIPPED" : "");
    }
    fflush(stdout);
}

void qtx_metrics_eval(qtx_metrics *m, int step, double val_loss, int batches) {
    char vl[32];
    fprintf(m->jsonl, "{\"step\":%d,\"val_loss\":%s,\"val_batches\":%d}\n", step,
            json_num(vl, sizeof vl, val_loss), batches);
    fflush(m->jsonl);
    printf("%sstep %d | val loss %.4f (%d batches)\n", m->tty ? "\n" : "", step, val_loss, batches);
    fflush(stdout);
}

void qtx_metrics_close(qtx_metrics *m) {
    if (m->jsonl) fclose(m->jsonl);
    m->jsonl = NULL;
}
