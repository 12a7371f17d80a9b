/* cuda_attention.cu: causal grouped-query attention forward and backward, fp32
 * (core/cuda_attention.h). Lane l of a warp holds elements l, l + 32, ... of a head row;
 * dot products end in a butterfly of shuffles, whose order is fixed, so every lane gets the
 * same sum and runs repeat. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>

#include "cuda_attention.h"
#include "cuda_launch.h"

#define ROWS 8                         /* warps (rows) per block */
#define TILE 32                        /* rows per shared-memory tile */
#define PER (QTX_CUDA_ATT_MAX_HD / 32) /* elements per lane, at most */

__device__ static float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* The row's elements of this lane (the first hd / 32 of a[PER]). */
__device__ static void load_row(float *a, const float *row, int per, int lane, float s) {
    for (int e = 0; e < PER; e++) a[e] = e < per ? row[lane + 32 * e] * s : 0.0f;
}

__device__ static float dot_row(const float *a, const float *row, int per, int lane) {
    float d = 0.0f;
    for (int e = 0; e < PER; e++)
        if (e < per) d += a[e] * row[lane + 32 * e];
    return warp_sum(d);
}

/* Rows [r0, r0 + TILE) of a head (stride ld), zero past T, into sh[TILE][hd]. */
__device__ static void load_tile(float *sh, const float *src, int64_t ld, int r0, int T, int hd) {
    for (int e = threadIdx.x; e < TILE * hd; e += blockDim.x) {
        const int r = e / hd, c = e % hd;
        sh[e] = r0 + r < T ? src[(int64_t)(r0 + r) * ld + c] : 0.0f;
    }
}

/* grid (row blocks, H, B) */
__global__ static void fwd_k(float *out, float *lse, const float *qkv, int T, int H, int KV, int hd,
                             float scale) {
    extern __shared__ float sh[];
    float *ks = sh, *vs = sh + TILE * hd;
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32, per = hd / 32;
    const int b = blockIdx.z, h = blockIdx.y, r0 = blockIdx.x * ROWS, i = r0 + w;
    const int g = h / (H / KV);
    const int64_t ld = (int64_t)(H + 2 * KV) * hd;
    const float *base = qkv + (int64_t)b * T * ld;
    float q[PER], acc[PER];
    load_row(q, base + (int64_t)(i < T ? i : 0) * ld + (int64_t)h * hd, per, lane, scale);
    for (int e = 0; e < PER; e++) acc[e] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    const int last = min(T - 1, r0 + ROWS - 1);
    for (int j0 = 0; j0 <= last; j0 += TILE) {
        load_tile(ks, base + (int64_t)(H + g) * hd, ld, j0, T, hd);
        load_tile(vs, base + (int64_t)(H + KV + g) * hd, ld, j0, T, hd);
        __syncthreads();
        for (int jj = 0; jj < TILE && i < T && j0 + jj <= i; jj++) {
            const float s = dot_row(q, ks + jj * hd, per, lane);
            const float mn = fmaxf(m, s), corr = expf(m - mn), p = expf(s - mn);
            l = l * corr + p;
            for (int e = 0; e < PER; e++)
                if (e < per) acc[e] = acc[e] * corr + p * vs[jj * hd + lane + 32 * e];
            m = mn;
        }
        __syncthreads();
    }
    if (i >= T) return;
    float *o = out + ((int64_t)b * T + i) * H * hd + (int64_t)h * hd;
    for (int e = 0; e < per; e++) o[lane + 32 * e] = acc[e] / l;
    if (lane == 0) lse[((int64_t)b * H + h) * T + i] = m + logf(l);
}

/* D[b, h, i] = dO_i . O_i; a warp per row. grid (row blocks, H, B) */
__global__ static void d_k(float *D, const float *dout, const float *out, int T, int H, int hd) {
    const int lane = threadIdx.x % 32, per = hd / 32;
    const int b = blockIdx.z, h = blockIdx.y, i = blockIdx.x * ROWS + threadIdx.x / 32;
    if (i >= T) return;
    const int64_t off = ((int64_t)b * T + i) * H * hd + (int64_t)h * hd;
    float a[PER];
    load_row(a, dout + off, per, lane, 1.0f);
    const float d = dot_row(a, out + off, per, lane);
    if (lane == 0) D[((int64_t)b * H + h) * T + i] = d;
}

/* dQ_i = scale sum_j p_ij (dO_i . v_j - D_i) k_j over j <= i. grid (row blocks, H, B) */
__global__ static void dq_k(float *dqkv, const float *dout, const float *qkv, const float *lse,
                            const float *D, int T, int H, int KV, int hd, float scale) {
    extern __shared__ float sh[];
    float *ks = sh, *vs = sh + TILE * hd;
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32, per = hd / 32;
    const int b = blockIdx.z, h = blockIdx.y, r0 = blockIdx.x * ROWS, i = r0 + w;
    const int g = h / (H / KV);
    const int64_t ld = (int64_t)(H + 2 * KV) * hd;
    const float *base = qkv + (int64_t)b * T * ld;
    const int ic = i < T ? i : 0;
    float q[PER], dO[PER], dq[PER];
    load_row(q, base + (int64_t)ic * ld + (int64_t)h * hd, per, lane, scale);
    load_row(dO, dout + ((int64_t)b * T + ic) * H * hd + (int64_t)h * hd, per, lane, 1.0f);
    for (int e = 0; e < PER; e++) dq[e] = 0.0f;
    const int64_t row = ((int64_t)b * H + h) * T + ic;
    const float li = lse[row], di = D[row];
    const int last = min(T - 1, r0 + ROWS - 1);
    for (int j0 = 0; j0 <= last; j0 += TILE) {
        load_tile(ks, base + (int64_t)(H + g) * hd, ld, j0, T, hd);
        load_tile(vs, base + (int64_t)(H + KV + g) * hd, ld, j0, T, hd);
        __syncthreads();
        for (int jj = 0; jj < TILE && i < T && j0 + jj <= i; jj++) {
            const float p = expf(dot_row(q, ks + jj * hd, per, lane) - li);
            const float ds = p * (dot_row(dO, vs + jj * hd, per, lane) - di);
            for (int e = 0; e < PER; e++)
                if (e < per) dq[e] += ds * ks[jj * hd + lane + 32 * e];
        }
        __syncthreads();
    }
    if (i >= T) return;
    float *d = dqkv + ((int64_t)b * T + i) * ld + (int64_t)h * hd;
    for (int e = 0; e < per; e++) d[lane + 32 * e] = scale * dq[e];
}

/* dK_j = scale sum_{h in group, i >= j} ds_ij q_i; dV_j = sum p_ij dO_i. grid (row blocks, KV,
 * B): a warp per key row j; tiles of TILE query rows (q, dO, lse, D) shared by the block. */
__global__ static void dkv_k(float *dqkv, const float *dout, const float *qkv, const float *lse,
                             const float *D, int T, int H, int KV, int hd, float scale) {
    extern __shared__ float sh[];
    float *qs = sh, *os = sh + TILE * hd, *ls = os + TILE * hd, *dd = ls + TILE;
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32, per = hd / 32;
    const int b = blockIdx.z, g = blockIdx.y, r0 = blockIdx.x * ROWS, j = r0 + w;
    const int group = H / KV;
    const int64_t ld = (int64_t)(H + 2 * KV) * hd;
    const float *base = qkv + (int64_t)b * T * ld;
    const int jc = j < T ? j : 0;
    float k[PER], v[PER], dk[PER], dv[PER];
    load_row(k, base + (int64_t)jc * ld + (int64_t)(H + g) * hd, per, lane, 1.0f);
    load_row(v, base + (int64_t)jc * ld + (int64_t)(H + KV + g) * hd, per, lane, 1.0f);
    for (int e = 0; e < PER; e++) dk[e] = dv[e] = 0.0f;
    for (int h = g * group; h < (g + 1) * group; h++) {
        const float *lrow = lse + ((int64_t)b * H + h) * T, *drow = D + ((int64_t)b * H + h) * T;
        for (int i0 = r0; i0 < T; i0 += TILE) {
            load_tile(qs, base + (int64_t)h * hd, ld, i0, T, hd);
            load_tile(os, dout + (int64_t)b * T * H * hd + (int64_t)h * hd, (int64_t)H * hd, i0, T,
                      hd);
            for (int e = threadIdx.x; e < TILE; e += blockDim.x) {
                ls[e] = i0 + e < T ? lrow[i0 + e] : 0.0f;
                dd[e] = i0 + e < T ? drow[i0 + e] : 0.0f;
            }
            __syncthreads();
            for (int ii = 0; ii < TILE && j < T && i0 + ii < T; ii++) {
                if (i0 + ii < j) continue;
                const float p = expf(scale * dot_row(k, qs + ii * hd, per, lane) - ls[ii]);
                const float ds = p * (dot_row(v, os + ii * hd, per, lane) - dd[ii]);
                for (int e = 0; e < PER; e++)
                    if (e < per) {
                        dv[e] += p * os[ii * hd + lane + 32 * e];
                        dk[e] += ds * qs[ii * hd + lane + 32 * e];
                    }
            }
            __syncthreads();
        }
    }
    if (j >= T) return;
    float *d = dqkv + ((int64_t)b * T + j) * ld;
    for (int e = 0; e < per; e++) {
        d[(int64_t)(H + g) * hd + lane + 32 * e] = scale * dk[e];
        d[(int64_t)(H + KV + g) * hd + lane + 32 * e] = dv[e];
    }
}

static int check_shape(int B, int T, int H, int KV, int hd, char *why, size_t cap) {
    if (B >= 1 && T >= 1 && KV >= 1 && H >= KV && H % KV == 0 && hd % 32 == 0 && hd >= 32 &&
        hd <= QTX_CUDA_ATT_MAX_HD && B <= 65535 && H <= 65535)
        return 0;
    if (why && cap)
        snprintf(why, cap,
                 "cuda attention: B %d, T %d, H %d over KV %d, head_dim %d: need head_dim a "
                 "multiple of 32 up to %d and H a multiple of KV",
                 B, T, H, KV, hd, QTX_CUDA_ATT_MAX_HD);
    return -1;
}

extern "C" int qtx_cuda_attention_fwd(float *out, float *lse, const float *qkv, int B, int T, int H,
                                      int KV, int hd, void *stream, char *why, size_t cap) {
    if (check_shape(B, T, H, KV, hd, why, cap)) return -1;
    const dim3 grid((unsigned)((T + ROWS - 1) / ROWS), (unsigned)H, (unsigned)B);
    const size_t shm = 2 * TILE * (size_t)hd * sizeof(float);
    fwd_k<<<grid, 32 * ROWS, shm, (cudaStream_t)stream>>>(out, lse, qkv, T, H, KV, hd,
                                                          1.0f / sqrtf((float)hd));
    return qtx_launched("attention forward", why, cap);
}

extern "C" int qtx_cuda_attention_bwd(float *dqkv, const float *dout, const float *qkv,
                                      const float *out, const float *lse, float *scratch, int B,
                                      int T, int H, int KV, int hd, void *stream, char *why,
                                      size_t cap) {
    if (check_shape(B, T, H, KV, hd, why, cap)) return -1;
    const cudaStream_t s = (cudaStream_t)stream;
    const unsigned rb = (unsigned)((T + ROWS - 1) / ROWS);
    const float scale = 1.0f / sqrtf((float)hd);
    d_k<<<dim3(rb, (unsigned)H, (unsigned)B), 32 * ROWS, 0, s>>>(scratch, dout, out, T, H, hd);
    if (qtx_launched("attention backward (D)", why, cap)) return -1;
    const size_t shm = 2 * TILE * (size_t)hd * sizeof(float);
    dq_k<<<dim3(rb, (unsigned)H, (unsigned)B), 32 * ROWS, shm, s>>>(dqkv, dout, qkv, lse, scratch,
                                                                    T, H, KV, hd, scale);
    if (qtx_launched("attention backward (dQ)", why, cap)) return -1;
    dkv_k<<<dim3(rb, (unsigned)KV, (unsigned)B), 32 * ROWS, shm + 2 * TILE * sizeof(float), s>>>(
        dqkv, dout, qkv, lse, scratch, T, H, KV, hd, scale);
    return qtx_launched("attention backward (dK, dV)", why, cap);
}
