/* schedule.c: warmup + cosine / linear / WSD / constant. */
#include "schedule.h"

#include <math.h>

double qtx_lr_at(const qtx_optim_config *c, int step, int total_steps) {
    if (step < c->warmup_steps) return c->lr * (double)(step + 1) / (double)c->warmup_steps;
    const int decay_steps = total_steps - c->warmup_steps;
    double p = (double)(step - c->warmup_steps) / (double)(decay_steps > 1 ? decay_steps : 1);
    if (p > 1.0) p = 1.0;
    switch (c->schedule) {
    case QTX_SCHED_COSINE:
        return c->min_lr + 0.5 * (c->lr - c->min_lr) * (1.0 + cos(M_PI * p));
    case QTX_SCHED_LINEAR:
        return c->lr + (c->min_lr - c->lr) * p;
    case QTX_SCHED_WSD: {
        /* Stable until the last decay_frac of the post-warmup steps, then linear to min_lr. */
        const double start = 1.0 - c->decay_frac;
        if (p <= start || c->decay_frac <= 0.0) return c->lr;
        return c->lr + (c->min_lr - c->lr) * (p - start) / c->decay_frac;
    }
    case QTX_SCHED_CONSTANT:
        return c->lr;
    }
    return c->lr;
}
