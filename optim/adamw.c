/* adamw.c: the AdamW update and gradient-norm helpers. */
#include "adamw.h"

#include <math.h>

void qtx_adamw_update(float *p, const float *g, float *m, float *v, int64_t n, double lr,
                      double weight_decay, const qtx_optim_config *c, int64_t t, float grad_scale) {
    const float b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps;
    const double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
    const float step = (float)(lr / bc1), inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    const float decay = (float)(1.0 - lr * weight_decay);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i] * grad_scale;
        const float mi = b1 * m[i] + (1.0f - b1) * gi;
        const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
}

#define SUMSQ_BLOCKS 256

double qtx_sum_squares(const float *g, int64_t n) {
    double part[SUMSQ_BLOCKS];
    const int64_t bs = (n + SUMSQ_BLOCKS - 1) / SUMSQ_BLOCKS;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < SUMSQ_BLOCKS; b++) {
        const int64_t lo = (int64_t)b * bs, hi = lo + bs < n ? lo + bs : n;
        double s = 0.0;
        for (int64_t i = lo; i < hi; i++) s += (double)g[i] * g[i];
        part[b] = s;
    }
    double total = 0.0;
    for (int b = 0; b < SUMSQ_BLOCKS; b++) total += part[b];
    return total;
}

int qtx_all_finite(const float *g, int64_t n) {
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) ok = isfinite(g[i]);
    return ok;
}

float qtx_clip_scale(double norm, double max_norm) {
    if (max_norm <= 0.0) return 1.0f;
    double s = max_norm / (norm + 1e-6);
    return s < 1.0 ? (float)s : 1.0f;
}
