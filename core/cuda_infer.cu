/* cuda_infer.cu: embedding rows and KV-cache attention on the GPU (core/cuda_infer.h).
 * Attention takes one block per (head, new token): the query in shared memory (and as q8_0
 * for integer scores over q8_0 keys), the scores of every cached position in global scratch,
 * a fixed-tree max and sum, then one thread per output dimension walking the positions in
 * order: no atomics, so results repeat run to run. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>

#include "cuda_infer.h"
#include "cuda_launch.h"

#define QK 32
#define Q8_BYTES 34
#define Q4_BYTES 18
#define ROW_THREADS 256
#define ATT_THREADS 128 /* a power of two: the tree reductions */
#define MAX_HD 256

__device__ static float f16_at(const uint8_t *p) {
    return __half2float(__ushort_as_half((unsigned short)(p[0] | (p[1] << 8))));
}

__device__ static int int_at(const uint8_t *p) {
    return (int)((unsigned)p[0] | ((unsigned)p[1] << 8) | ((unsigned)p[2] << 16) |
                 ((unsigned)p[3] << 24));
}

/* Value j of a row of type t (0 f32, 8 q8_0, 2 q4_0: ggml's ids and layouts). */
__device__ static float row_value(const uint8_t *row, int t, int64_t j) {
    if (t == 0) return ((const float *)row)[j];
    const int64_t b = j / QK;
    const int k = (int)(j % QK);
    if (t == 8) {
        const uint8_t *blk = row + b * Q8_BYTES;
        return f16_at(blk) * (float)(int8_t)blk[2 + k];
    }
    const uint8_t *blk = row + b * Q4_BYTES; /* byte k % 16: value k low nibble, k + 16 high */
    const int q = k < 16 ? (blk[2 + k] & 0x0F) : (blk[2 + k - 16] >> 4);
    return f16_at(blk) * (float)(q - 8);
}

__global__ static void get_rows_k(float *x, const uint8_t *table, int t, int64_t c,
                                  size_t row_bytes, const int32_t *tok) {
    const int64_t i = blockIdx.x;
    const uint8_t *row = table + (size_t)tok[i] * row_bytes;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) x[i * c + j] = row_value(row, t, j);
}

/* The block's max / sum of v in a fixed tree; every thread gets it. */
__device__ static float block_reduce(float v, float *red, int is_max) {
    const int t = threadIdx.x;
    __syncthreads(); /* red may still be read from the last call */
    red[t] = v;
    __syncthreads();
    for (int s = ATT_THREADS / 2; s > 0; s >>= 1) {
        if (t < s) red[t] = is_max ? fmaxf(red[t], red[t + s]) : red[t] + red[t + s];
        __syncthreads();
    }
    return red[0];
}

__global__ static void kv_attend_k(float *out, const float *q, int64_t p0, int H, int KV, int hd,
                                   const uint8_t *K, int k_q8, const uint8_t *V, int v_q8,
                                   float *scores, int64_t ctx) {
    __shared__ float qf[MAX_HD];
    __shared__ __align__(4) int8_t q8[MAX_HD];
    __shared__ float qd[MAX_HD / QK];
    __shared__ float red[ATT_THREADS];
    const int h = blockIdx.x, i = blockIdx.y, tid = threadIdx.x;
    const int kvh = h / (H / KV), nb = hd / QK;
    const int64_t last = p0 + i, kvd = (int64_t)KV * hd;
    const float *qi = q + ((int64_t)i * H + h) * hd;
    for (int d = tid; d < hd; d += ATT_THREADS) qf[d] = qi[d];
    __syncthreads();
    if (k_q8 && tid < nb) { /* the query's block tid as q8_0, as ggml's reference quantizer */
        float amax = 0.0f;
        for (int k = 0; k < QK; k++) amax = fmaxf(amax, fabsf(qf[tid * QK + k]));
        const float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
        qd[tid] = __half2float(__float2half_rn(d));
        for (int k = 0; k < QK; k++)
            q8[tid * QK + k] = (int8_t)roundf(__fmul_rn(qf[tid * QK + k], id));
    }
    __syncthreads();
    float *sc = scores + ((int64_t)i * H + h) * ctx;
    const float scale = 1.0f / sqrtf((float)hd); /* as the CPU computes it */
    float mx = -INFINITY;
    for (int64_t j = tid; j <= last; j += ATT_THREADS) {
        float s = 0.0f;
        if (k_q8) {
            const uint8_t *kr = K + ((size_t)j * (kvd / QK) + (size_t)kvh * nb) * Q8_BYTES;
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = kr + (size_t)b * Q8_BYTES;
                const int *qq = (const int *)(q8 + b * QK);
                int acc = 0;
                for (int k = 0; k < 8; k++) acc = __dp4a(int_at(blk + 2 + 4 * k), qq[k], acc);
                s += (float)acc * (f16_at(blk) * qd[b]);
            }
        } else {
            const float *kr = (const float *)K + j * kvd + (int64_t)kvh * hd;
            for (int d = 0; d < hd; d++) s += qf[d] * kr[d];
        }
        s *= scale;
        sc[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_reduce(mx, red, 1);
    float sum = 0.0f;
    for (int64_t j = tid; j <= last; j += ATT_THREADS) {
        const float e = expf(sc[j] - mx);
        sc[j] = e;
        sum += e;
    }
    sum = block_reduce(sum, red, 0); /* its barriers also publish sc to the block */
    const float inv = 1.0f / sum;
    for (int d = tid; d < hd; d += ATT_THREADS) {
        float acc = 0.0f;
        if (v_q8) {
            const size_t off = ((size_t)kvh * nb + d / QK) * Q8_BYTES;
            for (int64_t j = 0; j <= last; j++) {
                const uint8_t *blk = V + (size_t)j * (kvd / QK) * Q8_BYTES + off;
                acc += sc[j] * (f16_at(blk) * (float)(int8_t)blk[2 + d % QK]);
            }
        } else {
            const float *vf = (const float *)V + (int64_t)kvh * hd + d;
            for (int64_t j = 0; j <= last; j++) acc += sc[j] * vf[j * kvd];
        }
        out[((int64_t)i * H + h) * hd + d] = acc * inv;
    }
}

extern "C" {

int qtx_cuda_get_rows(float *x, const void *table, int type, int64_t c, const int32_t *tok,
                      int64_t n, void *stream, char *why, size_t cap) {
    size_t row_bytes = 0;
    if (type == 0)
        row_bytes = (size_t)c * sizeof(float);
    else if ((type == 8 || type == 2) && c % QK == 0)
        row_bytes = (size_t)(c / QK) * (type == 8 ? Q8_BYTES : Q4_BYTES);
    if (!row_bytes || n > 2147483647) {
        if (why && cap)
            snprintf(why, cap, "get_rows: type %d (f32 = 0, q8_0 = 8, q4_0 = 2), %lld columns",
                     type, (long long)c);
        return -1;
    }
    if (n > 0)
        get_rows_k<<<(unsigned)n, ROW_THREADS, 0, (cudaStream_t)stream>>>(x, (const uint8_t *)table,
                                                                          type, c, row_bytes, tok);
    return qtx_launched("get_rows", why, cap);
}

int qtx_cuda_kv_attend(float *out, const float *q, int n, int64_t p0, int H, int KV, int hd,
                       const void *K, int k_q8, const void *V, int v_q8, float *scores, int64_t ctx,
                       void *stream, char *why, size_t cap) {
    if (((k_q8 || v_q8) && hd % QK) || hd > MAX_HD || KV < 1 || H % KV || n < 0 || n > 65535 ||
        p0 + n > ctx) {
        if (why && cap)
            snprintf(why, cap,
                     "kv_attend: hd %d (at most %d; a multiple of 32 for q8), H %d over KV %d, %d "
                     "tokens "
                     "at %lld in a context of %lld",
                     hd, MAX_HD, H, KV, n, (long long)p0, (long long)ctx);
        return -1;
    }
    if (n > 0 && H > 0)
        kv_attend_k<<<dim3((unsigned)H, (unsigned)n), ATT_THREADS, 0, (cudaStream_t)stream>>>(
            out, q, p0, H, KV, hd, (const uint8_t *)K, k_q8, (const uint8_t *)V, v_q8, scores, ctx);
    return qtx_launched("kv_attend", why, cap);
}

} /* extern "C" */
