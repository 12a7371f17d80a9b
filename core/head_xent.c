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
                     int64_t n, int64_t c, int64_t V, float grad_scale, float *logits,
                     int64_t chunk) {
    double total = 0.0;
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        const int64_t rows = n - r0 < chunk ? n - r0 : chunk;
        qtx_sgemm(0, 1, rows, V, c, 1.0f, x + r0 * c, c, W, c, 0.0f, logits, V);
        float *row_loss = logits + chunk * V;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < rows; i++) {
            float *z = logits + i * V;
            float m = -INFINITY;
#pragma omp simd reduction(max : m)
            for (int64_t j = 0; j < V; j++) m = z[j] > m ? z[j] : m;
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < V; j++) sum += qtx_expf(z[j] - m);
            const int32_t t = targets[r0 + i];
            /* sum >= 1: the maximum's own term is exp(0). */
            // cppcheck-suppress invalidFunctionArg
            row_loss[i] = logf(sum) + m - z[t];
            if (dx) {
                const float inv = grad_scale / sum;
#pragma omp simd
                for (int64_t j = 0; j < V; j++) z[j] = qtx_expf(z[j] - m) * inv;
                z[t] -= grad_scale;
            }
        }
        /* Summed here, in row order: an OpenMP reduction's order is unspecified. */
        for (int64_t i = 0; i < rows; i++) total += row_loss[i];
        if (dx) {
            qtx_sgemm(0, 0, rows, c, V, 1.0f, logits, V, W, c, 0.0f, dx + r0 * c, c);
            qtx_sgemm(1, 0, V, c, rows, 1.0f, logits, V, x + r0 * c, c, 1.0f, dW, c);
        }
    }
    return total;
}
