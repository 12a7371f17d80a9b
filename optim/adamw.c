/* adamw.c: the AdamW step's constants, the update of a host range, and gradient clipping. */
#include "adamw.h"

#include <math.h>

qtx_adamw_step qtx_adamw_constants(double lr, double weight_decay, const qtx_optim_config *c,
                                   int64_t t, float grad_scale) {
    const double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
    qtx_adamw_step s;
    s.beta1 = (float)c->beta1;
    s.beta2 = (float)c->beta2;
    s.eps = (float)c->eps;
    s.step = (float)(lr / bc1);
    s.inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    s.decay = (float)(1.0 - lr * weight_decay);
    s.grad_scale = grad_scale;
    return s;
}

void qtx_adamw_update(float *p, const float *g, float *m, float *v, int64_t n, double lr,
                      double weight_decay, const qtx_optim_config *c, int64_t t, float grad_scale) {
    const qtx_adamw_step s = qtx_adamw_constants(lr, weight_decay, c, t, grad_scale);
    qtx_adamw_apply(p, g, m, v, n, &s);
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
