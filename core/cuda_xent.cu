/* cuda_xent.cu: softmax cross-entropy over a chunk of logits (core/cuda_xent.h): a block per
 * row, each thread striding the row, then a fixed-shape tree over the block. */
#include <cuda_runtime.h>
#include <math.h>

#include "cuda_launch.h"
#include "cuda_xent.h"

#define XT 256 /* threads per row block: a power of two (the tree) */

/* op over the block's v, in a fixed tree order; every thread gets the result. */
template <typename Op> __device__ static float block_reduce(float v, float *sh, Op op) {
    const int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = XT / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] = op(sh[t], sh[t + s]);
        __syncthreads();
    }
    const float r = sh[0];
    __syncthreads();
    return r;
}

struct max_op {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct sum_op {
    __device__ float operator()(float a, float b) const { return a + b; }
};

__global__ static void max_k(float *rmax, const float *logits, int64_t vl) {
    __shared__ float sh[XT];
    const float *z = logits + (int64_t)blockIdx.x * vl;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < vl; j += XT) m = fmaxf(m, z[j]);
    m = block_reduce(m, sh, max_op());
    if (threadIdx.x == 0) rmax[blockIdx.x] = m;
}

__global__ static void sum_k(float *rsum, const float *logits, const float *rmax,
                             const int32_t *targets, int64_t rows, int64_t vl, int64_t v0) {
    __shared__ float sh[XT];
    const int64_t i = blockIdx.x;
    const float *z = logits + i * vl;
    const float m = rmax[i];
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < vl; j += XT) s += expf(z[j] - m);
    s = block_reduce(s, sh, sum_op());
    if (threadIdx.x == 0) {
        const int64_t t = (int64_t)targets[i] - v0;
        rsum[i] = s;
        rsum[rows + i] = t >= 0 && t < vl ? z[t] : 0.0f;
    }
}

__global__ static void finish_k(float *loss, float *logits, const float *rmax, const float *rsum,
                                const int32_t *targets, int64_t rows, int64_t vl, int64_t v0,
                                float grad_scale, int grad) {
    const int64_t i = blockIdx.x;
    const float m = rmax[i], sum = rsum[i];
    if (threadIdx.x == 0 && loss) loss[i] = logf(sum) + m - rsum[rows + i];
    if (!grad) return;
    float *z = logits + i * vl;
    const float inv = grad_scale / sum;
    const int64_t t = (int64_t)targets[i] - v0;
    for (int64_t j = threadIdx.x; j < vl; j += XT)
        z[j] = expf(z[j] - m) * inv - (j == t ? grad_scale : 0.0f);
}

static int check_rows(int64_t rows, int64_t vl, char *why, size_t cap) {
    if (rows >= 1 && rows <= 2147483647 && vl >= 1) return 0;
    if (why && cap)
        snprintf(why, cap, "cuda xent: %lld rows of %lld logits", (long long)rows, (long long)vl);
    return -1;
}

extern "C" int qtx_cuda_xent_max(float *rmax, const float *logits, int64_t rows, int64_t vl,
                                 void *stream, char *why, size_t cap) {
    if (check_rows(rows, vl, why, cap)) return -1;
    max_k<<<(unsigned)rows, XT, 0, (cudaStream_t)stream>>>(rmax, logits, vl);
    return qtx_launched("xent max", why, cap);
}

extern "C" int qtx_cuda_xent_sum(float *rsum, const float *logits, const float *rmax,
                                 const int32_t *targets, int64_t rows, int64_t vl, int64_t v0,
                                 void *stream, char *why, size_t cap) {
    if (check_rows(rows, vl, why, cap)) return -1;
    sum_k<<<(unsigned)rows, XT, 0, (cudaStream_t)stream>>>(rsum, logits, rmax, targets, rows, vl,
                                                           v0);
    return qtx_launched("xent sum", why, cap);
}

extern "C" int qtx_cuda_xent_finish(float *loss, float *logits, const float *rmax,
                                    const float *rsum, const int32_t *targets, int64_t rows,
                                    int64_t vl, int64_t v0, float grad_scale, int grad,
                                    void *stream, char *why, size_t cap) {
    if (check_rows(rows, vl, why, cap)) return -1;
    finish_k<<<(unsigned)rows, XT, 0, (cudaStream_t)stream>>>(loss, logits, rmax, rsum, targets,
                                                              rows, vl, v0, grad_scale, grad);
    return qtx_launched("xent finish", why, cap);
}
