/* cuda_kernels.cu: fp32 CUDA kernels for RMSNorm, RoPE, SwiGLU, the embedding, residual adds
 * and AdamW (core/cuda_kernels.h), each the device twin of its CPU kernel. Row kernels run one
 * block per row with a fixed-shape tree reduction; column reductions run one thread per column
 * walking the rows in order; so nothing depends on scheduling. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>

#include "cuda_kernels.h"
#include "cuda_launch.h"

#define ROW_THREADS 256 /* threads per row block: a power of two (the tree reduction) */

/* The sum of v over the block, in a fixed tree order; every thread gets it. */
__device__ static float block_sum(float v, float *shared) {
    const int t = threadIdx.x;
    shared[t] = v;
    __syncthreads();
    for (int s = ROW_THREADS / 2; s > 0; s >>= 1) {
        if (t < s) shared[t] += shared[t + s];
        __syncthreads();
    }
    const float total = shared[0];
    __syncthreads();
    return total;
}

__global__ static void rmsnorm_fwd_k(float *y, float *rstd, const float *x, const float *w,
                                     int64_t c, float eps) {
    __shared__ float sh[ROW_THREADS];
    const int64_t i = blockIdx.x;
    const float *xi = x + i * c;
    float ss = 0.0f;
    for (int64_t j = threadIdx.x; j < c; j += ROW_THREADS) ss += xi[j] * xi[j];
    const float r = 1.0f / sqrtf(block_sum(ss, sh) / (float)c + eps);
    if (threadIdx.x == 0) rstd[i] = r;
    for (int64_t j = threadIdx.x; j < c; j += ROW_THREADS) y[i * c + j] = xi[j] * r * w[j];
}

__global__ static void rmsnorm_bwd_dx_k(float *dx, const float *dy, const float *x,
                                        const float *rstd, const float *w, int64_t c) {
    __shared__ float sh[ROW_THREADS];
    const int64_t i = blockIdx.x;
    const float *xi = x + i * c, *dyi = dy + i * c;
    const float r = rstd[i];
    float dot = 0.0f;
    for (int64_t j = threadIdx.x; j < c; j += ROW_THREADS) dot += dyi[j] * w[j] * xi[j];
    dot = block_sum(dot, sh) * r / (float)c;
    for (int64_t j = threadIdx.x; j < c; j += ROW_THREADS)
        dx[i * c + j] += r * (dyi[j] * w[j] - xi[j] * r * dot);
}

/* One thread per column: reads of a row are coalesced across the warp. */
__global__ static void rmsnorm_bwd_dw_k(float *dw, const float *dy, const float *x,
                                        const float *rstd, int64_t n, int64_t c) {
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++) acc += dy[i * c + j] * x[i * c + j] * rstd[i];
    dw[j] += acc;
}

__global__ static void rope_k(float *x, int64_t ld, int64_t n, int T, int n_heads, int hd,
                              const float *cos_t, const float *sin_t, float sgn) {
    const int half = hd / 2;
    const int64_t total = n * n_heads * half;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int i = (int)(e % half);
        const int64_t rh = e / half;
        const int h = (int)(rh % n_heads);
        const int64_t r = rh / n_heads;
        const int t = (int)(r % T);
        float *v = x + r * ld + (int64_t)h * hd;
        const float x0 = v[2 * i], x1 = v[2 * i + 1], c = cos_t[(int64_t)t * half + i],
                    s = sgn * sin_t[(int64_t)t * half + i];
        v[2 * i] = x0 * c - x1 * s;
        v[2 * i + 1] = x0 * s + x1 * c;
    }
}

__global__ static void swiglu_fwd_k(float *h, const float *gu, int64_t n, int64_t f) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * f;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e / f, j = e % f;
        const float g = gu[i * 2 * f + j], u = gu[i * 2 * f + f + j];
        h[e] = g / (1.0f + expf(-g)) * u;
    }
}

__global__ static void swiglu_bwd_k(float *dgu, const float *dh, const float *gu, int64_t n,
                                    int64_t f) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * f;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e / f, j = e % f;
        const float g = gu[i * 2 * f + j], u = gu[i * 2 * f + f + j];
        const float s = 1.0f / (1.0f + expf(-g));
        dgu[i * 2 * f + j] = dh[e] * u * s * (1.0f + g * (1.0f - s));
        dgu[i * 2 * f + f + j] = dh[e] * (g * s);
    }
}

__global__ static void embedding_fwd_k(float *x, const float *E, const int32_t *tok, int64_t n,
                                       int64_t c, int64_t v0, int64_t vl) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * c;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = (int64_t)tok[e / c] - v0;
        x[e] = t >= 0 && t < vl ? E[t * c + e % c] : 0.0f;
    }
}

/* One thread per column walking the rows in order: no two threads touch one element, and
 * each element's sum has a fixed order. */
__global__ static void embedding_bwd_k(float *dE, const float *dx, const int32_t *tok, int64_t n,
                                       int64_t c, int64_t v0, int64_t vl) {
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    for (int64_t i = 0; i < n; i++) {
        const int64_t t = (int64_t)tok[i] - v0;
        if (t >= 0 && t < vl) dE[t * c + j] += dx[i * c + j];
    }
}

__global__ static void add_k(float *y, const float *x, int64_t n) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (int64_t)gridDim.x * blockDim.x)
        y[e] += x[e];
}

__global__ static void adamw_k(float *p, const float *g, float *m, float *v, int64_t n, float b1,
                               float b2, float eps, float step, float inv_sqrt_bc2, float decay,
                               float grad_scale) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (int64_t)gridDim.x * blockDim.x) {
        const float gi = g[e] * grad_scale;
        const float mi = b1 * m[e] + (1.0f - b1) * gi;
        const float vi = b2 * v[e] + (1.0f - b2) * gi * gi;
        m[e] = mi;
        v[e] = vi;
        p[e] = p[e] * decay - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
}

/* Block b sums the squares of its grid-stride slice in double, then a tree in shared memory. */
__global__ static void sumsq_k(double *parts, const float *x, int64_t n) {
    __shared__ double sh[QTX_EW_THREADS];
    double s = 0.0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        s += (double)x[i] * (double)x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = QTX_EW_THREADS / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) parts[blockIdx.x] = sh[0];
}

extern "C" {

int qtx_cuda_available(char *why, size_t cap) {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        if (why && cap) snprintf(why, cap, "%s", cudaGetErrorString(err));
        cudaGetLastError(); /* clear it */
        return 0;
    }
    if (n == 0) {
        if (why && cap) snprintf(why, cap, "no CUDA device is visible");
        return 0;
    }
    return 1;
}

int qtx_cuda_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int64_t n,
                         int64_t c, float eps, void *stream, char *why, size_t cap) {
    if (n > 0)
        rmsnorm_fwd_k<<<(unsigned)n, ROW_THREADS, 0, (cudaStream_t)stream>>>(y, rstd, x, w, c, eps);
    return qtx_launched("rmsnorm_fwd", why, cap);
}

int qtx_cuda_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *rstd,
                         const float *w, int64_t n, int64_t c, void *stream, char *why,
                         size_t cap) {
    const cudaStream_t s = (cudaStream_t)stream;
    if (n > 0 && dx) rmsnorm_bwd_dx_k<<<(unsigned)n, ROW_THREADS, 0, s>>>(dx, dy, x, rstd, w, c);
    if (qtx_launched("rmsnorm_bwd dx", why, cap)) return -1;
    if (c > 0 && dw)
        rmsnorm_bwd_dw_k<<<(unsigned)((c + QTX_EW_THREADS - 1) / QTX_EW_THREADS), QTX_EW_THREADS, 0,
                           s>>>(dw, dy, x, rstd, n, c);
    return qtx_launched("rmsnorm_bwd dw", why, cap);
}

int qtx_cuda_rope(float *x, int64_t ld, int64_t n, int T, int n_heads, int hd, const float *cos_t,
                  const float *sin_t, int inverse, void *stream, char *why, size_t cap) {
    const int64_t total = n * n_heads * (hd / 2);
    if (total > 0)
        rope_k<<<qtx_grid_for(total), QTX_EW_THREADS, 0, (cudaStream_t)stream>>>(
            x, ld, n, T, n_heads, hd, cos_t, sin_t, inverse ? -1.0f : 1.0f);
    return qtx_launched("rope", why, cap);
}

int qtx_cuda_swiglu_fwd(float *h, const float *gu, int64_t n, int64_t f, void *stream, char *why,
                        size_t cap) {
    if (n * f > 0)
        swiglu_fwd_k<<<qtx_grid_for(n * f), QTX_EW_THREADS, 0, (cudaStream_t)stream>>>(h, gu, n, f);
    return qtx_launched("swiglu_fwd", why, cap);
}

int qtx_cuda_swiglu_bwd(float *dgu, const float *dh, const float *gu, int64_t n, int64_t f,
                        void *stream, char *why, size_t cap) {
    if (n * f > 0)
        swiglu_bwd_k<<<qtx_grid_for(n * f), QTX_EW_THREADS, 0, (cudaStream_t)stream>>>(dgu, dh, gu,
                                                                                       n, f);
    return qtx_launched("swiglu_bwd", why, cap);
}

int qtx_cuda_embedding_fwd(float *x, const float *E, const int32_t *tok, int64_t n, int64_t c,
                           int64_t v0, int64_t vl, void *stream, char *why, size_t cap) {
    if (n * c > 0)
        embedding_fwd_k<<<qtx_grid_for(n * c), QTX_EW_THREADS, 0, (cudaStream_t)stream>>>(
            x, E, tok, n, c, v0, vl);
    return qtx_launched("embedding_fwd", why, cap);
}

int qtx_cuda_embedding_bwd(float *dE, const float *dx, const int32_t *tok, int64_t n, int64_t c,
                           int64_t v0, int64_t vl, void *stream, char *why, size_t cap) {
    if (n > 0 && c > 0)
        embedding_bwd_k<<<(unsigned)((c + QTX_EW_THREADS - 1) / QTX_EW_THREADS), QTX_EW_THREADS, 0,
                          (cudaStream_t)stream>>>(dE, dx, tok, n, c, v0, vl);
    return qtx_launched("embedding_bwd", why, cap);
}

int qtx_cuda_add(float *y, const float *x, int64_t n, void *stream, char *why, size_t cap) {
    if (n > 0) add_k<<<qtx_grid_for(n), QTX_EW_THREADS, 0, (cudaStream_t)stream>>>(y, x, n);
    return qtx_launched("add", why, cap);
}

int qtx_cuda_adamw(float *p, const float *g, float *m, float *v, int64_t n, double lr,
                   double weight_decay, double beta1, double beta2, double eps, int64_t t,
                   float grad_scale, void *stream, char *why, size_t cap) {
    /* the scalars as optim/adamw.c computes them, on the host in double */
    const double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
    if (n > 0)
        adamw_k<<<qtx_grid_for(n), QTX_EW_THREADS, 0, (cudaStream_t)stream>>>(
            p, g, m, v, n, (float)beta1, (float)beta2, (float)eps, (float)(lr / bc1),
            (float)(1.0 / sqrt(bc2)), (float)(1.0 - lr * weight_decay), grad_scale);
    return qtx_launched("adamw", why, cap);
}

} /* extern "C" */

extern "C" {

int qtx_cuda_adamw_apply(float *p, const float *g, float *m, float *v, int64_t n, const float k[7],
                         void *stream, char *why, size_t cap) {
    if (n > 0)
        adamw_k<<<qtx_grid_for(n), QTX_EW_THREADS, 0, (cudaStream_t)stream>>>(
            p, g, m, v, n, k[0], k[1], k[2], k[3], k[4], k[5], k[6]);
    return qtx_launched("adamw_apply", why, cap);
}

int qtx_cuda_sum_squares_parts(double *parts, const float *x, int64_t n, void *stream, char *why,
                               size_t cap) {
    sumsq_k<<<QTX_CUDA_SUMSQ_PARTS, QTX_EW_THREADS, 0, (cudaStream_t)stream>>>(parts, x, n);
    return qtx_launched("sum_squares", why, cap);
}

} /* extern "C" */
