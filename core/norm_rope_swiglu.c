/* norm_rope_swiglu.c: the element-wise and row-wise kernels: RMSNorm, RoPE, SwiGLU,
 * embedding. Rows are independent, so each parallelises over rows (not over one row: a
 * decode step's fork and join would cost more than the row); parameter gradients are
 * reduced over rows by column blocks, which keeps the summation order fixed. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "vmath.h"

void qtx_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int64_t n, int64_t c,
                     float eps) {
#pragma omp parallel for schedule(static) if (n > 1)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * c;
        float *yi = y + i * c;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int64_t j = 0; j < c; j++) ss += xi[j] * xi[j];
        float r = 1.0f / sqrtf(ss / (float)c + eps);
        rstd[i] = r;
        for (int64_t j = 0; j < c; j++) yi[j] = xi[j] * r * w[j];
    }
}

#define COL_BLOCK 64

void qtx_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *rstd,
                     const float *w, int64_t n, int64_t c) {
#pragma omp parallel
    {
#pragma omp for schedule(static) nowait
        for (int64_t i = 0; i < n; i++) {
            const float *xi = x + i * c, *dyi = dy + i * c;
            float *dxi = dx + i * c;
            const float r = rstd[i];
            float dot = 0.0f; /* sum_j (dy w)_j xhat_j */
#pragma omp simd reduction(+ : dot)
            for (int64_t j = 0; j < c; j++) dot += dyi[j] * w[j] * xi[j];
            dot *= r / (float)c;
            for (int64_t j = 0; j < c; j++) dxi[j] += r * (dyi[j] * w[j] - xi[j] * r * dot);
        }
#pragma omp for schedule(static)
        for (int64_t j0 = 0; j0 < c; j0 += COL_BLOCK) {
            const int64_t j1 = j0 + COL_BLOCK < c ? j0 + COL_BLOCK : c;
            float acc[COL_BLOCK] = {0};
            for (int64_t i = 0; i < n; i++) {
                const float r = rstd[i];
                for (int64_t j = j0; j < j1; j++) acc[j - j0] += dy[i * c + j] * x[i * c + j] * r;
            }
            for (int64_t j = j0; j < j1; j++) dw[j] += acc[j - j0];
        }
    }
}

void qtx_rope_tables(float *cos_t, float *sin_t, int max_t, int hd, float theta) {
    const int half = hd / 2;
    for (int t = 0; t < max_t; t++)
        for (int i = 0; i < half; i++) {
            double freq = pow((double)theta, -2.0 * i / (double)hd);
            double a = (double)t * freq;
            cos_t[t * half + i] = (float)cos(a);
            sin_t[t * half + i] = (float)sin(a);
        }
}

void qtx_rope(float *x, int64_t ld, int64_t n, int T, int n_heads, int hd, const float *cos_t,
              const float *sin_t, int inverse) {
    const int half = hd / 2;
    const float sgn = inverse ? -1.0f : 1.0f;
#pragma omp parallel for schedule(static) if (n > 1)
    for (int64_t r = 0; r < n; r++) {
        const int t = (int)(r % T);
        const float *ct = cos_t + (int64_t)t * half, *st = sin_t + (int64_t)t * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + r * ld + (int64_t)h * hd;
            for (int i = 0; i < half; i++) {
                float x0 = v[2 * i], x1 = v[2 * i + 1], c = ct[i], s = sgn * st[i];
                v[2 * i] = x0 * c - x1 * s;
                v[2 * i + 1] = x0 * s + x1 * c;
            }
        }
    }
}

/* Scalars are firstprivate so the vectoriser sees loop invariants, not loads through the
 * OpenMP context. */
void qtx_swiglu_fwd(float *h, const float *gu, int64_t n, int64_t f) {
#pragma omp parallel for schedule(static) firstprivate(f, h, gu)
    for (int64_t i = 0; i < n; i++) {
        const float *g = gu + i * 2 * f, *u = g + f;
        float *hi = h + i * f;
#pragma omp simd
        for (int64_t j = 0; j < f; j++) hi[j] = g[j] / (1.0f + qtx_expf(-g[j])) * u[j];
    }
}

void qtx_swiglu_bwd(float *dgu, const float *dh, const float *gu, int64_t n, int64_t f) {
#pragma omp parallel for schedule(static) firstprivate(f, dgu, dh, gu)
    for (int64_t i = 0; i < n; i++) {
        const float *g = gu + i * 2 * f, *u = g + f, *dhi = dh + i * f;
        float *dg = dgu + i * 2 * f, *du = dg + f;
#pragma omp simd
        for (int64_t j = 0; j < f; j++) {
            float s = 1.0f / (1.0f + qtx_expf(-g[j]));
            float silu = g[j] * s;
            dg[j] = dhi[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
            du[j] = dhi[j] * silu;
        }
    }
}

void qtx_embedding_fwd(float *x, const float *E, const int32_t *tok, int64_t n, int64_t c,
                       int64_t v0, int64_t vl) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const int64_t t = (int64_t)tok[i] - v0;
        if (t >= 0 && t < vl)
            memcpy(x + i * c, E + t * c, (size_t)c * sizeof *x);
        else
            memset(x + i * c, 0, (size_t)c * sizeof *x);
    }
}

void qtx_embedding_bwd(float *dE, const float *dx, const int32_t *tok, int64_t n, int64_t c,
                       int64_t v0, int64_t vl) {
    /* Column blocks: each thread owns columns of every row, so no two threads touch the same
     * element and rows are added in token order. */
#pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < c; j0 += COL_BLOCK) {
        const int64_t j1 = j0 + COL_BLOCK < c ? j0 + COL_BLOCK : c;
        for (int64_t i = 0; i < n; i++) {
            const int64_t t = (int64_t)tok[i] - v0;
            if (t < 0 || t >= vl) continue;
            float *d = dE + t * c;
            const float *s = dx + i * c;
            for (int64_t j = j0; j < j1; j++) d[j] += s[j];
        }
    }
}
