/* quant_neon.c: the aarch64 NEON kernels of core/quant.h, chosen at run time (empty on other
 * architectures).
 *
 * Block sums are exact: with the dot-product extension (__ARM_FEATURE_DOTPROD) sdot adds four
 * int8 products per int32 lane; without it vmull_s8 forms int16 products (at most 2^14) and
 * vpadalq_s16 adds their pairs into int32. q4_0 nibbles become signed (q - 8) first. Four
 * blocks' sums are gathered into one vector with pairwise adds, converted and scaled once per
 * block. The activation quantizer rounds with fcvtas (half away from zero, as roundf does),
 * so its bytes are the reference's.
 */
#if defined(__aarch64__)

#include <arm_neon.h>

#include "quant.h"

/* Four int32 lanes whose sum is the block's sum of products of a[0..31] and b[0..31]. */
static inline int32x4_t dot32(int8x16_t a0, int8x16_t a1, int8x16_t b0, int8x16_t b1) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), a0, b0), a1, b1);
#else
    int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(a0), vget_low_s8(b0)));
    s = vpadalq_s16(s, vmull_high_s8(a0, b0));
    s = vpadalq_s16(s, vmull_s8(vget_low_s8(a1), vget_low_s8(b1)));
    return vpadalq_s16(s, vmull_high_s8(a1, b1));
#endif
}

static inline int32x4_t part_q8_0_q8_0(const qtx_block_q8_0 *w, const qtx_block_q8_0 *x) {
    return dot32(vld1q_s8(w->qs), vld1q_s8(w->qs + 16), vld1q_s8(x->qs), vld1q_s8(x->qs + 16));
}

static inline int32x4_t part_q4_0_q8_0(const qtx_block_q4_0 *w, const qtx_block_q8_0 *x) {
    const uint8x16_t raw = vld1q_u8(w->qs);
    const int8x16_t eight = vdupq_n_s8(8);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0F))), eight);
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), eight);
    return dot32(lo, hi, vld1q_s8(x->qs), vld1q_s8(x->qs + 16));
}

/* Lane k of the result = the sum of the lanes of pk. */
static inline int32x4_t reduce4(int32x4_t p0, int32x4_t p1, int32x4_t p2, int32x4_t p3) {
    return vpaddq_s32(vpaddq_s32(p0, p1), vpaddq_s32(p2, p3));
}

#define SUMS4(PART, w, x)                                                                          \
    reduce4(PART(w, x), PART((w) + 1, (x) + 1), PART((w) + 2, (x) + 2), PART((w) + 3, (x) + 3))

static inline float32x4_t scales4(qtx_f16 a, qtx_f16 b, qtx_f16 c, qtx_f16 d) {
    const uint64_t u = (uint64_t)a | (uint64_t)b << 16 | (uint64_t)c << 32 | (uint64_t)d << 48;
    return vcvt_f32_f16(vreinterpret_f16_u16(vcreate_u16(u)));
}

static inline float f16_scalar(qtx_f16 h) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

#define DEFINE_KERNELS(NAME, WT, PART)                                                             \
    static void blocks_##NAME(int64_t nb, int32_t *isum, const void *vw, const void *vx) {         \
        const WT *w = vw;                                                                          \
        const qtx_block_q8_0 *x = vx;                                                              \
        int64_t b = 0;                                                                             \
        for (; b + 4 <= nb; b += 4) vst1q_s32(isum + b, SUMS4(PART, w + b, x + b));                \
        for (; b < nb; b++) isum[b] = vaddvq_s32(PART(w + b, x + b));                              \
    }                                                                                              \
    static void dot_##NAME(int64_t n, float *s, const void *vw, const void *vx) {                  \
        const WT *w = vw;                                                                          \
        const qtx_block_q8_0 *x = vx;                                                              \
        const int64_t nb = n / QTX_QK;                                                             \
        float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;                                         \
        int64_t b = 0;                                                                             \
        for (; b + 8 <= nb; b += 8) {                                                              \
            const WT *wb = w + b;                                                                  \
            const qtx_block_q8_0 *xb = x + b;                                                      \
            const float32x4_t d0 = vmulq_f32(scales4(wb[0].d, wb[1].d, wb[2].d, wb[3].d),          \
                                             scales4(xb[0].d, xb[1].d, xb[2].d, xb[3].d));         \
            const float32x4_t d1 = vmulq_f32(scales4(wb[4].d, wb[5].d, wb[6].d, wb[7].d),          \
                                             scales4(xb[4].d, xb[5].d, xb[6].d, xb[7].d));         \
            acc0 = vfmaq_f32(acc0, vcvtq_f32_s32(SUMS4(PART, wb, xb)), d0);                        \
            acc1 = vfmaq_f32(acc1, vcvtq_f32_s32(SUMS4(PART, wb + 4, xb + 4)), d1);                \
        }                                                                                          \
        float sum = vaddvq_f32(vaddq_f32(acc0, acc1));                                             \
        for (; b < nb; b++)                                                                        \
            sum +=                                                                                 \
                (float)vaddvq_s32(PART(w + b, x + b)) * (f16_scalar(w[b].d) * f16_scalar(x[b].d)); \
        *s = sum;                                                                                  \
    }

DEFINE_KERNELS(q8_0_q8_0, qtx_block_q8_0, part_q8_0_q8_0)
DEFINE_KERNELS(q4_0_q8_0, qtx_block_q4_0, part_q4_0_q8_0)

/* Same bytes as qtx_quantize_row_q8_0_ref. */
static void quantize_row_q8_0(const float *x, void *vy, int64_t n) {
    qtx_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QTX_QK; i++) {
        float32x4_t v[8];
        for (int k = 0; k < 8; k++) v[k] = vld1q_f32(x + i * QTX_QK + 4 * k);
        float32x4_t m = vabsq_f32(v[0]);
        for (int k = 1; k < 8; k++) m = vmaxq_f32(m, vabsq_f32(v[k]));
        const float amax = vmaxvq_f32(m);
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qtx_f32_to_f16(d);
        int16x8_t h[4];
        for (int k = 0; k < 4; k++) /* fcvtas: round half away from zero, like roundf */
            h[k] = vcombine_s16(vqmovn_s32(vcvtaq_s32_f32(vmulq_n_f32(v[2 * k], id))),
                                vqmovn_s32(vcvtaq_s32_f32(vmulq_n_f32(v[2 * k + 1], id))));
        vst1q_s8(y[i].qs, vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1])));
        vst1q_s8(y[i].qs + 16, vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3])));
    }
}

void qtx_dot_f32_neon(int64_t n, float *s, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, vld1q_f32(w + i + 4), vld1q_f32(x + i + 4));
        a2 = vfmaq_f32(a2, vld1q_f32(w + i + 8), vld1q_f32(x + i + 8));
        a3 = vfmaq_f32(a3, vld1q_f32(w + i + 12), vld1q_f32(x + i + 12));
    }
    for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(x + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < n; i++) sum += w[i] * x[i];
    *s = sum;
}

void qtx_dot_f16_neon(int64_t n, float *s, const void *vw, const void *vx) {
    const qtx_f16 *w = vw;
    const float *x = vx;
#define LOADH(p) vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)))
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, LOADH(w + i), vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, LOADH(w + i + 4), vld1q_f32(x + i + 4));
        a2 = vfmaq_f32(a2, LOADH(w + i + 8), vld1q_f32(x + i + 8));
        a3 = vfmaq_f32(a3, LOADH(w + i + 12), vld1q_f32(x + i + 12));
    }
    for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, LOADH(w + i), vld1q_f32(x + i));
#undef LOADH
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < n; i++) sum += f16_scalar(w[i]) * x[i];
    *s = sum;
}

/* Tiles one dot product at a time (a register-blocked NEON tile is still to come). */
QTX_TILE_BY_DOT(tile_q8_0_q8_0, dot_q8_0_q8_0)
QTX_TILE_BY_DOT(tile_q4_0_q8_0, dot_q4_0_q8_0)

const qtx_quant_kernels qtx_quant_kernels_neon = {
    .isa = QTX_ISA_NEON,
    .name = "neon",
    .quantize_row_q8_0 = quantize_row_q8_0,
    .dot_q8_0_q8_0 = dot_q8_0_q8_0,
    .dot_q4_0_q8_0 = dot_q4_0_q8_0,
    .blocks_q8_0_q8_0 = blocks_q8_0_q8_0,
    .blocks_q4_0_q8_0 = blocks_q4_0_q8_0,
    .tile_q8_0_q8_0 = tile_q8_0_q8_0,
    .tile_q4_0_q8_0 = tile_q4_0_q8_0,
};

#endif
