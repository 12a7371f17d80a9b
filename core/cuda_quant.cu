/* cuda_quant.cu: q8_0 activation quantization and q8_0 / q4_0 matrix-vector products on the
 * GPU (core/cuda_quant.h). One warp per weight row: lane l takes blocks l, l + 32, ...; a
 * block's 32 products are 8 dp4a (exact int32), scaled once by d_w d_x; the warp's partial
 * sums meet in a fixed butterfly, so results repeat run to run. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cuda_quant.h"
#include "cuda_launch.h"

#define QK 32
#define Q8_BYTES 34 /* f16 d, 32 int8 */
#define Q4_BYTES 18 /* f16 d, 16 bytes of nibbles */
#define WARPS_PER_BLOCK 4

__device__ static float f16_at(const uint8_t *p) {
    return __half2float(__ushort_as_half((unsigned short)(p[0] | (p[1] << 8))));
}

/* Four bytes at p (any alignment) as an int, little-endian. */
__device__ static int int_at(const uint8_t *p) {
    return (int)((unsigned)p[0] | ((unsigned)p[1] << 8) | ((unsigned)p[2] << 16) |
                 ((unsigned)p[3] << 24));
}

/* One block of 32 values per thread: amax / 127, round half away from zero (roundf), as
 * ggml's quantize_row_q8_0_ref. */
__global__ static void quantize_q8_0_k(uint8_t *y, const float *x, int64_t nb) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= nb) return;
    const float *xb = x + b * QK;
    float amax = 0.0f;
    for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(xb[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t *yb = y + b * Q8_BYTES;
    const unsigned short h = __half_as_ushort(__float2half_rn(d));
    yb[0] = (uint8_t)(h & 0xFF);
    yb[1] = (uint8_t)(h >> 8);
    for (int j = 0; j < QK; j++) yb[2 + j] = (uint8_t)(int8_t)roundf(__fmul_rn(xb[j], id));
}

/* Row r of W against activation row blockIdx.y (its q8_0 blocks at xq + y * nb blocks),
 * written to y[blockIdx.y * ldy + r]: a matrix-vector product when gridDim.y is 1. */
template <int Q4>
__global__ static void qmatvec_k(const uint8_t *W, int64_t rows, int64_t nb, const uint8_t *xq,
                                 float *y, int64_t ldy) {
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * WARPS_PER_BLOCK + (threadIdx.x >> 5);
    if (r >= rows) return;
    xq += (size_t)blockIdx.y * nb * Q8_BYTES;
    y += (size_t)blockIdx.y * ldy;
    const size_t wb = Q4 ? Q4_BYTES : Q8_BYTES;
    const uint8_t *w = W + (size_t)r * nb * wb;
    float acc = 0.0f;
    for (int64_t b = lane; b < nb; b += 32) {
        const uint8_t *wp = w + (size_t)b * wb, *xp = xq + (size_t)b * Q8_BYTES;
        int s = 0;
        if (Q4) {
            for (int k = 0; k < 4; k++) { /* bytes 4k..4k+3: values 4k.. (low), 16 + 4k.. (high) */
                const int q = int_at(wp + 2 + 4 * k);
                /* nibble - 8 per byte: __vsub4 keeps each byte's borrow to itself */
                const int lo = (int)__vsub4((unsigned)q & 0x0F0F0F0Fu, 0x08080808u);
                const int hi = (int)__vsub4(((unsigned)q >> 4) & 0x0F0F0F0Fu, 0x08080808u);
                s = __dp4a(lo, int_at(xp + 2 + 4 * k), s);
                s = __dp4a(hi, int_at(xp + 2 + 16 + 4 * k), s);
            }
        } else {
            for (int k = 0; k < 8; k++)
                s = __dp4a(int_at(wp + 2 + 4 * k), int_at(xp + 2 + 4 * k), s);
        }
        acc += (float)s * (f16_at(wp) * f16_at(xp));
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xFFFFFFFFu, acc, o);
    if (lane == 0) y[r] = acc;
}

extern "C" {

int qtx_cuda_quantize_q8_0(void *y, const float *x, int64_t n, void *stream, char *why,
                           size_t cap) {
    if (n % QK) {
        if (why && cap)
            snprintf(why, cap, "q8_0 row of %lld values is not a multiple of 32", (long long)n);
        return -1;
    }
    const int64_t nb = n / QK;
    if (nb > 0)
        quantize_q8_0_k<<<(unsigned)((nb + 127) / 128), 128, 0, (cudaStream_t)stream>>>(
            (uint8_t *)y, x, nb);
    return qtx_launched("quantize_q8_0", why, cap);
}

int qtx_cuda_qmatmul(int wt, const void *W, int64_t rows, int64_t n, const void *xq, int64_t m,
                     float *Y, int64_t ldy, void *stream, char *why, size_t cap) {
    if ((wt != 2 && wt != 8) || n % QK || m < 0 || m > 65535 || ldy < rows) {
        if (why && cap)
            snprintf(why, cap,
                     "qmatmul: type %d (q4_0 = 2, q8_0 = 8) with n = %lld (a multiple of 32), "
                     "m = %lld (at most 65535), ldy = %lld (at least rows = %lld)",
                     wt, (long long)n, (long long)m, (long long)ldy, (long long)rows);
        return -1;
    }
    const dim3 grid((unsigned)((rows + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK), (unsigned)m);
    const cudaStream_t s = (cudaStream_t)stream;
    if (rows > 0 && m > 0) {
        if (wt == 2)
            qmatvec_k<1><<<grid, 32 * WARPS_PER_BLOCK, 0, s>>>((const uint8_t *)W, rows, n / QK,
                                                               (const uint8_t *)xq, Y, ldy);
        else
            qmatvec_k<0><<<grid, 32 * WARPS_PER_BLOCK, 0, s>>>((const uint8_t *)W, rows, n / QK,
                                                               (const uint8_t *)xq, Y, ldy);
    }
    return qtx_launched("qmatmul", why, cap);
}

int qtx_cuda_qmatvec(int wt, const void *W, int64_t rows, int64_t n, const void *xq, float *y,
                     void *stream, char *why, size_t cap) {
    return qtx_cuda_qmatmul(wt, W, rows, n, xq, 1, y, rows, stream, why, cap);
}

} /* extern "C" */
