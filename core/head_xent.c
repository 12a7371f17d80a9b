/* head_xent.c: output head fused with softmax cross-entropy.
 *
 * Rows go in chunks: logits of a chunk are formed, turned in place into the gradient of the
 * loss, and consumed by the two backward GEMMs before the next chunk, so memory holds
 * chunk x V floats instead of N x V.
 */
#include <math.h>

#include "kernels.h"
#include "vmath.h"

double qtx_head_xent(float *dx, float *dW, const float *x, const float *W, const int32_t *targets,
                     int64_t n, int64_t c, int64_t vl, int64_t v0, float grad_scale, float *logits,
                     int64_t chunk, const qtx_tp_ops *tp) {
    if (tp && !tp->sum) tp = NULL;
    double total = 0.0;
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        const int64_t rows = n - r0 < chunk ? n - r0 : chunk;
        qtx_sgemm(0, 1, rows, vl, c, 1.0f, x + r0 * c, c, W, c, 0.0f, logits, vl);
        /* Per row: max, sum of exponentials, target logit (0 where another rank holds it);
         * sum and target are adjacent so one reduction carries both. */
        float *rmax = logits + chunk * vl, *rsum = rmax + rows, *rtgt = rsum + rows;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < rows; i++) {
            const float *z = logits + i * vl;
            float m = -INFINITY;
#pragma omp simd reduction(max : m)
            for (int64_t j = 0; j < vl; j++) m = z[j] > m ? z[j] : m;
            rmax[i] = m;
        }
        if (tp) tp->max(tp->ctx, rmax, rows);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < rows; i++) {
            const float *z = logits + i * vl;
            const float m = rmax[i];
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < vl; j++) sum += qtx_expf(z[j] - m);
            rsum[i] = sum;
            const int64_t t = (int64_t)targets[r0 + i] - v0;
            rtgt[i] = t >= 0 && t < vl ? z[t] : 0.0f;
        }
        if (tp) tp->sum(tp->ctx, rsum, 2 * rows);
        /* Summed here, in row order: an OpenMP reduction's order is unspecified. sum >= 1:
         * the maximum's own term is exp(0). */
        for (int64_t i = 0; i < rows; i++) total += (double)(logf(rsum[i]) + rmax[i] - rtgt[i]);
        if (!dx) continue;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < rows; i++) {
            float *z = logits + i * vl;
            const float m = rmax[i], inv = grad_scale / rsum[i];
#pragma omp simd
            for (int64_t j = 0; j < vl; j++) z[j] = qtx_expf(z[j] - m) * inv;
            const int64_t t = (int64_t)targets[r0 + i] - v0;
            if (t >= 0 && t < vl) z[t] -= grad_scale;
        }
        qtx_sgemm(0, 0, rows, c, vl, 1.0f, logits, vl, W, c, 0.0f, dx + r0 * c, c);
        qtx_sgemm(1, 0, vl, c, rows, 1.0f, logits, vl, x + r0 * c, c, 1.0f, dW, c);
    }
    return total;
}
