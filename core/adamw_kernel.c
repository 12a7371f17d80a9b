/* adamw_kernel.c: the optimizer's element-wise kernels on the CPU: the AdamW update of a flat
 * range (its constants come from optim/adamw.c, once per step) and the gradient's sum of
 * squares. They sit in core/ because every backend (backend.h) offers them on its own
 * memory; the CUDA counterparts are in cuda_kernels.cu. */
#include <math.h>

#include "kernels.h"

void qtx_adamw_apply(float *p, const float *g, float *m, float *v, int64_t n,
                     const qtx_adamw_step *s) {
    const float b1 = s->beta1, b2 = s->beta2, eps = s->eps, step = s->step;
    const float inv_sqrt_bc2 = s->inv_sqrt_bc2, decay = s->decay, scale = s->grad_scale;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i] * scale;
        const float mi = b1 * m[i] + (1.0f - b1) * gi;
        const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
}

/* Fixed blocks, each summed in order, then the blocks in order: the same bits on any number
 * of threads. */
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
