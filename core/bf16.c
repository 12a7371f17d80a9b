/* bf16.c: rounding to bfloat16 on the CPU (core/bf16.h). */
#include "bf16.h"

void qtx_bf16_round(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (int64_t i = 0; i < n; i++) y[i] = qtx_f32_of_bf16(qtx_bf16_of(x[i]));
}
