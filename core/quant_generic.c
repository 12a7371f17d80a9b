/* quant_generic.c: the plain C kernels of core/quant.h. They define the results: every SIMD
 * path gives the same per-block int32 sums and the same activation bytes, and its dot
 * products differ from these by float rounding only: the order of the additions, and where a
 * path sums nibbles unsigned (q4_0) or w + 128 (q8_0r with VNNI), the offset taken back in
 * float.
 *
 *   block sum  isum_b = sum_j w_j x_j over the 32 values (q4_0: w_j = nibble - 8), exact
 *   dot        s = sum over blocks, in block order, of (float)isum_b * (d_w * d_x)
 */
#include "quant.h"

static int32_t block_q8_0_q8_0(const qtx_block_q8_0 *w, const qtx_block_q8_0 *x) {
    int32_t s = 0;
    for (int j = 0; j < QTX_QK; j++) s += (int32_t)w->qs[j] * (int32_t)x->qs[j];
    return s;
}

static int32_t block_q4_0_q8_0(const qtx_block_q4_0 *w, const qtx_block_q8_0 *x) {
    int32_t s0 = 0, s1 = 0;
    for (int j = 0; j < QTX_QK / 2; j++) {
        s0 += ((w->qs[j] & 0x0F) - 8) * (int32_t)x->qs[j];
        s1 += ((w->qs[j] >> 4) - 8) * (int32_t)x->qs[j + QTX_QK / 2];
    }
    return s0 + s1;
}

static void blocks_q8_0_q8_0(int64_t nb, int32_t *isum, const void *vw, const void *vx) {
    const qtx_block_q8_0 *w = vw, *x = vx;
    for (int64_t b = 0; b < nb; b++) isum[b] = block_q8_0_q8_0(&w[b], &x[b]);
}

static void blocks_q4_0_q8_0(int64_t nb, int32_t *isum, const void *vw, const void *vx) {
    const qtx_block_q4_0 *w = vw;
    const qtx_block_q8_0 *x = vx;
    for (int64_t b = 0; b < nb; b++) isum[b] = block_q4_0_q8_0(&w[b], &x[b]);
}

static void dot_q8_0_q8_0(int64_t n, float *s, const void *vw, const void *vx) {
    const qtx_block_q8_0 *w = vw, *x = vx;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QTX_QK; b++)
        sum += (float)block_q8_0_q8_0(&w[b], &x[b]) *
               (qtx_f16_to_f32(w[b].d) * qtx_f16_to_f32(x[b].d));
    *s = sum;
}

static void dot_q4_0_q8_0(int64_t n, float *s, const void *vw, const void *vx) {
    const qtx_block_q4_0 *w = vw;
    const qtx_block_q8_0 *x = vx;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QTX_QK; b++)
        sum += (float)block_q4_0_q8_0(&w[b], &x[b]) *
               (qtx_f16_to_f32(w[b].d) * qtx_f16_to_f32(x[b].d));
    *s = sum;
}

/* Float dot products: eight running sums (which the compiler may keep in one vector), added
 * pairwise at the end. */
void qtx_dot_f32_generic(int64_t n, float *s, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += w[i + k] * x[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += w[i] * x[i];
    *s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void qtx_dot_f16_generic(int64_t n, float *s, const void *vw, const void *vx) {
    const qtx_f16 *w = vw;
    const float *x = vx;
    float acc[8] = {0}, wf[8];
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int k = 0; k < 8; k++) wf[k] = qtx_f16_to_f32(w[i + k]);
        for (int k = 0; k < 8; k++) acc[k] += wf[k] * x[i + k];
    }
    for (int k = 0; i < n; i++, k++) acc[k] += qtx_f16_to_f32(w[i]) * x[i];
    *s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* q4_0r / q8_0r x q8r: block by block through the plain formats, so each element equals
 * dot_q4_0_q8_0 / dot_q8_0_q8_0 on the same weights and activations bit for bit. */
static void tile_r(int q8, int64_t n, int nr, int nc, const void *w, size_t w_row, const void *x,
                   size_t x_row, float *y, int64_t ldy) {
    for (int c = 0; c < nc; c++)
        for (int r = 0; r < nr; r++) {
            const char *wr = (const char *)w + (size_t)r * w_row;
            const char *xr = (const char *)x + (size_t)c * x_row;
            float sum = 0.0f;
            for (int64_t b = 0; b < n / QTX_QK; b++) {
                qtx_block_q8_0 xb, w8;
                qtx_block_q4_0 w4;
                qtx_q8r_get_block(xr, n, b, &xb);
                if (q8)
                    qtx_q8_0r_get_block(wr, n, b, &w8);
                else
                    qtx_q4_0r_get_block(wr, n, b, &w4);
                const int32_t is = q8 ? block_q8_0_q8_0(&w8, &xb) : block_q4_0_q8_0(&w4, &xb);
                sum += (float)is * (qtx_f16_to_f32(q8 ? w8.d : w4.d) * qtx_f16_to_f32(xb.d));
            }
            y[(int64_t)c * ldy + r] = sum;
        }
}

static void tile_q4_0r_q8r(int64_t n, int nr, int nc, const void *w, size_t w_row, const void *x,
                           size_t x_row, float *y, int64_t ldy) {
    tile_r(0, n, nr, nc, w, w_row, x, x_row, y, ldy);
}

static void tile_q8_0r_q8r(int64_t n, int nr, int nc, const void *w, size_t w_row, const void *x,
                           size_t x_row, float *y, int64_t ldy) {
    tile_r(1, n, nr, nc, w, w_row, x, x_row, y, ldy);
}

QTX_TILE_BY_DOT(tile_q8_0_q8_0, dot_q8_0_q8_0)
QTX_TILE_BY_DOT(tile_q4_0_q8_0, dot_q4_0_q8_0)

const qtx_quant_kernels qtx_quant_kernels_generic = {
    .isa = QTX_ISA_GENERIC,
    .name = "generic",
    .quantize_row_q8_0 = qtx_quantize_row_q8_0_ref,
    .dot_q8_0_q8_0 = dot_q8_0_q8_0,
    .dot_q4_0_q8_0 = dot_q4_0_q8_0,
    .blocks_q8_0_q8_0 = blocks_q8_0_q8_0,
    .blocks_q4_0_q8_0 = blocks_q4_0_q8_0,
    .tile_q8_0_q8_0 = tile_q8_0_q8_0,
    .tile_q4_0_q8_0 = tile_q4_0_q8_0,
    .tile_q4_0r_q8r = tile_q4_0r_q8r,
    .tile_q8_0r_q8r = tile_q8_0r_q8r,
};
